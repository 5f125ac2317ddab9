"""The subscription decisions (issue 19 point 3) and the poll a notification makes due, without I/O."""

from __future__ import annotations

import msgspec

from events.base import Event
from events.registry import CATALOGUE
from events.subscription_events import (
    PollPrompted,
    SubscriptionEnded,
    SubscriptionLost,
    SubscriptionLostV1,
)
from statemachines.polling import POLL_PROJECTION, PROMPT_MIN_GAP_S, PollSchedule
from statemachines.subscriptions import (
    SUBSCRIPTION_PROJECTION,
    Subscribe,
    SubscriptionCore,
    SubscriptionSettings,
    SubscriptionTarget,
    Unsubscribe,
    Verify,
    is_subscribable,
)

SETTINGS = SubscriptionSettings(
    notification_uri="https://gw/notify",
    max_subscriptions=2,
    verify_every_s=60,
    verify_period_s=900,
    backoff_initial_s=60,
    backoff_max_s=600,
)
T = 1_000_000.0
LIST = "/edev/3/sub"


def targets(*resources: str) -> list[SubscriptionTarget]:
    return [SubscriptionTarget(resource=r, poll=f"derp:{r}") for r in resources]


def test_a_notification_makes_the_poll_due_now_and_the_read_counts_as_the_poll() -> None:
    s = PollSchedule()
    s.rate_seen("derp:/derp", 300, T)
    assert s.due_polls(T + 100) == []
    events = s.prompted("derp:/derp", "/derp/1/derc", notification_seq=42, now=T + 100)
    assert events == [
        PollPrompted(poll="derp:/derp", resource="/derp/1/derc", notification_seq=42, at_s=T + 100)
    ]
    assert s.due_polls(T + 100) == ["derp:/derp"]
    s.polled("derp:/derp", T + 100)
    assert s.state.polls["derp:/derp"].next_s == T + 400  # a pollRate after the prompted read


def test_a_prompt_never_delays_a_poll_already_due_and_ignores_an_unknown_poll() -> None:
    s = PollSchedule()
    s.rate_seen("derp:/derp", 300, T)
    s.prompted("derp:/derp", "/x", 1, T + 500)  # overdue since T + 300: stays due from then
    assert s.state.polls["derp:/derp"].next_s == T + 300
    assert s.prompted("fsa:/never-walked", "/y", 2, T + 500) == []


def test_a_flood_of_notifications_buys_at_most_one_read_per_min_gap() -> None:
    """Review of issue 19, finding 1: each status-0 notification made the poll due at once, so one
    small POST bought a full read of the list. A prompt within PROMPT_MIN_GAP_S of the poll's last
    read makes it due only that gap after the read (deferred, never lost)."""
    s = PollSchedule()
    s.rate_seen("derp:/derp", 300, T)
    s.polled("derp:/derp", T + 300)
    s.prompted("derp:/derp", "/x", 1, T + 301)
    assert s.due_polls(T + 301) == []
    assert s.due_polls(T + 300 + PROMPT_MIN_GAP_S) == ["derp:/derp"]
    s.polled("derp:/derp", T + 310)
    s.prompted("derp:/derp", "/x", 2, T + 400)  # long after the last read: due at once
    assert s.due_polls(T + 400) == ["derp:/derp"]


def test_the_poll_fold_replays_a_prompt_as_the_live_schedule_took_it() -> None:
    s = PollSchedule()
    events = s.rate_seen("derp:/derp", 300, T) + s.prompted("derp:/derp", "/x", 7, T + 50)
    folded = POLL_PROJECTION.initial
    for event in events:
        folded = POLL_PROJECTION.evolve(folded, event)
    assert folded.polls == s.state.polls


def test_only_subscribable_1_or_2_is_subscribed() -> None:
    assert [is_subscribable(v) for v in (None, 0, 1, 2, 3)] == [False, False, True, True, False]


def test_nothing_is_asked_before_the_first_walk_of_a_run() -> None:
    core = SubscriptionCore(SETTINGS)
    assert core.next_action(T) is None and core.next_deadline() is None


def test_at_most_max_subscriptions_in_the_walks_order() -> None:
    core = SubscriptionCore(SETTINGS)
    core.walked(LIST, targets("/a", "/b", "/c"))
    asked = []
    while isinstance(action := core.next_action(T), Subscribe):
        asked.append(action.resource)
        core.requested(action.resource, LIST, T)
        core.accepted(action.resource, f"{LIST}/{len(asked)}", T)
    assert asked == ["/a", "/b"]
    assert core.poll_of("/c") is None and core.poll_of("/a") == "derp:/a"


def test_no_subscription_list_no_subscription() -> None:
    core = SubscriptionCore(SETTINGS)
    core.walked(None, targets("/a"))
    assert core.next_action(T) is None


def test_refusals_back_off_doubling_to_the_cap() -> None:
    core = SubscriptionCore(SETTINGS)
    core.walked(LIST, targets("/a"))
    delays = []
    now = T
    for _ in range(6):
        assert core.next_action(now) == Subscribe("/a", LIST)
        (refused,) = core.refused("/a", 503, "busy", now)
        assert core.next_action(now) is None
        delays.append(refused.retry_at_s - now)  # type: ignore[attr-defined]
        now = refused.retry_at_s  # type: ignore[attr-defined]
        assert core.next_deadline() == now
    assert delays == [60, 120, 240, 480, 600, 600]


def test_verification_is_paced_per_subscription_and_for_the_set() -> None:
    core = SubscriptionCore(SETTINGS)
    core.walked(LIST, targets("/a", "/b"))
    core.accepted("/a", f"{LIST}/1", T)
    core.accepted("/b", f"{LIST}/2", T + 10)
    assert core.next_action(T + 899) is None
    assert core.next_action(T + 900) == Verify("/a", f"{LIST}/1")
    core.verified(f"{LIST}/1", T + 900)
    # /b is due at T + 910, but the set is asked at most once a minute.
    assert core.next_action(T + 910) is None
    assert core.next_deadline() == T + 960
    assert core.next_action(T + 960) == Verify("/b", f"{LIST}/2")


def test_a_lost_subscription_is_asked_again_at_once() -> None:
    core = SubscriptionCore(SETTINGS)
    core.walked(LIST, targets("/a"))
    core.accepted("/a", f"{LIST}/1", T)
    core.lost("/a", "notification of status 1", T + 5)
    assert core.next_action(T + 5) == Subscribe("/a", LIST)
    assert core.resource_of(f"{LIST}/1") is None


def test_repeated_losses_back_off_until_a_verification() -> None:
    """Review of issue 19, finding 1: each status 1–4 notification re-subscribed at once (one POST
    in, one Subscription POST out, however many). The first loss still re-subscribes at once; a
    second before any verification waits backoff_initial_s, a third twice that; the fold
    replays the decision; a verification forgets the losses."""
    core = SubscriptionCore(SETTINGS)
    core.walked(LIST, targets("/a"))
    events = core.accepted("/a", f"{LIST}/1", T)
    events += core.lost("/a", "notification of status 1", T + 5)
    assert core.next_action(T + 5) == Subscribe("/a", LIST)
    events += core.accepted("/a", f"{LIST}/2", T + 5)
    events += core.lost("/a", "notification of status 1", T + 6)
    assert core.next_action(T + 6) is None
    assert core.next_deadline() == T + 6 + 60
    events += core.accepted("/a", f"{LIST}/3", T + 66)
    events += core.lost("/a", "notification of status 1", T + 67)
    assert core.next_deadline() == T + 67 + 120
    state = SUBSCRIPTION_PROJECTION.initial
    for event in events:
        state = SUBSCRIPTION_PROJECTION.evolve(state, event)
    assert state.held == core.state.held
    core.accepted("/a", f"{LIST}/4", T + 187)
    core.verified(f"{LIST}/4", T + 1087)
    core.lost("/a", "notification of status 1", T + 1100)
    assert core.next_action(T + 1100) == Subscribe("/a", LIST)  # stable since: at once again


def test_a_v1_loss_replays_as_one_loss_asked_again_at_once() -> None:
    """Logs before the loss back-off hold subscription.lost.v1: read as a first loss."""
    v1 = SubscriptionLostV1(resource="/a", location=f"{LIST}/1", why="404", at_s=T)
    assert CATALOGUE.decode(msgspec.json.encode(v1)) == SubscriptionLost(
        resource="/a", location=f"{LIST}/1", why="404", losses=1, retry_at_s=T, at_s=T
    )


def test_what_the_walk_lost_is_let_go_and_the_fold_forgets_it() -> None:
    core = SubscriptionCore(SETTINGS)
    core.walked(LIST, targets("/a", "/b"))
    events = core.accepted("/a", f"{LIST}/1", T) + core.accepted("/b", f"{LIST}/2", T)
    core.walked(LIST, targets("/a"))
    assert core.next_action(T + 1) == Unsubscribe("/b", f"{LIST}/2")
    events += core.ended("/b", f"{LIST}/2", 204, T + 1)
    state = SUBSCRIPTION_PROJECTION.initial
    for event in events:
        state = SUBSCRIPTION_PROJECTION.evolve(state, event)
    assert set(state.held) == {"/a"} and state.held["/a"].location == f"{LIST}/1"


def test_refused_entries_the_walk_no_longer_offers_are_forgotten() -> None:
    """Review of issue 19, finding 8: refused (or lost) entries to resources no longer offered
    were never forgotten (200 walks each offering a new refused href left 200, replayed at every
    start and scanned at every step). After a walk each is recorded ended, with no location."""
    core = SubscriptionCore(SETTINGS)
    events: list[Event] = []
    for walk in range(200):
        core.walked(LIST, targets(f"/derp/{walk}"))
        events += core.forget_unoffered(T + walk)
        events += core.requested(f"/derp/{walk}", LIST, T + walk)
        events += core.refused(f"/derp/{walk}", 500, "server fault", T + walk)
    assert set(core.state.held) == {"/derp/199"}
    assert events[-3] == SubscriptionEnded(
        resource="/derp/198", location="", status=None, at_s=T + 199
    )
    state = SUBSCRIPTION_PROJECTION.initial
    for event in events:
        state = SUBSCRIPTION_PROJECTION.evolve(state, event)
    assert state.held == core.state.held


def test_a_walk_forgets_neither_a_wanted_entry_nor_a_403_still_backing_off_the_list() -> None:
    core = SubscriptionCore(SETTINGS)
    core.walked(LIST, targets("/a", "/b", "/c"))
    core.accepted("/a", f"{LIST}/1", T)
    core.refused("/b", 403, "aggregators only", T)
    core.refused("/c", 500, "server fault", T)
    core.walked(LIST, targets("/x"))
    assert core.forget_unoffered(T + 1) == [
        SubscriptionEnded(resource="/c", location="", status=None, at_s=T + 1)
    ]
    assert core.next_action(T + 1) == Unsubscribe("/a", f"{LIST}/1")  # held: DELETEd, not forgotten
    assert core.forget_unoffered(T + 59) == []  # /b's 403 backs off the list until T + 60
    assert core.forget_unoffered(T + 60) == [
        SubscriptionEnded(resource="/b", location="", status=None, at_s=T + 60)
    ]


def test_403_refuses_the_client_so_the_whole_list_backs_off_one_probe_per_step() -> None:
    # A server that lets only aggregator certificates subscribe answers every POST 403: asking
    # for each resource in turn would be refused as many times as there are resources.
    core = SubscriptionCore(SubscriptionSettings(notification_uri="https://gw/notify"))
    core.walked(LIST, targets("/edev/3", "/edev/3/fsa", "/derp"))
    assert core.next_action(T) == Subscribe("/edev/3", LIST)
    core.requested("/edev/3", LIST, T)
    core.refused("/edev/3", 403, "only aggregator certificates may subscribe", T)
    assert core.next_action(T) is None  # not /edev/3/fsa: the list refused the client
    assert core.next_deadline() == T + 60
    assert core.next_action(T + 60) == Subscribe("/edev/3", LIST)  # one probe
    core.refused("/edev/3", 403, "again", T + 60)
    assert core.next_action(T + 179) is None
    assert core.next_action(T + 180) == Subscribe("/edev/3", LIST)
    core.accepted("/edev/3", f"{LIST}/1", T + 180)
    assert core.next_action(T + 180) == Subscribe("/edev/3/fsa", LIST)  # allowed now: the rest


def test_a_server_error_backs_off_that_resource_only() -> None:
    core = SubscriptionCore(SubscriptionSettings(notification_uri="https://gw/notify"))
    core.walked(LIST, targets("/edev/3", "/edev/3/fsa"))
    core.requested("/edev/3", LIST, T)
    core.refused("/edev/3", 500, "busy", T)
    assert core.next_action(T) == Subscribe("/edev/3/fsa", LIST)
