"""The pricing core: price intervals follow the event rules (PROTOCOL.md §4), the price in force is
recorded on every change, and the fold is pure and needs no decision of its own."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from events.base import Event
from events.der_model import ResponseStatus
from events.pricing_events import (
    IntervalCancelDrawn,
    IntervalCancelled,
    IntervalCompleted,
    IntervalContentChanged,
    IntervalIgnored,
    IntervalReceived,
    IntervalRemoved,
    IntervalStarted,
    IntervalSuperseded,
    PriceBlock,
    PriceInForce,
    PriceInterval,
    PriceResponseIntended,
    RateDetails,
    RateSeen,
)
from events.registry import CATALOGUE
from statemachines.pricing import (
    PRICE_LIFECYCLE,
    PricingConfig,
    PricingCore,
    PricingState,
    evolve,
    fold,
    price_in_force,
)
from statemachines.responses import CORE_2018, SAPN

LFDI = "3e4f45ab31edfe5b67e343e5e4562e31984e23e5"
RATE = "RC1"


def draw_max(low: int, high: int) -> int:
    return high


def interval(mrid: str, start: int, duration: int, **kw: Any) -> PriceInterval:
    fields: dict[str, Any] = {
        "href": f"/tti/{mrid}",
        "rate_mrid": RATE,
        "creation_time": 0,
        "tou_tier": 1,
        "blocks": (PriceBlock(consumption_block=1, start_value=0, price=25),),
        "response_required": 0b011,
        "reply_to": "/rsps/price",
    }
    fields.update(kw)
    return PriceInterval(mrid=mrid, start=start, duration=duration, **fields)


def rate(**kw: Any) -> RateDetails:
    fields: dict[str, Any] = {
        "tariff_mrid": "TP1",
        "tariff_href": "/tp/1",
        "tariff_primacy": 1,
        "currency": 36,
        "price_power_of_ten": -3,
        "rate_mrid": RATE,
        "rate_href": "/tp/1/rc/1",
        "uom": 72,
        "reading_power_of_ten": 3,
        "flow_direction": 1,
    }
    fields.update(kw)
    return RateDetails(**fields)


def core(profile: Any = CORE_2018) -> PricingCore:
    return PricingCore(PricingConfig(lfdi=LFDI, profile=profile))


def responses(events: list[Event]) -> list[tuple[str, ResponseStatus]]:
    return [(e.mrid, e.status) for e in events if isinstance(e, PriceResponseIntended)]


def of(events: list[Event], kind: type[Event]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def test_every_pricing_event_is_in_the_catalogue_and_round_trips() -> None:
    c = core()
    log = [
        *c.receive_rate(rate(), 0.0),
        *c.receive_intervals([interval("A", 100, 50)], 0.0, draw_max),
        *c.handle_timer(100.0),
        *c.handle_timer(150.0),
    ]
    for event in log:
        assert CATALOGUE.decode(CATALOGUE.encode(event)) == event


def test_receipt_answers_received_and_the_interval_runs_its_period() -> None:
    """§4 rules 2, 6, 9: Received on first sight, Started at the start, Completed at the end;
    the price is in force exactly for the period."""
    c = core()
    log = c.receive_intervals([interval("A", 100, 50)], 10.0, draw_max)
    assert of(log, IntervalReceived)[0].interval.mrid == "A"
    assert responses(log) == [("A", ResponseStatus.RECEIVED)]
    assert c.next_deadline() == 100.0
    assert c.handle_timer(99.0) == []
    started = c.handle_timer(100.0)
    assert [type(e) for e in started] == [IntervalStarted, PriceResponseIntended, PriceInForce]
    assert responses(started) == [("A", ResponseStatus.STARTED)]
    assert of(started, PriceInForce)[0].blocks[0].price == 25
    rec = price_in_force(c.state, RATE)
    assert rec is not None and rec.interval.mrid == "A"
    assert c.next_deadline() == 150.0
    ended = c.handle_timer(150.0)
    assert responses(ended) == [("A", ResponseStatus.COMPLETED)]
    assert of(ended, PriceInForce) == [PriceInForce(rate_mrid=RATE, interval_mrid=None, at_s=150.0)]
    assert c.next_deadline() is None


def test_an_interval_received_inside_its_period_starts_at_once() -> None:
    c = core()
    log = c.receive_intervals([interval("A", 100, 50)], 120.0, draw_max)
    assert responses(log) == [("A", ResponseStatus.RECEIVED), ("A", ResponseStatus.STARTED)]
    assert of(log, PriceInForce)[0].interval_mrid == "A"


def test_an_interval_over_before_receipt_is_ignored_and_answered_late_per_profile() -> None:
    """§4 rule 3: ignored; 254 where the profile says so (2018 yes, SAPN no)."""
    c = core()
    log = c.receive_intervals([interval("A", 100, 50)], 150.0, draw_max)
    assert of(log, IntervalIgnored)[0].interval.mrid == "A"
    assert responses(log) == [("A", ResponseStatus.RECEIVED_LATE)]
    sapn = core(SAPN)
    assert responses(sapn.receive_intervals([interval("A", 100, 50)], 150.0, draw_max)) == []
    assert c.next_deadline() is None


def test_randomisation_is_drawn_once_and_kept() -> None:
    """§4 preamble: ρ drawn once per mRID and persisted; a re-poll draws nothing."""
    c = core()
    draws: list[tuple[int, int]] = []

    def draw(low: int, high: int) -> int:
        draws.append((low, high))
        return high

    iv = interval("A", 100, 50, randomize_start=30, randomize_duration=-10)
    received = of(c.receive_intervals([iv], 0.0, draw), IntervalReceived)[0]
    assert (received.rho_start_s, received.rho_duration_s) == (30, 0)
    assert draws == [(0, 30), (-10, 0)]
    c.receive_intervals([iv], 5.0, draw)
    assert len(draws) == 2
    assert c.state.intervals["A"].effective_start == 130.0
    assert c.state.intervals["A"].effective_end == 180.0


def test_a_newer_overlapping_interval_of_the_same_rate_supersedes_at_its_start() -> None:
    """§4 rule 7 per rate: the later creationTime wins at the winner's effective start; the loser,
    superseded before it started, gets 1 then 7, never 2."""
    c = core()
    old = interval("OLD", 200, 100, creation_time=1)
    new = interval(
        "NEW",
        200,
        100,
        creation_time=2,
        blocks=(PriceBlock(consumption_block=1, start_value=0, price=90),),
    )
    c.receive_intervals([old, new], 0.0, draw_max)
    log = c.handle_timer(200.0)
    superseded = of(log, IntervalSuperseded)
    assert [(e.mrid, e.by) for e in superseded] == [("OLD", "NEW")]
    assert ("OLD", ResponseStatus.STARTED) not in responses(log)
    assert ("OLD", ResponseStatus.SUPERSEDED) in responses(log)
    assert of(log, PriceInForce)[0].blocks[0].price == 90
    assert c.state.intervals["OLD"].responses == (
        ResponseStatus.RECEIVED,
        ResponseStatus.SUPERSEDED,
    )


def test_an_older_interval_runs_until_the_newer_one_starts() -> None:
    c = core()
    old = interval("OLD", 100, 200, creation_time=1)
    new = interval("NEW", 200, 100, creation_time=2)
    c.receive_intervals([old, new], 0.0, draw_max)
    first = c.handle_timer(100.0)
    assert of(first, PriceInForce)[0].interval_mrid == "OLD"
    second = c.handle_timer(200.0)
    assert [(e.mrid, e.by) for e in of(second, IntervalSuperseded)] == [("OLD", "NEW")]
    assert of(second, PriceInForce)[0].interval_mrid == "NEW"


def test_intervals_of_different_rates_never_supersede_each_other() -> None:
    c = core()
    c.receive_intervals(
        [
            interval("A", 100, 100, creation_time=1),
            interval("B", 100, 100, creation_time=2, rate_mrid="RC2"),
        ],
        0.0,
        draw_max,
    )
    log = c.handle_timer(100.0)
    assert of(log, IntervalSuperseded) == []
    assert sorted(e.rate_mrid for e in of(log, PriceInForce)) == ["RC1", "RC2"]


def test_adjacent_intervals_do_not_conflict() -> None:
    c = core()
    c.receive_intervals(
        [interval("A", 100, 100, creation_time=2), interval("B", 200, 100, creation_time=1)],
        0.0,
        draw_max,
    )
    c.handle_timer(100.0)
    log = c.handle_timer(200.0)
    assert of(log, IntervalSuperseded) == []
    assert [e.interval_mrid for e in of(log, PriceInForce)] == ["B"]
    assert responses(log) == [("A", ResponseStatus.COMPLETED), ("B", ResponseStatus.STARTED)]


def test_server_cancellation_stops_now_and_answers_cancelled() -> None:
    """§4 rule 8: status 2 → stop now, Response 6 (also before the start)."""
    c = core()
    c.receive_intervals([interval("A", 100, 100)], 0.0, draw_max)
    c.handle_timer(100.0)
    log = c.receive_intervals([interval("A", 100, 100, server_status=2)], 130.0, draw_max)
    assert of(log, IntervalCancelled)[0].server_status == 2
    assert responses(log) == [("A", ResponseStatus.CANCELLED)]
    assert of(log, PriceInForce) == [PriceInForce(rate_mrid=RATE, interval_mrid=None, at_s=130.0)]
    # A re-poll of the cancelled interval changes nothing more.
    assert c.receive_intervals([interval("A", 100, 100, server_status=2)], 140.0, draw_max) == []


def test_cancellation_with_randomisation_stops_after_the_drawn_delay() -> None:
    c = core()
    iv = interval("A", 100, 100, randomize_start=20)
    c.receive_intervals([iv], 0.0, lambda low, high: low)
    c.handle_timer(100.0)
    log = c.receive_intervals([msgspec.structs.replace(iv, server_status=3)], 130.0, draw_max)
    assert of(log, IntervalCancelDrawn) == [
        IntervalCancelDrawn(mrid="A", stop_at_s=150.0, at_s=130.0)
    ]
    assert c.next_deadline() == 150.0
    stopped = c.handle_timer(150.0)
    assert of(stopped, IntervalCancelled)[0].server_status == 3
    assert of(stopped, PriceInForce)[0].interval_mrid is None


def test_server_supersession_is_answered_superseded() -> None:
    c = core()
    c.receive_intervals([interval("A", 100, 100)], 0.0, draw_max)
    log = c.receive_intervals([interval("A", 100, 100, server_status=4)], 10.0, draw_max)
    assert [(e.mrid, e.by) for e in of(log, IntervalSuperseded)] == [("A", None)]
    assert responses(log) == [("A", ResponseStatus.SUPERSEDED)]


def test_changed_content_under_a_known_mrid_is_a_server_fault_logged_once() -> None:
    """§4 rule 1: the first content is kept; the fault names the fields, once per change."""
    c = core()
    c.receive_intervals([interval("A", 100, 100)], 0.0, draw_max)
    changed = interval(
        "A", 100, 100, blocks=(PriceBlock(consumption_block=1, start_value=0, price=99),)
    )
    log = c.receive_intervals([changed], 10.0, draw_max)
    assert of(log, IntervalContentChanged) == [
        IntervalContentChanged(mrid="A", fields=("blocks",), at_s=10.0)
    ]
    assert c.receive_intervals([changed], 20.0, draw_max) == []
    assert c.state.intervals["A"].interval.blocks[0].price == 25
    started = c.handle_timer(100.0)
    assert of(started, PriceInForce)[0].blocks[0].price == 25


def test_a_rate_no_longer_offered_stops_its_intervals_unanswered() -> None:
    """§4 rule 4: removed, no Response; its price is no longer in force."""
    c = core()
    c.receive_intervals([interval("A", 100, 100)], 0.0, draw_max)
    c.handle_timer(100.0)
    log = c.retire_rates([], 120.0)
    assert of(log, IntervalRemoved) == [IntervalRemoved(mrid="A", at_s=120.0)]
    assert responses(log) == []
    assert of(log, PriceInForce)[0].interval_mrid is None


def test_a_missed_interval_completes_without_starting_or_completed_response() -> None:
    """A gateway down for an interval's whole period never had it in force: no 2, no 3."""
    c = core()
    c.receive_intervals([interval("A", 100, 50)], 0.0, draw_max)
    log = c.handle_timer(500.0)
    assert of(log, IntervalCompleted) == [IntervalCompleted(mrid="A", started=False, at_s=500.0)]
    assert responses(log) == []
    assert of(log, PriceInForce) == []


def test_responses_follow_the_required_bits_and_need_a_reply_to() -> None:
    c = core()
    log = c.receive_intervals(
        [interval("A", 100, 50, response_required=0), interval("B", 100, 50, reply_to=None)],
        0.0,
        draw_max,
    )
    log += c.handle_timer(100.0) + c.handle_timer(150.0)
    assert responses(log) == []


def test_acked_and_refused_responses_leave_the_outbox_and_failures_are_retried() -> None:
    """§4 rule 16: retried on 5xx and network failures, never on 4xx."""
    c = core()
    c.receive_intervals([interval("A", 100, 50)], 0.0, draw_max)
    c.handle_timer(100.0)
    owed = [(r.mrid, r.status) for r in c.responses_to_send()]
    assert owed == [("A", ResponseStatus.RECEIVED), ("A", ResponseStatus.STARTED)]
    c.response_acked("A", ResponseStatus.RECEIVED, 201, 101.0)
    c.response_failed("A", ResponseStatus.STARTED, 503, "Service Unavailable", 101.0)
    assert [(r.mrid, r.status) for r in c.responses_to_send()] == [("A", ResponseStatus.STARTED)]
    c.response_failed("A", ResponseStatus.STARTED, None, "timeout", 102.0)
    assert len(c.responses_to_send()) == 1
    c.response_failed("A", ResponseStatus.STARTED, 400, "Bad Request", 103.0)
    assert c.responses_to_send() == []
    # An acknowledgement of nothing owed records nothing.
    assert c.response_acked("A", ResponseStatus.STARTED, 201, 104.0) == []


def test_rates_are_recorded_when_first_seen_or_changed() -> None:
    c = core()
    assert of(c.receive_rate(rate(), 0.0), RateSeen)
    assert c.receive_rate(rate(), 1.0) == []
    assert of(c.receive_rate(rate(currency=840), 2.0), RateSeen)[0].rate.currency == 840


def _day() -> tuple[list[Event], PricingCore]:
    c = core()
    log: list[Event] = [*c.receive_rate(rate(), 0.0)]
    log += c.receive_intervals(
        [
            interval("A", 100, 100, creation_time=1),
            interval("B", 200, 100, creation_time=1, randomize_start=10),
            interval("C", 250, 100, creation_time=5),
            interval("D", 400, 100, creation_time=1),
        ],
        0.0,
        draw_max,
    )
    for t in (100.0, 150.0, 210.0, 250.0, 300.0):
        log += c.handle_timer(t)
    log += c.receive_intervals(
        [interval("D", 400, 100, creation_time=1, server_status=2)], 320.0, draw_max
    )
    log += c.handle_timer(500.0)
    log += c.response_acked("A", ResponseStatus.RECEIVED, 201, 501.0)
    return log, c


def test_the_fold_of_the_log_is_the_decision_cores_state() -> None:
    """Replay: folding the records gives the state the core decided in (nothing recomputed)."""
    log, c = _day()
    replayed = fold(log)
    assert replayed == c.state
    assert "A/1" not in replayed.pending and replayed.in_force == {RATE: None}


def test_the_fold_is_pure_its_input_is_never_changed() -> None:
    log, _ = _day()
    state = PricingState()
    for event in log:
        before = msgspec.to_builtins(state)
        after = evolve(state, event)
        assert msgspec.to_builtins(state) == before, type(event).__name__
        state = after


def test_every_lifecycle_move_the_core_makes_is_in_the_table() -> None:
    log, c = _day()
    states = {rec.state for rec in c.state.intervals.values()}
    assert states <= set(PRICE_LIFECYCLE.states)
    assert {"completed", "cancelled", "superseded"} <= states


@pytest.mark.parametrize("n", [200])
def test_many_intervals_are_handled_without_quadratic_blow_up(n: int) -> None:
    """A day of 5-minute prices (288) is ordinary; the supersession pass looks only at winners due."""
    c = core()
    ivs = [interval(f"I{i:04d}", 1000 + 300 * i, 300, creation_time=1) for i in range(n)]
    c.receive_intervals(ivs, 0.0, draw_max)
    starts = 0
    for i in range(n):
        starts += len(of(c.handle_timer(1000.0 + 300 * i), IntervalStarted))
    assert starts == n
