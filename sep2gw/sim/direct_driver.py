"""The simulated battery reached in-process, for long simulations (issue 8 scope 7).

Two drivers, both without Modbus framing or a pipe:

- :class:`SimBatteryDriver` (``run_world(battery="direct")``): a ``DerDriver`` over the
  :class:`SimBattery` physics itself. Telemetry is read from the model as a device would report it
  (whole watts, tenths of a percent); ``apply`` runs the same closed loop as the SunSpec driver
  (``statemachines.site_limit.step`` with the same ``LoopConfig``) and sets the model's commands the
  way the SunSpec map's control registers do (``WSet``, ``WMaxLimPct``, ``SetOp``,
  ``SetInvState``). It skips the register codec, which is most of what a simulated second costs.
- :class:`DirectRegisterClient` (``run_world(battery="registers")``): the real
  :class:`SunSpecDriver` over the device's register map.

:class:`DirectRegisterClient` answers ``read_holding``/``write_registers`` from a
:class:`sep2gw.sim.sunspec_map.SunSpecMap` exactly as :class:`sep2gw.sim.modbus_server.SimModbusServer`
does over Modbus TCP: the physics is advanced to the clock before each request, out-of-map reads and
refused writes raise the same :class:`transport.modbus.ModbusExceptionResponse` (codes 2 and 3) a
device's exception response becomes in :class:`actors.drivers.modbus_client.ModbusTcpClient`. What
is skipped is the transport only: MBAP/PDU encoding, the byte pipe, the server task and the
scheduler round trips (two per transaction). The driver above it, :class:`SunSpecDriver`, is the one a
site runs: discovery, scale factors, the closed loop, write-and-verify.

Not covered on this path: the Modbus client's timeouts, reconnects and framing errors, and the
server's :class:`~sep2gw.sim.modbus_server.Faults`; worlds that inject those use the Modbus path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from actors.drivers.base import (
    ApplyReport,
    Nameplate,
    Telemetry,
    closed_loop,
    usable_settings,
)
from actors.drivers.sunspec import SunSpecDriver
from events.der_model import ControlSettings, Mode
from events.telemetry import OperatingState
from sep2gw.sim.battery import SimBattery
from sep2gw.sim.sunspec_map import INV_ST as _INV_ST
from sep2gw.sim.sunspec_map import SunSpecMap, WriteRefused
from statemachines.site_limit import LoopConfig, LoopState, validate_limits
from transport.modbus import MAX_READ_REGISTERS, MAX_WRITE_REGISTERS, ModbusExceptionResponse

__all__ = ["DirectRegisterClient", "SimBatteryDriver", "direct_sunspec_driver"]

#: What the simulated device can dispatch: SunSpec 704 with a site meter, and 802 (as the
#: SunSpec driver finds on the simulated map).
_DISPATCHABLE = frozenset(
    {
        Mode.TARGET_W,
        Mode.STORAGE_TARGET_W,
        Mode.FIXED_W_PCT,
        Mode.GENERATION_LIMIT_W,
        Mode.LOAD_LIMIT_W,
        Mode.MAX_LIMIT_PCT,
        Mode.EXPORT_LIMIT_W,
        Mode.IMPORT_LIMIT_W,
        Mode.CONNECT,
        Mode.ENERGIZE,
    }
)

#: ``SimBattery.state`` as the SunSpec driver reads it from 701 ``InvSt``.
_STATE: dict[str, OperatingState] = {
    "operating": OperatingState.OPERATING,
    "standby": OperatingState.STANDBY,
    "stopped": OperatingState.OFF,
    "fault": OperatingState.FAULT,
}

_READ_HOLDING = 3
_WRITE_MULTIPLE = 16


class DirectRegisterClient:
    """In-process register access to one simulated device (the ``RegisterClient`` protocol)."""

    def __init__(self, sim: SimBattery, *, clock: Callable[[], float]) -> None:
        self.sim = sim
        self.clock = clock
        self.map = SunSpecMap(sim)
        self._refreshed_s = sim.now_s
        self.transactions = 0

    def _now(self) -> None:
        # As SimModbusServer: advance the physics, refresh the measurements once per instant.
        now = self.clock()
        sim = self.sim
        if now > sim.now_s:
            sim.advance(now)
        if sim.now_s != self._refreshed_s:
            self.map.refresh()
            self._refreshed_s = sim.now_s

    async def read_holding(self, address: int, count: int) -> list[int]:
        """Modbus function 3 semantics: at most 125 registers a request, exception 2 outside."""
        out: list[int] = []
        self._now()
        while count > 0:
            chunk = min(count, MAX_READ_REGISTERS)
            self.transactions += 1
            try:
                out += self.map.read(address, chunk)
            except WriteRefused as refused:
                raise ModbusExceptionResponse(
                    _READ_HOLDING, refused.code, address=address
                ) from None
            address += chunk
            count -= chunk
        return out

    async def write_registers(self, address: int, registers: Sequence[int]) -> None:
        """Modbus function 16 semantics: all or nothing per request, exceptions 2 and 3."""
        self._now()
        for start in range(0, len(registers), MAX_WRITE_REGISTERS):
            self.transactions += 1
            try:
                self.map.write(
                    address + start, list(registers[start : start + MAX_WRITE_REGISTERS])
                )
            except WriteRefused as refused:
                raise ModbusExceptionResponse(
                    _WRITE_MULTIPLE, refused.code, address=address + start
                ) from None

    async def aclose(self) -> None:
        return None


def direct_sunspec_driver(sim: SimBattery, *, clock: Callable[[], float]) -> SunSpecDriver:
    """The SunSpec driver a site runs, over ``sim``'s register map in-process."""
    return SunSpecDriver(DirectRegisterClient(sim, clock=clock))


class SimBatteryDriver:
    """A ``DerDriver`` over the :class:`SimBattery` model (see the module docstring)."""

    def __init__(
        self, sim: SimBattery, *, clock: Callable[[], float], loop: LoopConfig | None = None
    ) -> None:
        self.sim = sim
        self.clock = clock
        self.loop = loop or LoopConfig()
        self._loop_state = LoopState()
        self._nameplate: Nameplate | None = None
        self._setpoint: tuple[bool, float] = (False, 0.0)  # (WSetEna, WSet) as last written
        self._commanded_op = False  # whether SetOp/SetInvState were ever written
        self.reads = self.writes = 0

    def dispatchable_modes(self) -> frozenset[Mode]:
        return _DISPATCHABLE

    def _advance(self) -> None:
        now = self.clock()
        if now > self.sim.now_s:
            self.sim.advance(now)

    async def read_nameplate(self) -> Nameplate:
        sim, b = self.sim, self.sim.battery
        self.reads += 1
        nameplate = Nameplate(
            manufacturer="sep2gw",
            model="SimBattery",
            serial=f"SIM-{sim.seed}",
            rated_w=float(round(b.max_w)),
            rated_va=float(round(b.max_va)),
            rated_var=float(round(b.max_va * 0.6)),
            rated_charge_w=float(round(b.max_charge_w)),
            rated_discharge_w=float(round(b.max_discharge_w)),
            capacity_wh=float(round(b.capacity_wh / 10) * 10),
            max_w=float(round(sim.settings_max_w)),
            max_charge_w=float(round(sim.settings_charge_w)),
            max_discharge_w=float(round(sim.settings_discharge_w)),
            soc_min_pct=b.soc_min_pct,
            soc_max_pct=b.soc_max_pct,
        )
        self._nameplate = nameplate
        return nameplate

    async def read_telemetry(self, *, now: float) -> Telemetry:
        self._advance()
        self.reads += 1
        sim, b = self.sim, self.sim.battery
        site_w = sim.site_w()
        v = round(sim.site_v() * 10) / 10
        soc = round(sim.soc_pct * 10) / 10
        hz = sim.site_hz()
        return Telemetry(
            at_s=now,
            site_w=float(round(site_w)),
            site_var=float(round(sim.site_var())),
            site_v=v,
            site_hz=round(hz * 100) / 100,  # meter 203: Hz_SF = -2
            der_w=float(round(sim.power_w)),
            der_var=0.0,
            der_v=v,
            der_hz=round(hz * 1000) / 1000,  # 701: Hz_SF = -3
            soc_pct=soc,
            stored_wh=round(b.capacity_wh / 10) * 10 * soc / 100.0,
            connected=sim.connected,
            storage_connected=sim.connected,
            operating=_INV_ST[sim.state],
            state=_STATE[sim.state],
            alarms=("GROUND_FAULT",) if sim.tripped else (),
        )

    async def apply(
        self, limits: ControlSettings, *, now: float, reading: Telemetry | None = None
    ) -> ApplyReport:
        """As :meth:`SunSpecDriver.apply`: validate, close the loop on the meter, command."""
        validate_limits(limits)
        requested = limits.modes()
        usable_modes = requested & _DISPATCHABLE
        nameplate = self._nameplate or await self.read_nameplate()
        usable = usable_settings(limits, _DISPATCHABLE)
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
        sim = self.sim
        pct = usable.max_limit_pct
        sim.max_limit_pct = None if pct is None else round(pct * 10) / 10
        setpoint = decision.setpoint_w
        # The device holds whole watts (WSet_SF = 0); an unchanged register is not a write.
        held = (setpoint is not None, 0.0 if setpoint is None else float(round(setpoint)))
        wrote = held != self._setpoint and setpoint is not None
        if held != self._setpoint:
            self.writes += 1
            self._setpoint = held
        sim.setpoint_w = held[1] if held[0] else None
        # As SunSpecDriver: once commanded, a control that no longer sets them writes both back
        # to normal; a device never commanded is left as its operator set it.
        if usable.connect is not None or usable.energize is not None or self._commanded_op:
            self._commanded_op = True
            sim.connected = usable.connect is not False
            sim.energized = usable.energize is not False
            sim.standby = False
        return ApplyReport(
            applied=frozenset(usable_modes),
            not_applicable=frozenset(requested - _DISPATCHABLE),
            setpoint_w=decision.setpoint_w,
            wrote=wrote,
            clamps=decision.clamps,
            site_limit_met=decision.site_limit_met,
        )

    async def aclose(self) -> None:
        return None
