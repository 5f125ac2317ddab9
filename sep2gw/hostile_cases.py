"""The gateway against each hostile server behaviour (issue 15 point 6): one world per behaviour of
``sep2gw.simserver.hostile``, and the figures that say whether the gateway survived it.

Used by ``tests/sep2gw/test_hostile_server.py`` (the test family, which asserts
:func:`problems` is empty) and ``benchmarks/hostile_bench.py`` (which adds memory and loop-stall
figures). A case runs the whole gateway (mutual TLS, HTTP, SunSpec over Modbus on pipes) on trio's
autojump clock for a few virtual minutes; connection-level faults and redirects open after the
first registration walk (``LINK_FAULT_AT_S``) for ``LINK_FAULT_S``, document-level faults for the
whole run.

What survives means (:func:`problems`):

- no actor failed (no ``runtime.actor_failed.v1`` record): server data is never our bug;
- at most :data:`MAX_REQUESTS_PER_MIN` requests reached the server in any virtual minute, and at
  most :data:`MAX_FAULT_CONNECTIONS` connections were opened while a connection-level fault lasted
  (issue 15: ~20 in 150 s), so no failure became a hot loop;
- every setpoint the hardware actor wrote lies within the battery's ratings, and the battery never
  held a WMax above its rating;
- the rejection is in the log: at least one record of the case's ``evidence`` types (a link
  back-off, a refused control or default, a refused server clock, …).
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import msgspec
import trio

from actors.hardware import HardwareConfig
from events.hardware_events import LimitsApplied
from events.registry import every_version
from events.runtime_events import ActorFailed
from sep2gw.simserver.hostile import (
    CONNECTION_LEVEL,
    DESCRIPTIONS,
    FAULT_CLASS,
    LINK_FAULT_AT_S,
    LINK_FAULT_S,
    HostileUtilityServer,
    hostile_scenario,
)
from sep2gw.simserver.scenario import HOSTILE_BEHAVIOURS, HostileName
from sep2gw.world import WorldResult, run_world
from transport.http.outcome import MAX_RETRY_AFTER_S

__all__ = [
    "CASES",
    "MAX_FAULT_CONNECTIONS",
    "MAX_REQUESTS_PER_MIN",
    "HostileCase",
    "HostileFigures",
    "RealTimeLimit",
    "problems",
    "run_case",
]

#: Requests the server may see in any virtual minute (the registration walk and first polls
#: included: about 30).
MAX_REQUESTS_PER_MIN: Final = 60
#: Connections the gateway may open while a connection-level fault lasts (LINK_FAULT_S, 150 s).
MAX_FAULT_CONNECTIONS: Final = 20
_W_SLACK: Final = 1.0

_ACTOR_FAILED: Final = "runtime.actor_failed.v1"
#: The link held the failing resource (or the whole link) back, and said why.
_LINK: Final = frozenset({"link.backoff.v1"})
_WALK: Final = frozenset({"registration.backoff_drawn.v1", "link.backoff.v1"})


@dataclass(frozen=True, slots=True)
class HostileCase:
    name: HostileName
    #: Record types of which at least one must be in the log: the rejection, recorded.
    evidence: frozenset[str]
    seconds: float = LINK_FAULT_AT_S + LINK_FAULT_S + 30.0
    #: The server must hear from the gateway again after the fault (its window) has ended.
    must_resume: bool = False

    @property
    def fault_class(self) -> str:
        return FAULT_CLASS[self.name]

    @property
    def description(self) -> str:
        return DESCRIPTIONS[self.name]


def _evidence(name: HostileName) -> frozenset[str]:
    if name in CONNECTION_LEVEL and not name.startswith("retry_after"):
        return _LINK
    if name.startswith("retry_after"):
        return _WALK  # the walk's first request gets the 503: a drawn back-off, not a stop
    if name.startswith("redirect"):
        return frozenset({"registration.rediscovery.v1"})
    if name in ("control_negative_limits", "control_fixed_w_327", "control_max_lim_655"):
        return frozenset({"control.rejected.v1"})
    if name in ("poll_rate_1s", "poll_rate_huge", "post_rate_1s"):
        return frozenset({"poll.rate_bounded.v1"})  # the rate sent and the rate used, on record
    if name.startswith("time_"):
        return frozenset({"registration.time_refused.v1"})
    if name == "xml_unique_names":
        # Names beyond the parser's budget of unknown names refuse the document (a server fault
        # held back like any unusable body); the memory figure is benchmarks/hostile_bench.py's.
        return frozenset({"link.backoff.v1"})
    # Amplification: the list or document refused, or the cap hit, is a server fault on record.
    return frozenset({"link.backoff.v1", "link.list_capped.v1"})


#: Header abuse: the 503s last a minute from the start; the gateway must be heard again within
#: the longest wait a Retry-After may impose (MAX_RETRY_AFTER_S) and a few minutes of back-off.
HEADER_FAULT_S: Final = 60.0


def _case(name: HostileName) -> HostileCase:
    if name.startswith("retry_after"):
        return HostileCase(
            name, _evidence(name), seconds=MAX_RETRY_AFTER_S + 360.0, must_resume=True
        )
    return HostileCase(name, _evidence(name))


#: One case per behaviour, in the library's order.
CASES: Final[tuple[HostileCase, ...]] = tuple(_case(name) for name in HOSTILE_BEHAVIOURS)


class HostileFigures(msgspec.Struct, kw_only=True):
    """What one case did, in virtual time unless named ``real``."""

    name: str
    fault_class: str
    seconds: float
    requests: int
    connections: int
    max_requests_per_min: int
    fault_connections: int
    injected: int
    actor_failures: list[str]
    setpoint_faults: list[str]
    evidence_found: list[str]
    #: Requests the server saw after the hostile window closed.
    requests_after: int
    real_s: float


def _max_per_window(times: Sequence[float], window_s: float = 60.0) -> int:
    ordered = sorted(times)
    return max(
        (bisect.bisect_left(ordered, t + window_s) - i for i, t in enumerate(ordered)), default=0
    )


def _setpoint_faults(result: WorldResult) -> list[str]:
    """Setpoints outside the battery's ratings (the simulation monitor's rule, on the log)."""
    faults: list[str] = []
    if result.battery is None:
        return faults
    b = result.battery.battery
    low = -min(b.max_charge_w, b.max_w) - _W_SLACK
    high = min(b.max_discharge_w, b.max_w) + _W_SLACK
    for record in result.store.read(
        types=sorted(every_version(LimitsApplied))
    ):
        event = record.event
        assert isinstance(event, LimitsApplied)
        if event.setpoint_w is not None and not low <= event.setpoint_w <= high:
            faults.append(f"seq {record.seq}: setpoint {event.setpoint_w:.1f} W")
    if result.battery.settings_max_w > b.max_w + _W_SLACK:
        faults.append(f"WMax {result.battery.settings_max_w:.0f} W > rating {b.max_w:.0f} W")
    return faults


class BusyLoop(RuntimeError):
    """The world took longer in real time than its limit: under the autojump clock, a task that
    never blocks freezes virtual time, so this is how a hot loop shows."""


class RealTimeLimit(trio.abc.Instrument):
    """Stops a run that takes more than ``seconds`` of real time (with :class:`BusyLoop`, raised
    inside the run, which trio reports as a crash)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._timer: threading.Timer | None = None

    def before_run(self) -> None:
        token = trio.lowlevel.current_trio_token()
        self._timer = threading.Timer(self.seconds, lambda: token.run_sync_soon(self._expired))
        self._timer.daemon = True
        self._timer.start()

    def _expired(self) -> None:
        raise BusyLoop(f"the world took more than {self.seconds:g} s of real time (a busy loop?)")

    def after_run(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def run_case(
    case: HostileCase,
    site: Path,
    *,
    seed: int = 1,
    instruments: Sequence[trio.abc.Instrument] = (),
    real_time_limit_s: float = 120.0,
) -> tuple[HostileFigures, WorldResult]:
    """Run the gateway against ``case`` (``site`` holds ``pki/`` from ``sep2gw certs init``);
    a run over ``real_time_limit_s`` of real time stops (a hot loop)."""
    scenario = hostile_scenario(case.name, duration_s=_window_s(case))
    began = time.perf_counter()
    result = run_world(
        scenario,
        seed=seed,
        seconds=case.seconds,
        site=site,
        monitor=False,
        instruments=[*instruments, RealTimeLimit(real_time_limit_s)],
        # An hour-long case samples the battery once a minute (the same code, fewer steps).
        hardware=HardwareConfig(sample_period_s=60.0, post_interval_s=60)
        if case.must_resume
        else None,
    )
    real_s = time.perf_counter() - began
    server = result.server
    assert isinstance(server, HostileUtilityServer)
    window = scenario.hostile[0]
    opens = server.start + window.at_s
    in_fault = [t for t in server.connection_times if opens <= t < opens + window.duration_s]
    types = {r.type for r in result.store.read_raw()}
    failures = [
        f"{e.actor}: {e.error_type}: {e.error}"
        for r in result.store.read(types=[_ACTOR_FAILED])
        if isinstance(e := r.event, ActorFailed)
    ]
    figures = HostileFigures(
        name=case.name,
        fault_class=case.fault_class,
        seconds=case.seconds,
        requests=len(server.requests),
        connections=len(server.connection_times),
        max_requests_per_min=_max_per_window([q.time for q in server.requests]),
        fault_connections=len(in_fault) if case.name in CONNECTION_LEVEL else 0,
        injected=sum(server.hostile.injected.values()),
        actor_failures=failures,
        setpoint_faults=_setpoint_faults(result),
        evidence_found=sorted(types & case.evidence),
        requests_after=sum(q.time >= opens + window.duration_s for q in server.requests),
        real_s=real_s,
    )
    return figures, result


def _window_s(case: HostileCase) -> float:
    if case.must_resume:
        return HEADER_FAULT_S
    if case.name in CONNECTION_LEVEL or case.name.startswith("redirect"):
        return LINK_FAULT_S
    return case.seconds


def problems(case: HostileCase, figures: HostileFigures) -> list[str]:
    """Everything that says the gateway did not survive ``case`` (empty: it did)."""
    found: list[str] = []
    if figures.injected == 0:
        found.append("the fault was never injected (the case tests nothing)")
    if figures.actor_failures:
        found.append(f"actors failed: {figures.actor_failures[:3]}")
    if figures.max_requests_per_min > MAX_REQUESTS_PER_MIN:
        found.append(
            f"{figures.max_requests_per_min} requests in one virtual minute "
            f"(at most {MAX_REQUESTS_PER_MIN})"
        )
    if figures.fault_connections > MAX_FAULT_CONNECTIONS:
        found.append(
            f"{figures.fault_connections} connections during the {LINK_FAULT_S:g} s fault "
            f"(at most {MAX_FAULT_CONNECTIONS})"
        )
    if figures.setpoint_faults:
        found.append(f"setpoints beyond the battery's ratings: {figures.setpoint_faults[:3]}")
    if case.must_resume and figures.requests_after == 0:
        found.append("no request after the fault ended: the server stopped all traffic")
    if not figures.evidence_found:
        found.append(f"the rejection is not in the log (none of {sorted(case.evidence)})")
    return found
