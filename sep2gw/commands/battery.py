"""``sep2gw sim-battery`` (the simulated battery as a SunSpec Modbus TCP server) and
``sep2gw modbus scan HOST:PORT`` (commissioning: the SunSpec models a device exposes, key points)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import anyio

from actors.clock import Clock
from actors.drivers.modbus_client import ModbusTcpClient
from actors.drivers.sunspec import NotSunSpec, SunSpecDriver
from sep2gw.exits import BAD_INPUT, OK, first_leaf
from sep2gw.sim.battery import BatteryParams, SimBattery, SiteParams
from sep2gw.sim.modbus_server import SimModbusServer
from sep2gw.stopping import stop_on_signals
from transport.modbus import ModbusError
from transport.sunspec import SunSpecError, UnknownModel, model_def

__all__ = ["KEY_POINTS", "parse_endpoint", "register", "scan"]

#: What a commissioning engineer wants to see first in each model (display choice, not a layout).
KEY_POINTS: dict[int, tuple[str, ...]] = {
    1: ("Mn", "Md", "SN", "Vr"),
    701: ("W", "Var", "LNV", "Hz", "ConnSt", "InvSt", "Alrm"),
    702: ("WMaxRtg", "WChaRteMaxRtg", "WDisChaRteMaxRtg", "WMax"),
    704: ("WMaxLimPctEna", "WMaxLimPct", "WSetEna", "WSetMod", "WSet"),
    713: ("WHRtg", "WHAvail", "SoC", "Sta"),
    802: ("WHRtg", "SoC", "W", "ChaSt", "State", "SetOp", "SetInvState"),
    201: ("W", "VAR", "PhV", "Hz"),
    202: ("W", "VAR", "PhV", "Hz"),
    203: ("W", "VAR", "PhV", "Hz"),
    204: ("W", "VAR", "PhV", "Hz"),
}


def register(commands: Any) -> None:
    sim = commands.add_parser(
        "sim-battery", help="serve a simulated battery over SunSpec Modbus TCP"
    )
    sim.add_argument("--port", type=int, default=5020, help="TCP port (0: any free port)")
    sim.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    sim.add_argument("--seed", type=int, default=1, help="seed of the load and PV profiles")
    sim.add_argument("--soc", type=float, default=50.0, help="initial state of charge, percent")
    sim.set_defaults(handler=_sim_battery)
    modbus = commands.add_parser("modbus", help="Modbus/SunSpec tools")
    sub = modbus.add_subparsers(dest="modbus_command", metavar="ACTION", required=True)
    scan_parser = sub.add_parser("scan", help="list the SunSpec models of a device and key points")
    scan_parser.add_argument(
        "endpoint", metavar="HOST:PORT", help="the device's Modbus TCP address, e.g. 192.0.2.10:502"
    )
    scan_parser.add_argument("--unit", type=int, default=1, help="Modbus unit id (default 1)")
    scan_parser.add_argument("--timeout", type=float, default=2.0, help="seconds per request")
    scan_parser.add_argument(
        "--attempts", type=int, default=2, help="connection attempts (bounded back-off between)"
    )
    scan_parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    scan_parser.set_defaults(handler=_scan)


def parse_endpoint(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT``; raises ValueError naming what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r}: expected HOST:PORT with a port in 1..65535")
    return host.strip("[]"), int(port)


def _sim_battery(args: argparse.Namespace) -> int:
    if not 0 <= args.port < 65536:
        print(f"sep2gw sim-battery: --port {args.port} is not in 0..65535", file=sys.stderr)
        return 2
    try:
        params = BatteryParams(initial_soc_pct=args.soc)
    except ValueError as exc:
        print(f"sep2gw sim-battery: {exc}", file=sys.stderr)
        return 2

    async def run() -> None:
        # The demo/commissioning server follows the gateway's clock owner (wall time at start).
        clock = Clock()
        sim = SimBattery(params, SiteParams(), seed=args.seed, start_s=clock.server_time())
        server = SimModbusServer(sim, clock=clock.server_time)
        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_on_signals, tg.cancel_scope)
            port = await tg.start(
                lambda task_status: server.serve(
                    host=args.host, port=args.port, task_status=task_status
                )
            )
            print(
                f"simulated battery (seed {args.seed}) serving SunSpec Modbus TCP on {args.host}:{port}",
                flush=True,
            )

    try:
        anyio.run(run, backend="trio")
    except BaseException as exc:
        busy = first_leaf(exc, OSError)
        if busy is None:
            raise
        print(
            f"sep2gw sim-battery: cannot listen on {args.host}:{args.port}: {busy.strerror or busy}",
            file=sys.stderr,
        )
        return BAD_INPUT
    print("sep2gw sim-battery: stopped", file=sys.stderr)
    return OK


async def scan(
    host: str, port: int, *, unit: int = 1, timeout_s: float = 2.0, attempts: int = 2
) -> list[dict[str, Any]]:
    """Every model the device exposes: id, name, base address, length and key point values.

    A point's value is a number (scaled by its scale factor), text, a symbol or a list of set
    bits; a point's unit is apart, in the model's ``units`` (``{"WHRtg": "WH"}``), so tools read
    numbers, not ``"13500 WH"``."""
    async with ModbusTcpClient(
        host, port, unit_id=unit, timeout_s=timeout_s, connect_attempts=attempts
    ) as client:
        driver = SunSpecDriver(client)
        out: list[dict[str, Any]] = []
        for header in await driver.discover():
            entry: dict[str, Any] = {
                "id": header.model_id,
                "base": header.base,
                "length": header.length,
            }
            try:
                definition = model_def(header.model_id)
            except UnknownModel:
                entry["name"] = "(no definition in pysunspec2)"
                out.append(entry)
                continue
            entry["name"] = definition.name
            entry["label"] = definition.label
            points: dict[str, Any] = {}
            units: dict[str, str] = {}
            if header.model_id in KEY_POINTS and driver.headers.get(header.model_id) == header:
                block = await driver.read_model(header.model_id)
                for name in KEY_POINTS[header.model_id]:
                    point = definition.point(name)
                    if point.type == "string":
                        points[name] = block.text(name)
                    elif point.symbols and point.type.startswith("enum"):
                        raw = block.raw(name)
                        points[name] = (
                            None
                            if not isinstance(raw, int)
                            else definition.symbol_name(name, raw) or raw
                        )
                    elif point.type.startswith("bitfield"):
                        raw = block.raw(name)
                        points[name] = (
                            [s for s, bit in point.symbols.items() if raw >> bit & 1]
                            if isinstance(raw, int)
                            else None
                        )
                    else:
                        points[name] = block.value(name)
                        if point.units:
                            units[name] = point.units
            entry["points"] = points
            entry["units"] = units
            out.append(entry)
        return out


def _scan(args: argparse.Namespace) -> int:
    try:
        host, port = parse_endpoint(args.endpoint)
    except ValueError as exc:
        print(f"sep2gw modbus scan: {exc}", file=sys.stderr)
        return 2
    if args.attempts < 1 or not args.timeout > 0:
        print("sep2gw modbus scan: --attempts must be ≥ 1 and --timeout > 0", file=sys.stderr)
        return 2
    try:
        models = anyio.run(
            lambda: scan(
                host, port, unit=args.unit, timeout_s=args.timeout, attempts=args.attempts
            ),
            backend="trio",
        )
    except NotSunSpec as exc:
        print(f"sep2gw modbus scan: {host}:{port}: {exc}", file=sys.stderr)
        return 3
    except (ModbusError, SunSpecError) as exc:
        print(f"sep2gw modbus scan: {host}:{port}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"endpoint": f"{host}:{port}", "models": models}))
        return 0
    print(f"{host}:{port}: {len(models)} SunSpec models")
    for model in models:
        print(
            f"  model {model['id']:>5} {model['name']:<22} at {model['base']}, {model['length']} registers"
        )
        units = model.get("units", {})
        for name, value in model.get("points", {}).items():
            unit = units.get(name)
            shown = f"{value:g} {unit}" if unit and isinstance(value, int | float) else value
            print(f"        {name:<18} {shown}")
    return 0
