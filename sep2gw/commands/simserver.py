"""``sep2gw sim-server --port N --pki DIR [--scenario FILE] [--hostile NAME]``: the simulated IEEE
2030.5 utility server on loopback, over mutual TLS with a demo PKI (``sep2gw certs init DIR``
layout: ``server.pem``, ``server.key``, ``ca.pem``), following a scenario file or the built-in
demo; ``--hostile`` turns it into the hostile server (``sep2gw.simserver.hostile``) for a window
(``--hostile-at``, ``--hostile-for``; default: from the start, for ever)."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Final

import anyio
import msgspec

from sep2gw.exits import BAD_INPUT, OK, first_leaf
from sep2gw.humanfmt import quantity
from sep2gw.simserver import (
    Action,
    CancelControl,
    CancelPriceInterval,
    CreateControl,
    CreatePriceInterval,
    RecordedRequest,
    ScenarioError,
    SimClock,
    SimUtilityServer,
    demo_scenario,
    server_material,
)
from sep2gw.simserver.hostile import DESCRIPTIONS, HostileUtilityServer
from sep2gw.simserver.library import resolve_scenario
from sep2gw.simserver.notifier import NotificationAttempt
from sep2gw.simserver.scenario import HOSTILE_BEHAVIOURS, HostileWindow, Modes
from sep2gw.stopping import stop_on_signals
from transport.tls import TlsConfigError

__all__ = ["describe_action", "register"]

_FOR_EVER_S = 100 * 365 * 86400.0


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "sim-server", help="serve a simulated IEEE 2030.5 utility server (mutual TLS, loopback)"
    )
    parser.add_argument("--port", type=int, default=8443, help="TCP port (0: any free port)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default loopback)"
    )
    parser.add_argument(
        "--pki",
        type=Path,
        required=True,
        help="folder written by `sep2gw certs init` (server.pem, server.key, ca.pem)",
    )
    parser.add_argument(
        "--scenario",
        help="scenario TOML file or library name (sep2gw sim --list); default: the built-in demo",
    )
    parser.add_argument(
        "--key-password-env",
        metavar="VAR",
        help="the server key's password is in environment variable VAR",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="do not print each request and utility action"
    )
    parser.add_argument(
        "--hostile",
        metavar="NAME",
        choices=HOSTILE_BEHAVIOURS,
        help="inject one hostile behaviour: " + ", ".join(HOSTILE_BEHAVIOURS),
    )
    parser.add_argument(
        "--hostile-at",
        type=float,
        default=0.0,
        metavar="S",
        help="seconds after the start the hostile window opens (default 0)",
    )
    parser.add_argument(
        "--hostile-for",
        type=float,
        default=_FOR_EVER_S,
        metavar="S",
        help="seconds the hostile window lasts (default: for ever)",
    )
    parser.set_defaults(handler=_sim_server)


def describe_action(action: Action) -> str:
    """One line for a utility action of the timeline, in words (never a struct's repr)."""
    match action:
        case CreateControl():
            return (
                f"create control {action.mrid or '(generated)'} in {action.program}: "
                f"{describe_modes(action.modes)} from +{action.start_s:g} s for "
                f"{action.duration_s} s"
            )
        case CancelControl():
            return f"cancel control {action.mrid}" + (" (randomized)" if action.randomized else "")
        case CreatePriceInterval():
            price = (
                f"price {action.price}"
                if action.price is not None
                else "blocks " + ", ".join(f"{b.price} from {b.start_value}" for b in action.blocks)
            )
            return (
                f"publish price interval {action.mrid or '(generated)'} of {action.tariff}: {price}, "
                f"tier {action.tou_tier}, from +{action.start_s:g} s for {action.duration_s} s"
            )
        case CancelPriceInterval():
            return f"cancel price interval {action.mrid}" + (
                " (randomized)" if action.randomized else ""
            )
    fields = msgspec.structs.asdict(action)
    fields.pop("at_s", None)
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", type(action).__name__).lower()
    detail = ", ".join(f"{k} {_field(k, v)}" for k, v in fields.items() if v not in (None, [], ()))
    return f"{words}: {detail}" if detail else words


def describe_notification(attempt: NotificationAttempt, start: float) -> str:
    """One timeline line for a notification the utility sent (or dropped, or gave up)."""
    answer = f"{attempt.status}" if attempt.status else "no answer"
    copy = f" copy {attempt.copy}" if attempt.copy > 1 else ""
    retry = f" attempt {attempt.attempt}" if attempt.attempt > 1 else ""
    detail = f"  {attempt.error}" if attempt.error else ""
    if attempt.outcome in ("dropped", "overflow"):
        return (
            f"t+{attempt.time - start:7.1f} s  NOTIFY #{attempt.number} {attempt.uri} -> "
            f"{attempt.outcome}{detail}"
        )
    return (
        f"t+{attempt.time - start:7.1f} s  NOTIFY #{attempt.number}{copy}{retry} {attempt.uri} -> "
        f"{answer} {attempt.outcome}{detail}"
    )


def describe_modes(modes: Modes) -> str:
    """The modes a scenario sets, in schema spelling with units: ``opModExpLimW=300 W``."""
    parts = [
        f"{name}={_mode_value(name, getattr(modes, name))}"
        for name in modes.__struct_fields__
        if getattr(modes, name) is not None
    ]
    return ", ".join(parts) if parts else "none"


#: Units of the scenario's modes (``Modes``: W in watts, percentages in percent, rampTms in s).
_MODE_UNITS: Final = {"opModMaxLimW": "_pct", "opModFixedW": "_pct", "rampTms": "_s"}


def _mode_value(name: str, value: object) -> str:
    suffix = _MODE_UNITS.get(name, "_w" if name.endswith("W") else "")
    return quantity(f"x{suffix}", value)


def _field(name: str, value: object) -> str:
    if name == "set_grad_w" and isinstance(value, int):
        return f"{value} (hundredths of % of setMaxW per s)"
    if isinstance(value, Modes):
        return describe_modes(value)
    if isinstance(value, msgspec.Struct):
        inner = msgspec.structs.asdict(value)
        return (
            "{" + ", ".join(f"{k} {_field(k, v)}" for k, v in inner.items() if v is not None) + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_field(name, v) for v in value) + "]"
    return quantity(name, value)


def _sim_server(args: argparse.Namespace) -> int:
    if not 0 <= args.port < 65536:
        print(f"sep2gw sim-server: --port {args.port} is not in 0..65535", file=sys.stderr)
        return 2
    missing = [n for n in ("server.pem", "server.key", "ca.pem") if not (args.pki / n).is_file()]
    if missing:
        print(
            f"sep2gw sim-server: --pki {args.pki} lacks {', '.join(missing)} "
            "(create it with `sep2gw certs init DIR`)",
            file=sys.stderr,
        )
        return 2
    password: bytes | None = None
    if args.key_password_env:
        value = os.environ.get(args.key_password_env)
        if not value:
            print(
                f"sep2gw sim-server: environment variable {args.key_password_env} is empty or unset",
                file=sys.stderr,
            )
            return 2
        password = value.encode()
    try:
        scenario = resolve_scenario(args.scenario) if args.scenario else demo_scenario()
    except ScenarioError as exc:
        print(f"sep2gw sim-server: {exc}", file=sys.stderr)
        return 2
    if args.hostile is not None:
        if not (args.hostile_at >= 0 and args.hostile_for > 0):
            print(
                f"sep2gw sim-server: --hostile-at {args.hostile_at:g} must not be negative and "
                f"--hostile-for {args.hostile_for:g} must be positive",
                file=sys.stderr,
            )
            return 2
        window = HostileWindow(
            behaviour=args.hostile, at_s=args.hostile_at, duration_s=args.hostile_for
        )
        scenario = msgspec.structs.replace(scenario, hostile=[*scenario.hostile, window])
    material = server_material(args.pki, password)
    wall = time.time()  # the simulated utility's clock starts at this machine's wall time

    async def run() -> None:
        clock = SimClock.for_scenario(scenario, wall)
        start = clock.now()

        def on_request(q: RecordedRequest) -> None:
            print(
                f"t+{q.time - start:7.1f} s  {q.method:<4} {q.target} -> "
                f"{q.status or 'reset'}{'  ' + q.reason if q.reason else ''}",
                flush=True,
            )

        def on_action(t: float, action: Action) -> None:
            print(f"t+{t - start:7.1f} s  utility: {describe_action(action)}", flush=True)

        def on_notification(attempt: NotificationAttempt) -> None:
            print(describe_notification(attempt, start), flush=True)

        server_class = HostileUtilityServer if scenario.hostile else SimUtilityServer
        server = server_class(
            scenario,
            material,
            clock=clock,
            on_request=None if args.quiet else on_request,
            on_action=None if args.quiet else on_action,
            on_notification=None if args.quiet else on_notification,
        )
        async with anyio.create_task_group() as group:
            group.start_soon(stop_on_signals, group.cancel_scope)
            port = await group.start(
                lambda task_status: server.serve_tcp(
                    host=args.host, port=args.port, task_status=task_status
                )
            )
            print(
                f"simulated utility server ({scenario.name}, {len(scenario.actions)} actions) "
                f"serving https://{args.host}:{port}/dcap",
                flush=True,
            )
            if server.validation_off:
                print(f"sep2gw sim-server: {server.validation_off}", file=sys.stderr, flush=True)
            for w in scenario.hostile:
                print(
                    f"hostile from t+{w.at_s:g} s for {w.duration_s:g} s: {w.behaviour}: "
                    f"{DESCRIPTIONS[w.behaviour]}",
                    flush=True,
                )

    try:
        anyio.run(run, backend="trio")
    except BaseException as exc:
        bad = first_leaf(exc, TlsConfigError)
        if bad is not None:
            print(f"sep2gw sim-server: {bad}", file=sys.stderr)
            return BAD_INPUT
        busy = first_leaf(exc, OSError)
        if busy is None:
            raise
        print(
            f"sep2gw sim-server: cannot listen on {args.host}:{args.port}: {busy.strerror or busy}",
            file=sys.stderr,
        )
        return BAD_INPUT
    print("sep2gw sim-server: stopped", file=sys.stderr)
    return OK
