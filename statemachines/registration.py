"""Discovery and registration (PROTOCOL.md §2) as a transition table, with bounded, jittered back-off.

The walk follows §2 in order (DeviceCapability → Time → EndDevice → Registration → ConnectionPoint →
programs → DER → mirror → ready). Each step is one request the actor makes (:meth:`RegistrationCore.
next_request`); its outcome comes back as an input. A 301 or 404 means links moved: walk again from
DeviceCapability. 429, 5xx and network errors retry the same step after a capped exponential delay
plus a jitter drawn by the caller's seeded RNG and recorded (``BackoffDrawn``). A PIN mismatch halts
all traffic to the server with the reason (§2.4). Other 4xx halt too: retrying cannot fix them.
"""

from __future__ import annotations

from typing import Final

import msgspec

from events.base import Event
from events.registration_events import (
    BackoffDrawn,
    RediscoveryStarted,
    RegistrationHalted,
    RegistrationStarted,
    RegistrationStep,
    StepDone,
    TimeOffsetLearned,
    TimeRefused,
)
from events.replay import Projection
from events.times import PLAUSIBLE_EARLIEST_S, PLAUSIBLE_LATEST_S, plausible_clock
from statemachines.controls import Draw
from statemachines.table import Row, Table

__all__ = [
    "HALTED",
    "IDLE",
    "READY",
    "REGISTRATION",
    "REGISTRATION_PROJECTION",
    "REGISTRATION_ROWS",
    "REGISTRATION_STATES",
    "BackoffPolicy",
    "RegistrationConfig",
    "RegistrationCore",
    "RegistrationState",
    "TIME_RESYNC_S",
    "evolve_registration",
    "pin_check_digit",
]

IDLE: Final = "idle"
#: A re-read of Time corrects the offset only when the server's clock moved further than this from
#: ours: Time.currentTime is whole seconds, so smaller differences are its resolution, not a step.
TIME_RESYNC_S: Final = 2.0
READY: Final = "ready"
HALTED: Final = "halted"
_STEPS: Final = tuple(RegistrationStep)

REGISTRATION_STATES: Final = (IDLE, *(s.value for s in _STEPS), READY, HALTED)


def _rows() -> tuple[Row, ...]:
    rows = [Row("begin", IDLE, _STEPS[0].value)]
    chain = [s.value for s in _STEPS] + [READY]
    rows += [Row("done", a, b) for a, b in zip(chain, chain[1:], strict=False)]
    rows += [Row("retry", s.value, s.value) for s in _STEPS]
    rows += [Row("rediscover", s, _STEPS[0].value) for s in chain]
    rows += [Row("halt", s, HALTED) for s in chain]
    return tuple(rows)


REGISTRATION_ROWS: Final = _rows()
#: The one shared Machine of discovery/registration; models are :class:`RegistrationState`.
REGISTRATION: Final = Table("registration", REGISTRATION_STATES, IDLE, REGISTRATION_ROWS)


class BackoffPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Retry delay ``min(cap_s, base_s·2^(attempt-1))`` plus jitter in ``[0, jitter_fraction·delay]``."""

    base_s: float = 2.0
    cap_s: float = 300.0
    jitter_fraction: float = 0.25

    def base_delay(self, attempt: int) -> float:
        return min(self.cap_s, self.base_s * 2.0 ** min(attempt - 1, 32))


class RegistrationConfig(msgspec.Struct, frozen=True, kw_only=True):
    """``pin``: the configured registration PIN (with its check digit); ``nmi``: the CSIP-AUS
    ConnectionPoint to PUT (``None``: the step is skipped)."""

    pin: int
    nmi: str | None = None
    backoff: BackoffPolicy = BackoffPolicy()


class RegistrationState(msgspec.Struct, kw_only=True):
    """The walk's position; the slotted model of the shared registration Machine."""

    state: str = IDLE
    attempt: int = 0
    #: Re-walks started since the walk last reached ``ready``: from the second on, they back off.
    rediscoveries: int = 0
    retry_at_s: float | None = None
    hrefs: dict[RegistrationStep, str] = msgspec.field(default_factory=dict)
    time_offset_s: float | None = None
    halted_reason: str | None = None


def pin_check_digit(pin5: int) -> int:
    """§2.4/§3: the 6-digit PIN is the 5 digits plus a check digit making the digit sum a multiple
    of 10 (11111 → 111115)."""
    if not 0 <= pin5 <= 99999:
        raise ValueError(f"a registration PIN has 5 digits before its check digit, got {pin5}")
    total = sum(int(d) for d in str(pin5))
    return pin5 * 10 + (10 - total % 10) % 10


def evolve_registration(state: RegistrationState, event: Event) -> RegistrationState:
    """Apply one event (in place) and return the state: the fold of the ``registration`` stream."""
    match event:
        case RegistrationStarted():
            REGISTRATION.fire(state, "begin")
        case StepDone(step=step, href=href):
            REGISTRATION.fire(state, "done")
            state.attempt = 0
            if state.state == READY:
                state.rediscoveries = 0
            state.retry_at_s = None
            if href is not None:
                state.hrefs[step] = href
        case TimeOffsetLearned(offset_s=offset):
            state.time_offset_s = offset
        case BackoffDrawn():
            REGISTRATION.fire(state, "retry")
            state.attempt = event.attempt
            state.retry_at_s = event.retry_at_s
        case RediscoveryStarted():
            REGISTRATION.fire(state, "rediscover")
            state.attempt = 0
            state.retry_at_s = None
            state.rediscoveries += 1
        case RegistrationHalted(reason=reason):
            REGISTRATION.fire(state, "halt")
            state.halted_reason = reason
            state.retry_at_s = None
        case _:
            pass
    return state


_PRISTINE_REGISTRATIONSTATE: Final = RegistrationState()


def _evolve_from_pristine(state: RegistrationState, event: Event) -> RegistrationState:
    """The projection's evolve: folds mutate in place, so the shared initial is never the target."""
    if state is _PRISTINE_REGISTRATIONSTATE:
        state = RegistrationState()
    return evolve_registration(state, event)


REGISTRATION_PROJECTION: Final = Projection(
    name="registration",
    initial=_PRISTINE_REGISTRATIONSTATE,
    evolve=_evolve_from_pristine,
    state_type=RegistrationState,
)


class RegistrationCore:
    """Sans-IO driver of the walk: ask :meth:`next_request`, report outcomes, sleep until
    :meth:`next_deadline`."""

    __slots__ = ("config", "state")

    def __init__(self, config: RegistrationConfig, state: RegistrationState | None = None) -> None:
        self.config = config
        self.state = state if state is not None else RegistrationState()

    def _emit(self, out: list[Event], event: Event) -> None:
        evolve_registration(self.state, event)
        out.append(event)

    @property
    def step(self) -> RegistrationStep | None:
        try:
            return RegistrationStep(self.state.state)
        except ValueError:
            return None

    def start(self, now: float) -> list[Event]:
        out: list[Event] = []
        self._emit(out, RegistrationStarted(at_s=now))
        return out

    def next_request(self, now: float) -> RegistrationStep | None:
        """The step to perform now; ``None`` while backing off, when ready, halted or not started."""
        if self.state.retry_at_s is not None and now < self.state.retry_at_s:
            return None
        return self.step

    def next_deadline(self) -> float | None:
        return self.state.retry_at_s

    def _expect(self, step: RegistrationStep) -> None:
        if self.step is not step:
            raise ValueError(f"outcome for step {step.value!r} while at {self.state.state!r}")

    def step_done(self, step: RegistrationStep, now: float, href: str | None = None) -> list[Event]:
        """A step succeeded; CSIP-AUS ConnectionPoint is skipped at once without an NMI (§2.5)."""
        self._expect(step)
        if step is RegistrationStep.REGISTRATION:
            raise ValueError("the Registration step completes through registration_pin()")
        if step is RegistrationStep.TIME:
            raise ValueError("the Time step completes through time_learned()")
        out: list[Event] = []
        self._emit(out, StepDone(step=step, href=href, at_s=now))
        self._skip_connection_point(out, now)
        return out

    def time_learned(self, server_time_s: int, local_time_s: float, now: float) -> list[Event]:
        """§2.2: keep the offset to the server's clock; never step the OS clock. A server time
        no clock can plausibly show is a server fault (issue 15): recorded, not adopted, and the
        walk goes on on the clock it has."""
        self._expect(RegistrationStep.TIME)
        out: list[Event] = []
        if plausible_clock(server_time_s):
            self._emit(out, TimeOffsetLearned(offset_s=server_time_s - local_time_s, at_s=now))
        else:
            self._emit(out, _time_refused(server_time_s, now))
        self._emit(out, StepDone(step=RegistrationStep.TIME, at_s=now))
        return out

    def time_resynced(self, server_time_s: int, local_time_s: float, now: float) -> list[Event]:
        """§2.2 and §4 rule 15: Time is polled at its pollRate; a server clock that stepped (more
        than :data:`TIME_RESYNC_S` away from our offset) gives a new offset, so event times stay on
        the server's clock. Nothing is recorded for resolution noise."""
        out: list[Event] = []
        if not plausible_clock(server_time_s):
            self._emit(out, _time_refused(server_time_s, now))
            return out
        offset = server_time_s - local_time_s
        if abs(offset) <= TIME_RESYNC_S:
            return []
        self._emit(out, TimeOffsetLearned(offset_s=offset, at_s=now))
        return out

    def registration_pin(self, pin: int, now: float, href: str | None = None) -> list[Event]:
        """§2.4: the server's PIN must equal ours, else stop all traffic and say why."""
        self._expect(RegistrationStep.REGISTRATION)
        out: list[Event] = []
        if self._halted_on_pin(out, pin, now):
            return out
        self._emit(out, StepDone(step=RegistrationStep.REGISTRATION, href=href, at_s=now))
        self._skip_connection_point(out, now)
        return out

    def pin_seen(self, pin: int, now: float) -> list[Event]:
        """§2.4 while ready: the Registration is read again at its pollRate; a PIN that no longer
        matches stops all traffic, exactly as a mismatch found during the walk does."""
        if self.state.state != READY:
            raise ValueError(f"pin_seen while at {self.state.state!r}")
        out: list[Event] = []
        self._halted_on_pin(out, pin, now)
        return out

    def _halted_on_pin(self, out: list[Event], pin: int, now: float) -> bool:
        """Halt (into ``out``) when the server's PIN is not ours; says whether it did."""
        if pin == self.config.pin:
            return False
        self._emit(
            out,
            RegistrationHalted(
                step=RegistrationStep.REGISTRATION,
                reason=f"PIN mismatch: server has {pin:06d}, configured {self.config.pin:06d}",
                at_s=now,
            ),
        )
        return True

    def _skip_connection_point(self, out: list[Event], now: float) -> None:
        if self.step is RegistrationStep.CONNECTION_POINT and self.config.nmi is None:
            self._emit(out, StepDone(step=RegistrationStep.CONNECTION_POINT, at_s=now))

    def step_failed(
        self, step: RegistrationStep, http_status: int | None, now: float, draw: Draw
    ) -> list[Event]:
        """§2 and the Links rules: 301/404 → re-discover; 429, 5xx, network (``None``) → back off;
        any other 4xx → halt (retrying cannot fix it).

        A re-walk that ends in 301/404 again before reaching ``ready`` (a server that keeps
        answering 404 for our EndDevice) backs off like any failure: without it the walk would
        loop through DeviceCapability, Time and EndDevice as fast as the server answers."""
        self._expect(step)
        out: list[Event] = []
        if http_status in (301, 404):
            self._emit(out, RediscoveryStarted(step=step, http_status=http_status, at_s=now))
            if self.state.rediscoveries > 1:
                self._backoff(
                    out, RegistrationStep.DEVICE_CAPABILITY, now, draw, self.state.rediscoveries - 1
                )
        elif http_status is None or http_status == 429 or http_status >= 500:
            self._backoff(out, step, now, draw)
        else:
            self._emit(
                out,
                RegistrationHalted(
                    step=step, reason=f"HTTP {http_status} on {step.value}", at_s=now
                ),
            )
        return out

    def lost_link(self, http_status: int, now: float) -> list[Event]:
        """A 301/404 while ready (a poll found the links moved): walk again (§2)."""
        if self.state.state != READY:
            raise ValueError(f"lost_link while at {self.state.state!r}")
        if http_status not in (301, 404):
            raise ValueError(f"only 301 and 404 mean moved links, got {http_status}")
        out: list[Event] = []
        self._emit(
            out,
            RediscoveryStarted(step=RegistrationStep.MIRROR, http_status=http_status, at_s=now),
        )
        return out

    def _backoff(
        self,
        out: list[Event],
        step: RegistrationStep,
        now: float,
        draw: Draw,
        attempt: int | None = None,
    ) -> None:
        """Bounded back-off: the delay doubles up to ``cap_s``; the jitter (milliseconds) is drawn."""
        if attempt is None:
            attempt = self.state.attempt + 1
        policy = self.config.backoff
        base = policy.base_delay(attempt)
        jitter = draw(0, int(base * policy.jitter_fraction * 1000)) / 1000.0
        self._emit(
            out,
            BackoffDrawn(
                step=step,
                attempt=attempt,
                base_delay_s=base,
                jitter_s=jitter,
                retry_at_s=now + base + jitter,
                at_s=now,
            ),
        )


def _time_refused(server_time_s: int, now: float) -> TimeRefused:
    return TimeRefused(
        current_time=server_time_s,
        reason=(
            f"Time.currentTime {server_time_s} is outside {PLAUSIBLE_EARLIEST_S}..."
            f"{PLAUSIBLE_LATEST_S} (2000-01-01..2100-01-01): the server's clock is not adopted"
        ),
        at_s=now,
    )
