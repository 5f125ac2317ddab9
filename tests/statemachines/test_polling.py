"""Polling and posting schedules (PROTOCOL.md §4 rule 15, §2.8, §4 rule 12)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.control_events import CommsRestored
from events.registration_events import PollRateSeen, PostRateSeen, RateBounded
from events.replay import fold
from statemachines.polling import (
    FAULT_POLL_S,
    MAX_POLL_S,
    MAX_POST_S,
    MIN_POLL_S,
    MIN_POST_S,
    PollSchedule,
    PollState,
    bounded_post_rate,
    evolve_poll,
    next_post_s,
)


def test_rule15_poll_at_the_containing_resources_rate() -> None:
    s = PollSchedule()
    s.rate_seen("/derp/1/derc", 60, 0)
    assert s.next_deadline() == 60
    assert s.due_polls(59) == [] and s.due_polls(60) == ["/derp/1/derc"]
    s.polled("/derp/1/derc", 60)
    assert s.next_deadline() == 120


def test_rule15_changed_rate_applies_on_the_next_cycle() -> None:
    s = PollSchedule()
    s.rate_seen("/r", 60, 0)
    s.rate_seen("/r", 300, 10)
    assert s.next_deadline() == 60  # the cycle already planned stands
    s.polled("/r", 60)
    assert s.next_deadline() == 360


def test_rule15_never_poll_more_often_than_asked() -> None:
    s = PollSchedule()
    s.rate_seen("/r", 60, 0)
    s.polled("/r", 60)
    with pytest.raises(ValueError, match="before it is due at 120"):
        s.polled("/r", 119)


def test_rule15_repeated_rate_is_not_an_event() -> None:
    s = PollSchedule()
    assert s.rate_seen("/r", 60, 0)
    assert s.rate_seen("/r", 60, 5) == []


def test_rule12_repoll_everything_on_recovery() -> None:
    s = PollSchedule()
    s.rate_seen("/a", 300, 0)
    s.rate_seen("/b", 900, 0)
    s.comms_restored(CommsRestored(at_s=100))
    assert s.due_polls(100) == ["/a", "/b"]
    s.polled("/a", 100)


@pytest.mark.parametrize("step_s", [-3600.0, -45.0, 90.0, 7200.0])
def test_section2_2_a_stepped_server_clock_moves_the_schedule_with_it(step_s: float) -> None:
    """Polls keep their cadence on the device's clock across a step of the server's (a backward
    step must not pause them, a forward one must not make them all due at once); posts stay on
    the server's whole minutes."""
    s = PollSchedule()
    log = [
        *s.rate_seen("/a", 60, 0),
        *s.rate_seen("/b", 300, 0),
        *s.polled("/a", 60),
        *s.post_rate_seen("mirror", 60, 0),
        *s.posted("mirror", 60),
        # 20 s after the poll, Time says the server's clock is step_s away: now reads 80 + step_s
        *s.shifted(step_s, 80),
    ]
    now = 80 + step_s
    assert s.state.polls["/a"].next_s - now == 40  # one rate after the poll, on the device's clock
    assert s.state.polls["/b"].next_s - now == 220
    assert s.due_polls(now) == []
    post = s.state.posts["mirror"].next_s
    assert post % 60 == 0 and 0 < post - now <= 60
    assert s.shifted(0.0, 80) == []
    assert fold(log, evolve_poll, PollState()) == s.state  # what a restart rebuilds


def test_unknown_resource_and_bad_rate_are_named() -> None:
    s = PollSchedule()
    with pytest.raises(KeyError, match="/x has no pollRate"):
        s.polled("/x", 0)
    with pytest.raises(ValueError, match="pollRate of /x must be positive"):
        s.rate_seen("/x", 0, 0)
    with pytest.raises(ValueError, match="postRate must be positive"):
        next_post_s(0, 0)


@pytest.mark.parametrize(
    ("after", "rate", "expected"),
    [(0, 300, 300), (299.5, 300, 300), (300, 300, 600), (61, 60, 120), (10, 90, 120), (0, 30, 60)],
)
def test_section2_8_post_on_whole_minutes(after: float, rate: int, expected: int) -> None:
    assert next_post_s(after, rate) == expected


def test_section2_8_posts_follow_post_rate_minute_aligned() -> None:
    s = PollSchedule()
    s.post_rate_seen("/mup/1", 300, 1234)
    assert s.next_deadline() == 1500
    s.posted("/mup/1", 1500.2)
    assert s.due_posts(1799) == [] and s.due_posts(1800) == ["/mup/1"]


@settings(max_examples=60)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["rate", "poll", "restore", "step"]), st.sampled_from([30, 60, 300])
        ),
        max_size=30,
    )
)
def test_replay_fold_of_poll_log_equals_live_state(ops: list[tuple[str, int]]) -> None:
    s = PollSchedule()
    log = []
    now = 0.0
    for op, rate in ops:
        now += 7
        if op == "rate":
            log += s.rate_seen("/r", rate, now)
        elif op == "poll" and s.state.polls:
            now = max(now, s.state.polls["/r"].next_s)
            log += s.polled("/r", now)
        elif op == "restore":
            restored = CommsRestored(at_s=now)  # recorded by the controls actor, applied here
            s.comms_restored(restored)
            log.append(restored)
        elif op == "step":
            log += s.shifted(-rate / 2, now)
            now -= rate / 2
    assert fold(log, evolve_poll, PollState()) == s.state


@pytest.mark.parametrize("sent", [1, MIN_POLL_S - 1, MAX_POLL_S + 1, 4_000_000_000])
def test_issue15_a_poll_rate_outside_the_sane_window_is_bounded_and_recorded(sent: int) -> None:
    used = FAULT_POLL_S
    s = PollSchedule()
    events = s.rate_seen("/derp/1/derc", sent, 0)
    assert events[0] == RateBounded(
        kind="poll",
        resource="/derp/1/derc",
        sent_s=sent,
        used_s=used,
        low_s=MIN_POLL_S,
        high_s=MAX_POLL_S,
        at_s=0,
    )
    assert events[1] == PollRateSeen(resource="/derp/1/derc", rate_s=used, at_s=0)
    assert s.next_deadline() == used
    # The server repeating the same rate is not recorded (nor shown) again.
    assert s.rate_seen("/derp/1/derc", sent, 5) == []


def test_issue15_a_poll_rate_inside_the_window_is_used_as_sent() -> None:
    s = PollSchedule()
    assert s.rate_seen("/r", MIN_POLL_S, 0) == [PollRateSeen(resource="/r", rate_s=10, at_s=0)]
    assert s.rate_seen("/r", MAX_POLL_S, 1) == [PollRateSeen(resource="/r", rate_s=86_400, at_s=1)]


@pytest.mark.parametrize(("sent", "used"), [(1, MIN_POST_S), (59, 60), (10**9, MAX_POST_S)])
def test_issue15_a_post_rate_outside_the_sane_window_is_bounded_and_recorded(
    sent: int, used: int
) -> None:
    assert bounded_post_rate(sent) == used
    s = PollSchedule()
    events = s.post_rate_seen("mirror", used, 0, sent_s=sent)
    assert [type(e) for e in events] == [RateBounded, PostRateSeen]
    assert isinstance(events[0], RateBounded)
    assert (events[0].kind, events[0].sent_s, events[0].used_s) == ("post", sent, used)
    assert events[1] == PostRateSeen(mirror="mirror", rate_s=used, at_s=0)
    assert s.post_rate_seen("mirror", used, 5, sent_s=sent) == []
    # A rate given unbounded is bounded by the schedule itself.
    assert PollSchedule().post_rate_seen("m", sent, 0)[-1] == PostRateSeen(
        mirror="m", rate_s=used, at_s=0
    )
