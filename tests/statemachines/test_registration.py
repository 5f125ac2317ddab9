"""Discovery and registration (PROTOCOL.md §2): every (state, input) pair, each step, PIN halt,
re-discovery on 301/404, bounded back-off with a recorded jitter draw, and replay."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.registration_events import BackoffDrawn, RegistrationHalted, RegistrationStep, StepDone
from events.replay import fold
from statemachines.registration import (
    HALTED,
    READY,
    REGISTRATION,
    REGISTRATION_ROWS,
    REGISTRATION_STATES,
    BackoffPolicy,
    RegistrationConfig,
    RegistrationCore,
    RegistrationState,
    evolve_registration,
    pin_check_digit,
)
from statemachines.table import IllegalTransition

S = RegistrationStep
_EXPECTED = {(r.source, r.trigger): r.dest for r in REGISTRATION_ROWS}
_PAIRS = list(itertools.product(REGISTRATION_STATES, REGISTRATION.triggers))
PIN = pin_check_digit(11111)
#: A plausible server clock (2025-11-26): 2030.5 times are epoch seconds.
T0 = 1_764_115_200


def _max(low: int, high: int) -> int:
    return high


def _walk_to(core: RegistrationCore, target: RegistrationStep) -> None:
    core.start(0)
    while core.step is not target:
        step = core.step
        assert step is not None
        if step is S.TIME:
            core.time_learned(T0 + 1000, T0 + 990.0, 1)
        elif step is S.REGISTRATION:
            core.registration_pin(PIN, 1)
        else:
            core.step_done(step, 1, href=f"/{step.value}")


@pytest.mark.parametrize(("state", "trigger"), _PAIRS, ids=[f"{s}-{t}" for s, t in _PAIRS])
def test_registration_every_state_input_pair(state: str, trigger: str) -> None:
    model = RegistrationState(state=state)
    if (state, trigger) in _EXPECTED:
        REGISTRATION.fire(model, trigger)
        assert model.state == _EXPECTED[(state, trigger)]
    else:
        with pytest.raises(IllegalTransition):
            REGISTRATION.fire(model, trigger)
        assert model.state == state


def test_pin_check_digit_makes_digit_sum_a_multiple_of_ten() -> None:
    assert pin_check_digit(11111) == 111115
    assert pin_check_digit(0) == 0
    with pytest.raises(ValueError, match="5 digits"):
        pin_check_digit(123456)


def test_section2_steps_in_order_then_ready() -> None:
    core = RegistrationCore(RegistrationConfig(pin=PIN, nmi="4012345678"))
    core.start(0)
    seen = []
    while (step := core.next_request(1)) is not None:
        seen.append(step)
        if step is S.TIME:
            core.time_learned(T0 + 1000, T0 + 990.0, 1)
        elif step is S.REGISTRATION:
            core.registration_pin(PIN, 1)
        else:
            core.step_done(step, 1)
    assert seen == list(S)
    assert core.state.state == READY
    assert core.state.time_offset_s == 10.0


def test_section2_5_connection_point_skipped_without_nmi() -> None:
    core = RegistrationCore(RegistrationConfig(pin=PIN))
    _walk_to(core, S.REGISTRATION)
    events = core.registration_pin(PIN, 2)
    assert [e.step for e in events if isinstance(e, StepDone)] == [
        S.REGISTRATION,
        S.CONNECTION_POINT,
    ]
    assert core.step is S.PROGRAMS


def test_section2_4_pin_mismatch_halts_with_reason_and_stops_all_traffic() -> None:
    core = RegistrationCore(RegistrationConfig(pin=PIN))
    _walk_to(core, S.REGISTRATION)
    (event,) = core.registration_pin(222220, 5)
    assert isinstance(event, RegistrationHalted)
    assert "PIN mismatch" in event.reason and "222220" in event.reason
    assert core.state.state == HALTED
    assert core.next_request(10**9) is None and core.next_deadline() is None


@pytest.mark.parametrize("status", [301, 404])
@pytest.mark.parametrize("step", [S.END_DEVICE, S.PROGRAMS, S.DER])
def test_section2_rediscovery_on_301_or_404(step: RegistrationStep, status: int) -> None:
    core = RegistrationCore(RegistrationConfig(pin=PIN, nmi="1"))
    _walk_to(core, step)
    core.step_failed(step, status, 7, _max)
    assert core.step is S.DEVICE_CAPABILITY


def test_section2_rediscovery_when_ready_and_a_poll_finds_moved_links() -> None:
    core = RegistrationCore(RegistrationConfig(pin=PIN))
    _walk_to(core, S.MIRROR)
    core.step_done(S.MIRROR, 3)
    core.lost_link(404, 9)
    assert core.step is S.DEVICE_CAPABILITY
    with pytest.raises(ValueError, match="301 and 404"):
        RegistrationCore(RegistrationConfig(pin=PIN), RegistrationState(state=READY)).lost_link(
            500, 1
        )


def test_other_4xx_halts_naming_status_and_step() -> None:
    core = RegistrationCore(RegistrationConfig(pin=PIN))
    _walk_to(core, S.END_DEVICE)
    (event,) = core.step_failed(S.END_DEVICE, 403, 3, _max)
    assert isinstance(event, RegistrationHalted) and "403" in event.reason
    assert "end_device" in event.reason


def test_outcome_for_another_step_is_refused() -> None:
    core = RegistrationCore(RegistrationConfig(pin=PIN))
    core.start(0)
    with pytest.raises(ValueError, match="'time' while at 'device_capability'"):
        core.time_learned(T0, 0.0, 1)


@pytest.mark.parametrize("status", [None, 429, 500, 503])
def test_bounded_backoff_doubles_to_the_cap_with_recorded_jitter(status: int | None) -> None:
    policy = BackoffPolicy(base_s=2.0, cap_s=30.0, jitter_fraction=0.5)
    core = RegistrationCore(RegistrationConfig(pin=PIN, backoff=policy))
    core.start(0)
    draws: list[tuple[int, int]] = []

    def draw(low: int, high: int) -> int:
        draws.append((low, high))
        return high

    now = 0.0
    bases = []
    for _ in range(6):
        (event,) = core.step_failed(S.DEVICE_CAPABILITY, status, now, draw)
        assert isinstance(event, BackoffDrawn)
        bases.append(event.base_delay_s)
        assert event.retry_at_s == now + event.base_delay_s + event.jitter_s
        assert core.next_request(event.retry_at_s - 0.001) is None
        assert core.next_request(event.retry_at_s) is S.DEVICE_CAPABILITY
        now = event.retry_at_s
    assert bases == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert draws[-1] == (0, 15000)  # jitter in ms, at most half the capped delay


def test_a_success_resets_the_backoff() -> None:
    core = RegistrationCore(RegistrationConfig(pin=PIN))
    core.start(0)
    core.step_failed(S.DEVICE_CAPABILITY, 500, 0, _max)
    core.step_done(S.DEVICE_CAPABILITY, 5)
    assert core.state.attempt == 0 and core.next_deadline() is None


_OUTCOMES = st.lists(
    st.sampled_from(["ok", "500", "404", "429", "pin_bad"]), min_size=1, max_size=40
)


@settings(max_examples=60)
@given(outcomes=_OUTCOMES, seed=st.integers(0, 1000))
def test_replay_fold_of_registration_log_equals_live_state(outcomes: list[str], seed: int) -> None:
    core = RegistrationCore(RegistrationConfig(pin=PIN, nmi="1"))
    log = core.start(0)
    now = 0.0

    def draw(low: int, high: int) -> int:
        return low + (seed * 7919) % (high - low + 1)

    for outcome in outcomes:
        step = core.step
        if step is None:
            break
        now = max(now + 1, core.next_deadline() or 0)
        if outcome == "ok" or (outcome == "pin_bad" and step is not S.REGISTRATION):
            if step is S.TIME:
                log += core.time_learned(T0 + now + 3, T0 + now, now)
            elif step is S.REGISTRATION:
                log += core.registration_pin(PIN, now)
            else:
                log += core.step_done(step, now, href=f"/{step.value}/{now}")
        elif outcome == "pin_bad":
            log += core.registration_pin(PIN + 1, now)
        else:
            log += core.step_failed(step, int(outcome), now, draw)
    assert fold(log, evolve_registration, RegistrationState()) == core.state


@settings(max_examples=100)
@given(
    failures=st.integers(1, 40),
    base=st.floats(0.1, 10),
    cap=st.floats(10, 600),
    fraction=st.floats(0, 1),
    pick=st.sampled_from(["low", "high"]),
)
def test_property_backoff_is_bounded_by_cap_plus_jitter(
    failures: int, base: float, cap: float, fraction: float, pick: str
) -> None:
    policy = BackoffPolicy(base_s=base, cap_s=cap, jitter_fraction=fraction)
    core = RegistrationCore(RegistrationConfig(pin=PIN, backoff=policy))
    core.start(0)
    now = 0.0
    for _ in range(failures):
        (event,) = core.step_failed(
            S.DEVICE_CAPABILITY, 503, now, lambda lo, hi: lo if pick == "low" else hi
        )
        assert isinstance(event, BackoffDrawn)
        delay = event.retry_at_s - now
        assert 0 < delay <= cap * (1 + fraction) + 1e-9
        assert event.base_delay_s <= cap
        now = event.retry_at_s


def test_section2_repeated_rediscovery_backs_off_until_the_walk_completes() -> None:
    # A server that keeps answering 404 for our EndDevice: the first re-walk is immediate, the
    # following ones wait a doubling, capped, jittered delay instead of looping DeviceCapability →
    # Time → EndDevice as fast as the server answers. Reaching ready makes the next one immediate.
    policy = BackoffPolicy(base_s=2.0, cap_s=30.0, jitter_fraction=0.0)
    core = RegistrationCore(RegistrationConfig(pin=PIN, backoff=policy))
    _walk_to(core, S.END_DEVICE)
    now = 10.0
    waits = []
    for _ in range(6):
        events = core.step_failed(S.END_DEVICE, 404, now, _max)
        backoffs = [e for e in events if isinstance(e, BackoffDrawn)]
        waits.append(backoffs[0].base_delay_s if backoffs else 0.0)
        assert core.next_request(now + waits[-1] - 0.001) is (
            None if backoffs else S.DEVICE_CAPABILITY
        )
        now += waits[-1]
        assert core.next_request(now) is S.DEVICE_CAPABILITY
        core.step_done(S.DEVICE_CAPABILITY, now)
        core.time_learned(T0 + now, T0 + now, now)
    assert waits == [0.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    core.step_done(S.END_DEVICE, now)
    core.registration_pin(PIN, now)
    for step in (S.PROGRAMS, S.DER, S.MIRROR):
        core.step_done(step, now)
    assert core.state.state == READY
    core.lost_link(404, now + 1)
    assert core.next_request(now + 1) is S.DEVICE_CAPABILITY


def test_section2_4_a_pin_changed_while_ready_halts() -> None:
    ready = RegistrationCore(RegistrationConfig(pin=PIN), RegistrationState(state=READY))
    assert ready.pin_seen(PIN, 10.0) == []
    assert ready.state.state == READY
    (halted,) = ready.pin_seen(222228, 20.0)
    assert isinstance(halted, RegistrationHalted)
    assert "server has 222228" in halted.reason and ready.state.state == HALTED
    with pytest.raises(ValueError, match="pin_seen while at"):
        RegistrationCore(RegistrationConfig(pin=PIN)).pin_seen(PIN, 0.0)


def test_a_time_reread_adopts_a_stepped_server_clock_but_not_resolution_noise() -> None:
    """§2.2: Time is polled at its pollRate; a server clock that stepped gives a new offset."""
    from events.registration_events import TimeOffsetLearned
    from statemachines.registration import TIME_RESYNC_S

    core = RegistrationCore(RegistrationConfig(pin=PIN))
    assert core.time_resynced(T0 + 1000, T0 + 999.3, 5) == []  # whole-second Time: not a step
    assert core.time_resynced(T0 + 1000, T0 + 1000.0 + TIME_RESYNC_S, 5) == []
    (event,) = core.time_resynced(T0 + 1040, T0 + 1000.0, 5)
    assert isinstance(event, TimeOffsetLearned) and event.offset_s == 40.0
    assert core.state.time_offset_s == 40.0


@pytest.mark.parametrize(
    "current_time", [0, 1000, 946_684_799, 4_102_444_800, 2**63 - 1, -(2**63)]
)
def test_time_is_total_an_implausible_server_clock_is_a_server_fault_not_adopted(
    current_time: int,
) -> None:
    """§2.2 with issue 15: a Time.currentTime outside 2000..2100 (a 1970 reset, 2100, the Int64
    limits) is recorded as refused, the offset is not adopted, and the walk goes on."""
    from events.registration_events import TimeOffsetLearned, TimeRefused

    core = RegistrationCore(RegistrationConfig(pin=PIN))
    core.start(0)
    core.step_done(S.DEVICE_CAPABILITY, 1)
    events = core.time_learned(current_time, T0, 2)
    refused = [e for e in events if isinstance(e, TimeRefused)]
    assert len(refused) == 1 and refused[0].current_time == current_time
    assert str(current_time) in refused[0].reason
    assert not any(isinstance(e, TimeOffsetLearned) for e in events)
    assert core.state.time_offset_s is None and core.step is S.END_DEVICE
    ready = RegistrationCore(RegistrationConfig(pin=PIN), RegistrationState(state=READY))
    (again,) = ready.time_resynced(current_time, T0, 5)
    assert isinstance(again, TimeRefused) and ready.state.time_offset_s is None
