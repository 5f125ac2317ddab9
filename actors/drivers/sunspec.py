"""SunSpec Modbus TCP driver: DER models 701/702/704/713, battery 802, meter 20x, common 1.

Discovery (SunSpec device information model spec §4.2): look for "SunS" at 40000, 0, 50000, then
walk the model headers (ID, L) to the end model. Layouts, types and scale factors come from
``transport.sunspec`` (pysunspec2's JSON definitions). Mapping of the limits in force:

- active power (target, storage target, fixed W, generation/load limits, export/import limits
  closed on the site meter): 704 ``WSetEna``/``WSetMod=WATTS``/``WSet`` from
  ``statemachines.site_limit.step``; released (``WSetEna=DISABLED``) when no power mode is in force;
- ``max_limit_pct``: 704 ``WMaxLimPctEna``/``WMaxLimPct``;
- ``connect``: 802 ``SetOp`` (CONNECT/DISCONNECT); ``energize``: 802 ``SetInvState``
  (INVERTER_STARTED/INVERTER_STOPPED); once commanded, a control that no longer sets them
  returns the DER to CONNECT/INVERTER_STARTED.

Status (DERStatus, PROTOCOL.md §2.7): the converter's state from 701 ``InvSt`` (else 802
``SetInvState``/``State``; an 802 ``State`` of FAULT wins), the AC connection from 701 ``ConnSt``,
the battery's from 802 ``State``, alarms from 701 ``Alrm`` and 802 ``Evt1`` — all by symbol name.

Every write is read back and compared (:class:`WriteNotVerified` when the device kept another value).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from actors.drivers.base import (
    ApplyReport,
    DriverError,
    Nameplate,
    Telemetry,
    WriteNotVerified,
    closed_loop,
    usable_settings,
)
from actors.drivers.modbus_client import ModbusTcpClient
from events.der_model import ControlSettings, Mode
from events.telemetry import OperatingState
from statemachines.site_limit import LoopConfig, LoopState, validate_limits
from transport.modbus import ModbusExceptionResponse
from transport.sunspec import (
    SUNSPEC_BASE_ADDRESSES,
    ModelBlock,
    ModelHeader,
    is_suns_marker,
    model_def,
    parse_header,
)

__all__ = ["METER_MODELS", "NotSunSpec", "RegisterClient", "SunSpecDriver", "discover"]

#: SunSpec meter models (single phase, split phase, wye, delta); all share the points we read.
METER_MODELS = (201, 202, 203, 204)
_MAX_MODELS = 64  # a walk that has not ended after this many models is reading garbage


class RegisterClient(Protocol):
    """What the driver needs of a Modbus master: :class:`ModbusTcpClient` on a site; a simulation
    may hand in a client that reaches a simulated device's registers in-process."""

    async def read_holding(self, address: int, count: int) -> list[int]: ...

    async def write_registers(self, address: int, registers: Sequence[int]) -> None: ...

    async def aclose(self) -> None: ...


class NotSunSpec(DriverError):
    def __init__(self, why: str) -> None:
        super().__init__(f"not a SunSpec device: {why}")
        self.why = why


async def discover(client: RegisterClient) -> tuple[ModelHeader, ...]:
    """The models a device exposes, in map order (base addresses per SunSpec §4.2)."""
    for base in SUNSPEC_BASE_ADDRESSES:
        try:
            marker = await client.read_holding(base, 2)
        except ModbusExceptionResponse:
            continue  # no registers there: try the next standard base
        if not is_suns_marker(marker):
            continue
        headers: list[ModelHeader] = []
        address = base + 2
        for _ in range(_MAX_MODELS):
            header = parse_header(await client.read_holding(address, 2), address)
            if header is None:
                return tuple(headers)
            headers.append(header)
            address += 2 + header.length
            if address > 0xFFFF:
                break
        raise NotSunSpec(f"the model walk from {base} does not reach the end model")
    raise NotSunSpec(f"no 'SunS' marker at {', '.join(map(str, SUNSPEC_BASE_ADDRESSES))}")


class SunSpecDriver:
    """A SunSpec battery system (inverter models 7xx, battery 802, optional site meter 20x)."""

    def __init__(
        self,
        client: ModbusTcpClient | RegisterClient,
        *,
        loop: LoopConfig | None = None,
        meter_import_positive: bool = True,
    ) -> None:
        self.client = client
        self.loop = loop or LoopConfig()
        self.meter_import_positive = meter_import_positive
        self.headers: dict[int, ModelHeader] = {}
        self._loop_state = LoopState()
        self._nameplate: Nameplate | None = None
        self._written: dict[tuple[int, str], list[int]] = {}
        self._commanded_op = False  # whether we ever wrote 802 SetOp/SetInvState

    async def aclose(self) -> None:
        await self.client.aclose()

    async def discover(self) -> tuple[ModelHeader, ...]:
        headers = await discover(self.client)
        self.headers = {}
        for header in headers:
            self.headers.setdefault(header.model_id, header)
        return headers

    async def _ensure(self) -> None:
        if not self.headers:
            await self.discover()

    def _meter(self) -> int | None:
        return next((m for m in METER_MODELS if m in self.headers), None)

    def dispatchable_modes(self) -> frozenset[Mode]:
        modes: set[Mode] = set()
        if 704 in self.headers:
            modes |= {
                Mode.TARGET_W,
                Mode.STORAGE_TARGET_W,
                Mode.FIXED_W_PCT,
                Mode.GENERATION_LIMIT_W,
                Mode.LOAD_LIMIT_W,
                Mode.MAX_LIMIT_PCT,
            }
            if self._meter() is not None:
                modes |= {Mode.EXPORT_LIMIT_W, Mode.IMPORT_LIMIT_W}
        if 802 in self.headers:
            modes |= {Mode.CONNECT, Mode.ENERGIZE}
        return frozenset(modes)

    async def read_model(self, model_id: int) -> ModelBlock:
        """The registers of one model as the device holds them now."""
        await self._ensure()
        header = self.headers.get(model_id)
        if header is None:
            raise DriverError(f"the device has no SunSpec model {model_id}")
        definition = model_def(model_id)
        count = 2 + min(header.length, definition.length)
        registers = await self.client.read_holding(header.base, count)
        return ModelBlock(model=definition, base=header.base, registers=registers)

    async def read_nameplate(self) -> Nameplate:
        await self._ensure()
        common = await self.read_model(1) if 1 in self.headers else None
        cap = await self.read_model(702) if 702 in self.headers else None
        storage = await self.read_model(713) if 713 in self.headers else None
        battery = await self.read_model(802) if 802 in self.headers else None

        def v(block: ModelBlock | None, name: str) -> float | None:
            return None if block is None else block.value(name)

        capacity = v(storage, "WHRtg")
        nameplate = Nameplate(
            manufacturer=None if common is None else common.text("Mn"),
            model=None if common is None else common.text("Md"),
            serial=None if common is None else common.text("SN"),
            rated_w=v(cap, "WMaxRtg"),
            rated_va=v(cap, "VAMaxRtg"),
            rated_var=v(cap, "VarMaxInjRtg"),
            rated_charge_w=v(cap, "WChaRteMaxRtg") or v(battery, "WChaRteMax"),
            rated_discharge_w=v(cap, "WDisChaRteMaxRtg") or v(battery, "WDisChaRteMax"),
            capacity_wh=capacity if capacity is not None else v(battery, "WHRtg"),
            max_w=v(cap, "WMax"),
            max_charge_w=v(cap, "WChaRteMax"),
            max_discharge_w=v(cap, "WDisChaRteMax"),
            soc_min_pct=v(battery, "SoCMin"),
            soc_max_pct=v(battery, "SoCMax"),
        )
        self._nameplate = nameplate
        return nameplate

    async def read_telemetry(self, *, now: float) -> Telemetry:
        await self._ensure()
        meas = await self.read_model(701) if 701 in self.headers else None
        battery = await self.read_model(802) if 802 in self.headers else None
        storage = await self.read_model(713) if 713 in self.headers else None
        meter_id = self._meter()
        meter = await self.read_model(meter_id) if meter_id is not None else None
        site_w = site_var = site_v = site_hz = None
        if meter is not None:
            sign = -1.0 if self.meter_import_positive else 1.0
            w, var = meter.value("W"), meter.value("VAR")
            site_w = None if w is None else sign * w
            site_var = None if var is None else sign * var
            site_v = meter.value("PhV") if meter.value("PhV") is not None else meter.value("PhVphA")
            site_hz = meter.value("Hz")
        alarms: tuple[str, ...] = ()
        connected = operating = storage_connected = None
        state: OperatingState | None = None
        der_w = der_var = der_v = der_hz = None
        if meas is not None:
            der_w, der_var, der_hz = meas.value("W"), meas.value("Var"), meas.value("Hz")
            der_v = meas.value("LNV") if meas.value("LNV") is not None else meas.value("LLV")
            conn = _symbol(meas, "ConnSt")
            connected = None if conn is None else conn == "CONNECTED"
            operating = _symbol(meas, "InvSt")
            state = None if operating is None else _INV_ST.get(operating)
            bits = meas.raw("Alrm")
            if isinstance(bits, int):
                symbols = meas.model.point("Alrm").symbols
                alarms = tuple(name for name, bit in symbols.items() if bits >> bit & 1)
        elif battery is not None:
            der_w = battery.value("W")
        if battery is not None:
            events = battery.raw("Evt1")
            if isinstance(events, int):
                symbols = battery.model.point("Evt1").symbols
                alarms += tuple(f"battery:{n}" for n, bit in symbols.items() if events >> bit & 1)
            state, storage_connected = _battery_state(battery, state)
        soc = None
        if storage is not None:
            soc = storage.value("SoC")
        if soc is None and battery is not None:
            soc = battery.value("SoC")
        stored = None
        if storage is not None and soc is not None:
            capacity = storage.value("WHRtg")
            stored = None if capacity is None else capacity * soc / 100.0
        return Telemetry(
            at_s=now,
            site_w=site_w,
            site_var=site_var,
            site_v=site_v,
            site_hz=site_hz,
            der_w=der_w,
            der_var=der_var,
            der_v=der_v,
            der_hz=der_hz,
            soc_pct=soc,
            stored_wh=stored,
            connected=connected,
            operating=operating,
            alarms=alarms,
            state=state,
            storage_connected=storage_connected,
        )

    async def _write_verified(
        self, block: ModelBlock, first: str, values: dict[str, float]
    ) -> bool:
        """Encode ``values`` (engineering units) into the contiguous run starting at ``first``,
        write it, read it back and compare; ``False`` when the device already held exactly that."""
        start = block.model.point(first)
        words = list(block.registers)
        for name, value in values.items():
            address, encoded = block.encode_value(name, value)
            offset = address - block.base
            words[offset : offset + len(encoded)] = encoded
        end = max(block.model.point(n).offset + block.model.point(n).size for n in values)
        run = words[start.offset : end]
        key = (block.model.model_id, first)
        if self._written.get(key) == run and block.registers[start.offset : end] == run:
            return False  # the device already holds exactly this: no write needed
        address = block.base + start.offset
        await self.client.write_registers(address, run)
        back = await self.client.read_holding(address, len(run))
        if back != run:
            self._written.pop(key, None)
            raise WriteNotVerified(f"model {block.model.model_id} {first}..", _fmt(run), _fmt(back))
        self._written[key] = run
        block.registers[start.offset : end] = run
        return True

    async def apply(
        self, limits: ControlSettings, *, now: float, reading: Telemetry | None = None
    ) -> ApplyReport:
        validate_limits(limits)
        await self._ensure()
        dispatchable = self.dispatchable_modes()
        requested = limits.modes()
        not_applicable = frozenset(requested - dispatchable)
        nameplate = self._nameplate or await self.read_nameplate()
        usable = usable_settings(limits, dispatchable)
        self._loop_state, decision = await closed_loop(
            self._loop_state,
            self.loop,
            requested=requested,
            usable=usable,
            nameplate=nameplate,
            now=now,
            reading=reading,
            read=self.read_telemetry,
        )
        wrote = False
        if 704 in self.headers:
            ctl = await self.read_model(704)
            sym = ctl.model.symbol
            pct = usable.max_limit_pct
            await self._write_verified(
                ctl,
                "WMaxLimPctEna",
                {
                    "WMaxLimPctEna": sym("WMaxLimPctEna", "DISABLED" if pct is None else "ENABLED"),
                    "WMaxLimPct": 100.0 if pct is None else pct,
                },
            )
            # Also when the loop holds its setpoint (deadband): the block was just read, so a
            # device that reverted or restarted and lost WSet gets it back, and one that still
            # holds it is not written to.
            setpoint = decision.setpoint_w
            sent = await self._write_verified(
                ctl,
                "WSetEna",
                {
                    "WSetEna": sym("WSetEna", "DISABLED" if setpoint is None else "ENABLED"),
                    "WSetMod": sym("WSetMod", "WATTS"),
                    "WSet": 0.0 if setpoint is None else setpoint,
                },
            )
            wrote = sent and setpoint is not None
        # Once we have commanded SetOp/SetInvState, a control that no longer sets them returns
        # the DER to normal operation (connected, started); a device we never commanded is left
        # alone. The write is skipped while the device already holds the values.
        if 802 in self.headers and (
            usable.connect is not None or usable.energize is not None or self._commanded_op
        ):
            self._commanded_op = True
            bat = await self.read_model(802)
            sym = bat.model.symbol
            await self._write_verified(
                bat,
                "SetOp",
                {
                    "SetOp": sym("SetOp", "DISCONNECT" if usable.connect is False else "CONNECT"),
                    "SetInvState": sym(
                        "SetInvState",
                        "INVERTER_STOPPED" if usable.energize is False else "INVERTER_STARTED",
                    ),
                },
            )
        return ApplyReport(
            applied=frozenset(requested & dispatchable),
            not_applicable=not_applicable,
            setpoint_w=decision.setpoint_w,
            wrote=wrote,
            clamps=decision.clamps,
            site_limit_met=decision.site_limit_met,
        )


def _symbol(block: ModelBlock, name: str) -> str | None:
    """The symbol name of an enumerated point as the device holds it (``None``: unimplemented or
    a value the definition does not name)."""
    raw = block.raw(name)
    return block.model.symbol_name(name, raw) if isinstance(raw, int) else None


def _battery_state(
    battery: ModelBlock, inverter: OperatingState | None
) -> tuple[OperatingState | None, bool | None]:
    """The converter's state and the battery's connection from model 802 (SunSpec 802 ``State``,
    ``SetInvState``): a battery in ``FAULT`` is a fault whatever 701 says; without 701's ``InvSt``
    the state is what ``SetInvState`` and ``State`` report. ``State`` DISCONNECTED/CONNECTED is
    the battery's connection; its other values do not say."""
    bank = _symbol(battery, "State")
    storage_connected = {"DISCONNECTED": False, "CONNECTED": True}.get(bank or "")
    if bank == "FAULT":
        return OperatingState.FAULT, storage_connected
    if inverter is not None:
        return inverter, storage_connected
    commanded = _symbol(battery, "SetInvState")
    if commanded in _SET_INV_STATE:
        return _SET_INV_STATE[commanded], storage_connected
    return _BANK_STATE.get(bank or ""), storage_connected


#: 701 ``InvSt`` symbols → the normalised state (names from pysunspec2's model 701).
_INV_ST: dict[str, OperatingState] = {
    "OFF": OperatingState.OFF,
    "SLEEPING": OperatingState.SLEEPING,
    "STARTING": OperatingState.STARTING,
    "RUNNING": OperatingState.OPERATING,
    "THROTTLED": OperatingState.THROTTLED,
    "SHUTTING_DOWN": OperatingState.SHUTTING_DOWN,
    "FAULT": OperatingState.FAULT,
    "STANDBY": OperatingState.STANDBY,
}
#: 802 ``SetInvState`` symbols that fix the state when 701 does not report it.
_SET_INV_STATE: dict[str, OperatingState] = {
    "INVERTER_STOPPED": OperatingState.OFF,
    "INVERTER_STANDBY": OperatingState.STANDBY,
}
#: 802 ``State`` symbols of a started inverter without 701.
_BANK_STATE: dict[str, OperatingState] = {
    "CONNECTED": OperatingState.OPERATING,
    "STANDBY": OperatingState.STANDBY,
    "INITIALIZING": OperatingState.STARTING,
    "SUSPENDING": OperatingState.SHUTTING_DOWN,
    "SOC PROTECTION": OperatingState.STANDBY,
    "DISCONNECTED": OperatingState.OFF,
}


def _fmt(words: Sequence[int]) -> str:
    return " ".join(f"{w:04x}" for w in words)
