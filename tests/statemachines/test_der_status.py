"""When DERStatus is PUT (PROTOCOL.md §2 step 7): the first full status, every change debounced,
never missed, retried with a bounded back-off."""

from __future__ import annotations

import msgspec
import pytest

from events.der_info import DerStatusInfo
from statemachines.der_status import (
    CONTROL,
    FIRST,
    ReporterConfig,
    StatusReporter,
    status_changes,
)

HREF = "/edev/1/der/1/ders"
OPERATING = DerStatusInfo(
    reading_s=100,
    gen_connect_status=0b111,
    stor_connect_status=0b111,
    operational_mode_status=2,
    state_of_charge_pct=50.0,
    inverter_status=4,
    alarm_status=0,
)
STOPPED = msgspec.structs.replace(
    OPERATING, gen_connect_status=0b011, operational_mode_status=1, inverter_status=1
)


def acked_first(now: float = 0.0) -> StatusReporter:
    reporter = StatusReporter(ReporterConfig(debounce_s=1.0))
    reporter.target(HREF, now)
    reporter.observed(OPERATING, now)
    put = reporter.due(now)
    assert put is not None and put.reasons == (FIRST,)
    reporter.acknowledged(put, now)
    return reporter


def test_the_first_status_waits_for_a_reading_and_a_target_then_goes_at_once() -> None:
    reporter = StatusReporter()
    reporter.target(HREF, 0.0)
    assert reporter.next_deadline() is None and reporter.due(5.0) is None  # no reading yet
    reporter.observed(OPERATING, 7.0)
    put = reporter.due(7.0)
    assert put is not None
    assert (put.href, put.status, put.reasons) == (HREF, OPERATING, (FIRST,))


def test_any_status_change_is_put_after_the_debounce_window_with_the_fields_named() -> None:
    reporter = acked_first()
    reporter.observed(STOPPED, 10.0)
    assert reporter.next_deadline() == 11.0
    assert reporter.due(10.5) is None
    put = reporter.due(11.0)
    assert put is not None and put.status == STOPPED
    assert put.reasons == ("genConnectStatus", "operationalModeStatus", "inverterStatus")


def test_changes_inside_the_window_travel_together_and_the_newest_goes_out() -> None:
    reporter = acked_first()
    reporter.observed(STOPPED, 10.0)
    faulted = msgspec.structs.replace(STOPPED, gen_connect_status=0b10001, inverter_status=7)
    reporter.observed(faulted, 10.6)
    assert reporter.next_deadline() == 11.0  # the window does not slide
    put = reporter.due(11.0)
    assert put is not None and put.status == faulted


def test_a_status_back_to_what_was_sent_inside_the_window_is_not_put() -> None:
    reporter = acked_first()
    reporter.observed(STOPPED, 10.0)
    reporter.observed(msgspec.structs.replace(OPERATING, reading_s=110), 10.5)
    assert reporter.next_deadline() is None and reporter.due(11.0) is None


def test_a_change_while_a_put_is_in_flight_is_never_missed() -> None:
    reporter = acked_first()
    reporter.observed(STOPPED, 10.0)
    put = reporter.due(11.0)
    assert put is not None
    reporter.observed(OPERATING, 11.2)  # arrives while the PUT of STOPPED is on the wire
    reporter.acknowledged(put, 11.5)
    assert reporter.sent == STOPPED
    assert reporter.next_deadline() == 12.5
    again = reporter.due(12.5)
    assert again is not None and again.status == OPERATING


def test_a_failed_put_is_retried_with_a_bounded_doubling_back_off_and_the_newest_status() -> None:
    reporter = StatusReporter(ReporterConfig(retry_initial_s=2.0, retry_max_s=10.0))
    reporter.target(HREF, 0.0)
    reporter.observed(OPERATING, 0.0)
    now, delays = 0.0, []
    for _ in range(5):
        put = reporter.due(now)
        assert put is not None
        delays.append(reporter.failed(put, now))
        now = reporter.next_deadline() or -1.0
    assert delays == [2.0, 4.0, 8.0, 10.0, 10.0]
    reporter.observed(STOPPED, now - 1)  # changed during the back-off: the retry carries it
    put = reporter.due(now)
    assert put is not None and put.status == STOPPED and put.reasons == (FIRST,)
    reporter.acknowledged(put, now)
    reporter.observed(OPERATING, now + 1)
    put = reporter.due(now + 2)
    assert put is not None
    assert reporter.failed(put, now + 2) == 2.0  # success reset the back-off


def test_a_retry_after_longer_than_the_back_off_is_honoured() -> None:
    reporter = StatusReporter(ReporterConfig(retry_initial_s=2.0, retry_max_s=60.0))
    reporter.target(HREF, 0.0)
    reporter.observed(OPERATING, 0.0)
    put = reporter.due(0.0)
    assert put is not None
    assert reporter.failed(put, 0.0, retry_after_s=120.0) == 120.0
    assert reporter.due(119.0) is None and reporter.due(120.0) is not None


def test_state_of_charge_is_put_again_only_beyond_the_threshold() -> None:
    assert status_changes(OPERATING, msgspec.structs.replace(OPERATING, state_of_charge_pct=54.9),
                          soc_step_pct=5.0) == ()  # fmt: skip
    assert status_changes(
        OPERATING, msgspec.structs.replace(OPERATING, state_of_charge_pct=45.0), soc_step_pct=5.0
    ) == ("stateOfChargeStatus",)
    assert status_changes(
        OPERATING, msgspec.structs.replace(OPERATING, state_of_charge_pct=None), soc_step_pct=5.0
    ) == ("stateOfChargeStatus",)
    assert status_changes(
        OPERATING, msgspec.structs.replace(OPERATING, alarm_status=1), soc_step_pct=5.0
    ) == ("alarmStatus",)


def test_after_a_control_takes_effect_the_status_is_put_even_when_unchanged() -> None:
    """§2.7: re-PUT after each control takes effect — once the device was sampled under it."""
    reporter = StatusReporter()
    reporter.target(HREF, 0.0)
    reporter.observed(OPERATING, 0.0, control=1)
    put = reporter.due(0.0)
    assert put is not None
    reporter.acknowledged(put, 0.0)
    reporter.observed(OPERATING, 5.0, control=1)
    assert reporter.next_deadline() is None
    reporter.observed(OPERATING, 10.0, control=2)
    put = reporter.due(11.0)
    assert put is not None and put.reasons == (CONTROL,)


def test_a_new_target_gets_the_whole_status_at_once() -> None:
    reporter = acked_first()
    reporter.target("/der/2/ders", 30.0)
    put = reporter.due(30.0)
    assert put is not None and put.href == "/der/2/ders" and put.reasons == (FIRST,)


def test_a_halted_link_stops_reporting() -> None:
    reporter = acked_first()
    reporter.halted()
    reporter.observed(STOPPED, 10.0)
    assert reporter.next_deadline() is None and reporter.due(20.0) is None


@pytest.mark.parametrize("field", ["debounce_s", "soc_step_pct", "retry_max_s"])
def test_a_bad_reporter_setting_is_refused_naming_it(field: str) -> None:
    with pytest.raises(ValueError, match=f"ReporterConfig.{field}="):
        ReporterConfig(**{field: float("nan")})


def test_replans_says_whether_a_status_would_move_the_next_put_without_observing_it() -> None:
    """What the DER status actor's mailbox asks before it wakes the actor (read only)."""
    reporter = acked_first()
    assert not reporter.replans(OPERATING)  # as sent: nothing owed, nothing planned
    soc_drift = msgspec.structs.replace(OPERATING, state_of_charge_pct=52.0)
    assert not reporter.replans(soc_drift)  # below the step: still nothing owed
    assert reporter.replans(STOPPED)  # a change: a PUT becomes owed
    assert reporter.next_deadline() is None  # ... and nothing was observed
    reporter.observed(STOPPED, 10.0)
    assert not reporter.replans(STOPPED)  # owed already, planned already: the time stays
    assert reporter.replans(OPERATING)  # back to what was sent: no longer owed
    put = reporter.due(11.0)
    assert put is not None
    assert not reporter.replans(OPERATING)  # in flight: its outcome plans again
