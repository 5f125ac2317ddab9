"""Several DER behind one connection point, presented to the hardware actor as one site.

The hardware actor drives one ``DerDriver``; a site with a battery and a PV inverter, or two
batteries, hands it a :class:`CompositeDriver` over the member drivers (one per configured DER).

CSIP-AUS (v1.2 §2.3) puts the export, import, generation and load limits at the connection point,
so the composite runs ONE closed loop for the site (``statemachines.site_limit.step``) over the
site meter and the site's rating, the sum of its available members' ratings, each narrowed at its
own state-of-charge bounds. The setpoint it chooses is shared among the available members in
proportion to their ratings (``statemachines.der_split``) and handed to each as a ``target_w``:
the members never close a loop of their own on the meter (two loops on one meter fight).
Non-power modes (``connect``, ``energize``, the curves) go to every member as they are.

A member is *available* when its last read answered and it reports itself able to carry power
(connected, not off, faulted or standing by). A member whose read or write fails, or that reports
itself unable, is excluded from the split and from the site rating until a read shows it back; the
others carry the limit as far as their ratings allow (and the site loop says when they cannot:
``site_limit_met``). Its status is kept per member (:meth:`CompositeDriver.members`) for the
hardware actor to record (``der.status.v1``) and report (DERStatus per DER).

The site meter is read through the members: the first member (in configuration order) whose reading
carries ``site_w`` provides every site-meter field. Only when no member answers does a read fail.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final

import anyio
import msgspec

from actors.drivers.base import (
    ApplyReport,
    DerDriver,
    DriverError,
    Nameplate,
    Telemetry,
    loop_rating,
    reading_at,
)
from events.der_model import ControlSettings, Mode
from events.telemetry import OperatingState
from statemachines.der_split import MemberRating, site_rating, split_setpoint
from statemachines.site_limit import (
    POWER_MODES,
    DerRating,
    LoopConfig,
    LoopState,
    step,
    validate_limits,
)
from transport.modbus import ModbusError

__all__ = ["CompositeDriver", "DerMember", "MemberStatus"]

#: Modes the composite dispatches itself (the site loop) when every member takes a ``target_w``.
_SITE_POWER_MODES: Final = POWER_MODES - {Mode.EXPORT_LIMIT_W, Mode.IMPORT_LIMIT_W}
#: Connection-point limits: also need a member that reads the site meter.
_METERED_MODES: Final = frozenset({Mode.EXPORT_LIMIT_W, Mode.IMPORT_LIMIT_W})
#: A member reporting one of these cannot carry power now.
_UNABLE: Final = frozenset(
    {
        OperatingState.OFF,
        OperatingState.FAULT,
        OperatingState.STANDBY,
        OperatingState.SLEEPING,
        OperatingState.SHUTTING_DOWN,
    }
)
_DEVICE_ERRORS = (TimeoutError, ModbusError, DriverError, OSError)


class DerMember(msgspec.Struct, frozen=True, kw_only=True):
    """One configured DER: its name (``ders[].name``), its role, and its driver."""

    name: str
    driver: DerDriver
    role: str = "battery"


class MemberStatus(msgspec.Struct, frozen=True, kw_only=True):
    """What the composite knows of one member now: whether it takes part in the split and why
    not (``reason``: the failure or the state that excluded it), whether its last operation
    answered (``reachable``), its last reading and its nameplate."""

    der: str
    role: str
    available: bool
    reachable: bool
    reason: str = ""
    telemetry: Telemetry | None = None
    nameplate: Nameplate | None = None


class _Member:
    __slots__ = ("available", "member", "nameplate", "reachable", "reason", "telemetry")

    def __init__(self, member: DerMember) -> None:
        self.member = member
        self.nameplate: Nameplate | None = None
        self.telemetry: Telemetry | None = None
        self.available = False
        #: Its last operation answered: only then is it commanded (one that fails is not asked
        #: again every control period, which would hold the site's loop up by its timeout).
        self.reachable = False
        self.reason = "not read yet"

    def failed(self, operation: str, exc: BaseException) -> None:
        self.available = self.reachable = False
        self.reason = f"{operation}: {type(exc).__name__}: {exc}"

    def answered(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        self.reachable = True
        if self.nameplate is None:
            self.available, self.reason = False, "nameplate not read"
        elif telemetry.connected is False:
            self.available, self.reason = False, "reports itself disconnected"
        elif telemetry.state in _UNABLE:
            self.available, self.reason = False, f"reports itself {telemetry.state.name.lower()}"
        else:
            self.available, self.reason = True, ""

    def rating(self) -> DerRating:
        assert self.nameplate is not None
        return loop_rating(self.nameplate, self.telemetry)


class CompositeDriver:
    """A ``DerDriver`` over several member drivers (see the module docstring)."""

    def __init__(
        self,
        members: Sequence[DerMember],
        *,
        loop: LoopConfig | None = None,
        member_timeout_s: float = 3.0,
    ) -> None:
        if not members:
            raise ValueError("a composite driver needs at least one DER")
        names = [m.name for m in members]
        if len(set(names)) != len(names):
            raise ValueError(f"DER names must be unique: {names}")
        self._members = [_Member(m) for m in members]
        self.loop = loop or LoopConfig()
        self._loop_state = LoopState()
        self._timeout_s = member_timeout_s

    # -- what the hardware actor asks ---------------------------------------------------------------
    def members(self) -> tuple[MemberStatus, ...]:
        """Each member's status now, in configuration order."""
        return tuple(
            MemberStatus(
                der=m.member.name,
                role=m.member.role,
                available=m.available,
                reachable=m.reachable,
                reason=m.reason,
                telemetry=m.telemetry,
                nameplate=m.nameplate,
            )
            for m in self._members
        )

    def dispatchable_modes(self) -> frozenset[Mode]:
        """The site power modes when every member takes a ``target_w`` (the connection-point
        limits also need a member with the site meter); the other modes every member has."""
        each = [m.member.driver.dispatchable_modes() for m in self._members]
        common = frozenset.intersection(*each)
        modes = set(common - POWER_MODES)
        if all(Mode.TARGET_W in modes_of for modes_of in each):
            modes |= _SITE_POWER_MODES
            if any(modes_of & _METERED_MODES == _METERED_MODES for modes_of in each):
                modes |= _METERED_MODES
        return frozenset(modes)

    async def _each(self, operation: Callable[[_Member], Coroutine[Any, Any, None]]) -> None:
        """``operation`` on every member at once: a silent DER costs the site one member timeout,
        never one per silent DER in turn (which would outlast the hardware actor's deadline).
        Each operation catches its member's device errors itself."""
        if len(self._members) == 1:
            await operation(self._members[0])
            return
        async with anyio.create_task_group() as group:
            for m in self._members:
                group.start_soon(operation, m)

    async def read_nameplate(self) -> Nameplate:
        """Every member's nameplate; the site's is their sum (a member that does not answer is
        left out, and read again at its next telemetry read). Fails only if none answers."""
        await self._each(self._read_member_nameplate)
        plates = [m.nameplate for m in self._members if m.nameplate is not None]
        if not plates:
            raise DriverError("no DER of the site answered: " + self._reasons())
        return _site_nameplate(plates)

    async def _read_member_nameplate(self, m: _Member) -> None:
        try:
            with anyio.fail_after(self._timeout_s):
                m.nameplate = await m.member.driver.read_nameplate()
        except _DEVICE_ERRORS as exc:
            m.failed("read nameplate", exc)
        else:
            m.reachable = True

    async def read_telemetry(self, *, now: float) -> Telemetry:
        """Every member read (at once); the site's reading is the meter (first member, in
        configuration order, that reads it) and the sum of the members' output. A member that
        fails is excluded until it answers again."""

        async def read(m: _Member) -> None:
            if m.nameplate is None:
                await self._read_member_nameplate(m)
                if m.nameplate is None:
                    return
            try:
                with anyio.fail_after(self._timeout_s):
                    telemetry = await m.member.driver.read_telemetry(now=now)
            except _DEVICE_ERRORS as exc:
                m.failed("read telemetry", exc)
                return
            m.answered(telemetry)

        await self._each(read)
        answered = [
            m.telemetry
            for m in self._members
            if m.telemetry is not None and m.telemetry.at_s == now
        ]
        if not answered:
            raise DriverError("no DER of the site answered: " + self._reasons())
        return _site_telemetry(now, answered)

    async def apply(
        self, limits: ControlSettings, *, now: float, reading: Telemetry | None = None
    ) -> ApplyReport:
        """One control period for the site: the site loop over the available members' summed
        rating, its setpoint split among them (``statemachines.der_split``), each member given
        its share as ``target_w`` with the non-power modes. A member whose write fails is
        excluded from the next period's split; only if every member fails does this raise."""
        validate_limits(limits)
        dispatchable = self.dispatchable_modes()
        requested = limits.modes()
        usable = ControlSettings(
            **{mode.value: getattr(limits, mode.value) for mode in requested & dispatchable},
            ramp_time_s=limits.ramp_time_s,
        )
        telemetry = (
            await reading_at(now, reading, self.read_telemetry) if requested & POWER_MODES else None
        )
        ratings = [
            MemberRating(der=m.member.name, rating=m.rating(), available=m.available)
            for m in self._members
            if m.nameplate is not None
        ]
        self._loop_state, decision = step(
            self._loop_state,
            self.loop,
            now=now,
            limits=usable,
            rating=site_rating(ratings),
            site_w=None if telemetry is None else telemetry.site_w,
            der_w=None if telemetry is None else telemetry.der_w,
        )
        shares = split_setpoint(decision.setpoint_w, ratings)
        passed = {mode.value: getattr(usable, mode.value) for mode in usable.modes() - POWER_MODES}
        wrote: list[bool] = []

        async def command(m: _Member) -> None:
            if m.nameplate is None or not m.reachable:
                return  # not answering: commanded again once a read shows it back
            share = shares.get(m.member.name)
            settings = ControlSettings(**passed)
            if share is not None:
                settings = msgspec.structs.replace(settings, target_w=share)
            try:
                with anyio.fail_after(self._timeout_s):
                    report = await m.member.driver.apply(settings, now=now)
            except _DEVICE_ERRORS as exc:
                m.failed("apply limits", exc)
                return
            wrote.append(report.wrote)

        await self._each(command)
        if not any(m.reachable for m in self._members):
            raise DriverError("no DER of the site took the limits: " + self._reasons())
        return ApplyReport(
            applied=frozenset(requested & dispatchable),
            not_applicable=frozenset(requested - dispatchable),
            setpoint_w=decision.setpoint_w,
            wrote=any(wrote),
            clamps=decision.clamps,
            site_limit_met=decision.site_limit_met,
        )

    async def aclose(self) -> None:
        for m in self._members:
            with anyio.CancelScope(shield=True), anyio.move_on_after(self._timeout_s):
                await m.member.driver.aclose()

    def _reasons(self) -> str:
        return "; ".join(f"{m.member.name}: {m.reason}" for m in self._members)


def _sum(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _site_nameplate(plates: Sequence[Nameplate]) -> Nameplate:
    """The site as one DER: ratings and settings summed. No state-of-charge bounds: each member's
    rating is narrowed at its own (``loop_rating``) before the sum."""
    return Nameplate(
        manufacturer=plates[0].manufacturer,
        model=f"{len(plates)} DER" if len(plates) > 1 else plates[0].model,
        serial=plates[0].serial,
        rated_w=_sum([p.rated_w for p in plates]),
        rated_va=_sum([p.rated_va for p in plates]),
        rated_var=_sum([p.rated_var for p in plates]),
        rated_charge_w=_sum([p.rated_charge_w for p in plates]),
        rated_discharge_w=_sum([p.rated_discharge_w for p in plates]),
        capacity_wh=_sum([p.capacity_wh for p in plates]),
        max_w=_sum([p.max_w for p in plates]),
        max_charge_w=_sum([p.max_charge_w for p in plates]),
        max_discharge_w=_sum([p.max_discharge_w for p in plates]),
    )


def _site_telemetry(now: float, readings: Sequence[Telemetry]) -> Telemetry:
    """The site's reading: the meter fields of the first reading that has them, the DER output
    summed, the state of charge of the stored energy over the capacity behind it."""
    meter = next((t for t in readings if t.site_w is not None), readings[0])
    stored = [t.stored_wh for t in readings if t.stored_wh is not None and t.soc_pct]
    capacity = [
        t.stored_wh * 100.0 / t.soc_pct for t in readings if t.stored_wh is not None and t.soc_pct
    ]
    soc = (
        100.0 * sum(stored) / sum(capacity)
        if capacity and sum(capacity) > 0
        else next((t.soc_pct for t in readings if t.soc_pct is not None), None)
    )
    states = [t.state for t in readings if t.state is not None]
    alarms: list[str] = []
    for t in readings:
        alarms += [a for a in t.alarms if a not in alarms]
    connected = [t.connected for t in readings if t.connected is not None]
    storage = [t.storage_connected for t in readings if t.storage_connected is not None]
    return Telemetry(
        at_s=now,
        site_w=meter.site_w,
        site_var=meter.site_var,
        site_v=meter.site_v,
        site_hz=meter.site_hz,
        der_w=_sum([t.der_w for t in readings]),
        der_var=_sum([t.der_var for t in readings]),
        der_v=next((t.der_v for t in readings if t.der_v is not None), None),
        der_hz=next((t.der_hz for t in readings if t.der_hz is not None), None),
        soc_pct=soc,
        stored_wh=_sum([t.stored_wh for t in readings]),
        connected=any(connected) if connected else None,
        storage_connected=any(storage) if storage else None,
        operating=readings[0].operating,
        alarms=tuple(alarms),
        state=(
            OperatingState.OPERATING
            if OperatingState.OPERATING in states
            else (states[0] if states else None)
        ),
    )
