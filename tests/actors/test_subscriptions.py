"""The subscription actor against a fake utility over mutual TLS (issue 19 point 3): subscribe once
to each subscribable resource, back off on refusals, find a server restart by verification and a
cancelling notification, subscribe again, let go of what the walk lost, and turn a change
notification into a poll made due now — each step a record."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
import trio
import trio.testing

from actors.clock import Clock
from actors.link import Link
from actors.log_writer import LogWriter
from actors.mailbox import Latest
from actors.notifications import NotificationListener
from actors.pipe import pipe_connector, pipe_listener
from actors.subscriptions import PollPrompt, PollPrompts, SubscriptionActor, SubscriptionTargets
from events.memory_store import MemoryEventStore
from events.registry import CATALOGUE
from events.replay import replay
from events.store import EventStore
from events.subscription_events import (
    NotificationReceived,
    SubscriptionAccepted,
    SubscriptionEnded,
    SubscriptionLost,
    SubscriptionRefused,
    SubscriptionRequested,
)
from statemachines.subscriptions import (
    SUBSCRIPTION_PROJECTION,
    SubscriptionSettings,
    SubscriptionTarget,
)
from tests.actors.subscription_server import SUBSCRIPTIONS, FakeUtility, notify, utility_server
from tests.tls_fixtures import PkiFiles
from transport.tls import server_context

NOON = 1_764_900_000.0
EDEV = "/edev/3"
CONTROLS = "/derp/1/derc"
TARGETS = SubscriptionTargets(
    list_href=SUBSCRIPTIONS,
    targets=(
        SubscriptionTarget(resource=EDEV, poll=f"edev:{EDEV}"),
        SubscriptionTarget(resource=CONTROLS, poll="derp:/derp"),
    ),
)
SETTINGS = SubscriptionSettings(
    notification_uri="https://gateway.test/notify",
    verify_every_s=60,
    verify_period_s=900,
    backoff_initial_s=60,
    backoff_max_s=600,
)


@dataclass
class World:
    utility: FakeUtility
    actor: SubscriptionActor
    store: EventStore
    targets: Latest[SubscriptionTargets]
    prompts: Latest[PollPrompts]
    connect: Any  # the utility's notifier reaching the gateway's listener

    def records(self, kind: type[Any]) -> list[Any]:
        return [rec.event for rec in self.store.read() if isinstance(rec.event, kind)]


@asynccontextmanager
async def world(
    pki: PkiFiles, *, utility: FakeUtility | None = None, store: EventStore | None = None
) -> AsyncIterator[World]:
    store = store or MemoryEventStore(CATALOGUE)
    utility = utility or FakeUtility(pki)
    clock = Clock(wall_at_start=NOON)
    log = LogWriter(store, offload=False)
    async with anyio.create_task_group() as group:
        await group.start(log.run)
        async with utility_server(pki, group, utility) as client:
            targets: Latest[SubscriptionTargets] = Latest()
            prompts: Latest[PollPrompts] = Latest()
            actor = SubscriptionActor(
                settings=SETTINGS,
                link=Link(client, clock=clock, versions=(), log=log),
                log=log,
                clock=clock,
                store=store,
                targets=targets,
                prompts=prompts,
            )
            listener = NotificationListener(
                context=server_context(pki.device),
                path="/notify",
                log=log,
                clock=clock,
                sink=actor,
            )
            send, accept = pipe_listener()
            await group.start(listener.serve_pipes, accept)
            await group.start(actor.run)
            yield World(utility, actor, store, targets, prompts, pipe_connector(send))
        group.cancel_scope.cancel()


async def until(condition: Callable[[], bool], *, within_s: float = 3600) -> float:
    """Wait (on the autojump clock) until ``condition``; returns the seconds it took."""
    start = trio.current_time()
    while not condition():
        await trio.sleep(1)
        assert trio.current_time() - start <= within_s, "condition not met in time"
    return trio.current_time() - start


def posts(utility: FakeUtility) -> int:
    return sum(1 for method, _ in utility.requests if method == "POST")


async def test_each_subscribable_resource_is_subscribed_once(
    pki_a: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(36_000):
        async with world(pki_a) as w:
            w.targets.put(TARGETS)
            await until(lambda: len(w.utility.held) == 2, within_s=5)
            await trio.sleep(3600)  # an hour on: verified, never subscribed again
            assert posts(w.utility) == 2
    held = {s.subscribedResource: s for s in w.utility.held.values()}
    assert set(held) == {EDEV, CONTROLS}
    for subscription in held.values():
        assert subscription.notificationURI == "https://gateway.test/notify"
        assert (subscription.encoding, subscription.level, subscription.limit) == (0, "+S1", 1)
        assert subscription.Condition is None
    requested = w.records(SubscriptionRequested)
    assert [e.resource for e in requested] == [EDEV, CONTROLS]
    assert all(e.list_href == SUBSCRIPTIONS for e in requested)
    accepted = {e.resource: e.location for e in w.records(SubscriptionAccepted)}
    assert accepted == {EDEV: w.utility.location_of(EDEV), CONTROLS: w.utility.location_of(CONTROLS)}


async def test_a_refusal_backs_off_doubling_then_subscribes(
    pki_a: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    utility = FakeUtility(pki_a, refuse={CONTROLS: 400})
    with trio.fail_after(36_000):
        async with world(pki_a, utility=utility) as w:
            w.targets.put(TARGETS)
            await until(lambda: len(w.records(SubscriptionRefused)) == 4)
            utility.refuse.clear()
            await until(lambda: len(utility.held) == 2)
    refused = w.records(SubscriptionRefused)
    assert [e.status for e in refused] == [400] * 4, [(e.reason, e.at_s) for e in refused]
    assert [e.failures for e in refused] == [1, 2, 3, 4]
    assert [e.retry_at_s - e.at_s for e in refused] == [60, 120, 240, 480]
    assert "HTTP 400" in refused[0].reason
    gaps = [b.at_s - a.retry_at_s for a, b in zip(refused, refused[1:], strict=False)]
    assert all(0 <= gap < 1 for gap in gaps)  # asked again when the back-off ended, not before
    assert posts(utility) == 1 + 5  # the EndDevice once; the control list five times


async def test_a_server_restart_is_found_by_verification_and_subscribed_again(
    pki_a: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(36_000):
        async with world(pki_a) as w:
            w.targets.put(TARGETS)
            await until(lambda: len(w.utility.held) == 2, within_s=5)
            before = set(w.utility.held)
            w.utility.restart()
            took = await until(lambda: len(w.utility.held) == 2)
            # Each subscription is verified within its period, the set one GET a minute at most.
            assert took <= SETTINGS.verify_period_s + SETTINGS.verify_every_s + 5
            start = trio.current_time()
            gets_before = sum(1 for m, _ in w.utility.requests if m == "GET")
            await trio.sleep(3600)
            gets = sum(1 for m, _ in w.utility.requests if m == "GET") - gets_before
    assert not before & set(w.utility.held)  # new Locations
    lost = w.records(SubscriptionLost)
    assert {e.resource for e in lost} == {EDEV, CONTROLS}
    assert all("404" in e.why for e in lost)
    # Two subscriptions, each verified at most once per 900 s over an hour.
    assert gets <= 2 * (3600 // 900 + 1)
    assert trio.current_time() - start >= 3600


@pytest.mark.parametrize("status", [1, 2, 3, 4])
async def test_a_cancelling_notification_subscribes_again(
    pki_a: PkiFiles, autojump_clock: trio.testing.MockClock, status: int
) -> None:
    """Status 1 cancelled; 2 the resource moved, 3 its definition changed, 4 it was deleted: the
    subscription is asked for again, and for 2–4 the resource is re-read now (which finds out)."""
    with trio.fail_after(36_000):
        async with world(pki_a) as w:
            w.targets.put(TARGETS)
            await until(lambda: len(w.utility.held) == 2, within_s=5)
            location = w.utility.location_of(CONTROLS)
            subscription = w.utility.held.pop(location)  # the server cancels it…
            response = await notify(pki_a, w.connect, subscription, location, status=status)
            assert response.status == 201
            await until(lambda: len(w.utility.held) == 2, within_s=5)
            # The old subscription is no longer ours: a notification on it is refused.
            stale = await notify(pki_a, w.connect, subscription, location)
    assert stale.status == 404
    (lost,) = w.records(SubscriptionLost)
    assert (lost.resource, lost.location) == (CONTROLS, location)
    assert f"status {status}" in lost.why
    assert w.utility.location_of(CONTROLS) != location
    prompts = w.prompts.peek()
    if status == 1:
        assert prompts is None  # a plain cancellation is not a change: no poll made due
    else:
        assert prompts is not None and [p.poll for p in prompts.prompts] == ["derp:/derp"]


async def test_a_change_notification_makes_the_resource_poll_due(
    pki_a: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(36_000):
        async with world(pki_a) as w:
            w.targets.put(TARGETS)
            await until(lambda: len(w.utility.held) == 2, within_s=5)
            location = w.utility.location_of(CONTROLS)
            response = await notify(pki_a, w.connect, w.utility.held[location], location)
            await until(lambda: w.prompts.fresh, within_s=5)
    assert response.status == 201
    (received,) = w.records(NotificationReceived)
    seq = next(rec.seq for rec in w.store.read() if rec.event == received)
    assert w.prompts.take_nowait() == PollPrompts(
        prompts=(
            PollPrompt(
                poll="derp:/derp", resource=CONTROLS, notification_seq=seq, at_s=received.at_s
            ),
        )
    )


async def test_a_resource_the_walk_lost_is_unsubscribed(
    pki_a: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(36_000):
        async with world(pki_a) as w:
            w.targets.put(TARGETS)
            await until(lambda: len(w.utility.held) == 2, within_s=5)
            location = w.utility.location_of(CONTROLS)
            w.targets.put(SubscriptionTargets(list_href=SUBSCRIPTIONS, targets=TARGETS.targets[:1]))
            await until(lambda: len(w.utility.held) == 1, within_s=5)
    assert ("DELETE", location) in w.utility.requests
    (ended,) = w.records(SubscriptionEnded)
    assert (ended.resource, ended.location, ended.status) == (CONTROLS, location, 204)


async def test_after_a_restart_the_log_says_what_is_held_and_nothing_is_asked_twice(
    pki_a: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    store = MemoryEventStore(CATALOGUE)
    utility = FakeUtility(pki_a)
    with trio.fail_after(36_000):
        async with world(pki_a, utility=utility, store=store) as w:
            w.targets.put(TARGETS)
            await until(lambda: len(utility.held) == 2, within_s=5)
        async with world(pki_a, utility=utility, store=store) as again:
            again.targets.put(TARGETS)
            await trio.sleep(600)
            assert again.actor.resource_of(utility.location_of(CONTROLS)) == CONTROLS
    assert posts(utility) == 2


async def test_at_most_max_subscriptions_are_held(
    pki_a: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    many = SubscriptionTargets(
        list_href=SUBSCRIPTIONS,
        targets=tuple(
            SubscriptionTarget(resource=f"/derp/{i}/derc", poll="derp:/derp") for i in range(50)
        ),
    )
    with trio.fail_after(36_000):
        async with world(pki_a) as w:
            w.targets.put(many)
            await until(lambda: len(w.utility.held) == SETTINGS.max_subscriptions, within_s=60)
            await trio.sleep(600)
    assert len(w.utility.held) == SETTINGS.max_subscriptions == 32
    held = {s.subscribedResource for s in w.utility.held.values()}
    assert held == {f"/derp/{i}/derc" for i in range(32)}  # the first ones, in the walk's order


def test_a_flood_of_notifications_is_bounded_and_counted(pki_a: PkiFiles) -> None:
    """The listener never waits on the actor: past the queue, notifications are dropped (each only
    makes a poll due sooner; polling is the safety net) and counted."""
    from actors.subscriptions import NOTIFICATION_QUEUE, Notified

    actor = SubscriptionActor(
        settings=SETTINGS,
        link=None,  # type: ignore[arg-type]
        log=None,  # type: ignore[arg-type]
        clock=None,  # type: ignore[arg-type]
        store=MemoryEventStore(CATALOGUE),
        targets=Latest(),
        prompts=Latest(),
    )
    for seq in range(NOTIFICATION_QUEUE + 10):
        actor.notified_nowait(
            Notified(seq=seq, subscription="/s", resource=CONTROLS, status=0, at_s=0.0)
        )
    assert actor.statistics().dropped == 10


async def test_a_refused_resource_the_walk_no_longer_offers_is_forgotten_and_stays_so(
    pki_a: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    """Review of issue 19, finding 8: each walk offering a new refused href left one more entry
    held for good (replayed at every start, scanned at every step). The next walk that no
    longer offers it records it ended, with no location; a restart replays none of them."""
    store = MemoryEventStore(CATALOGUE)
    utility = FakeUtility(pki_a, refuse={f"/derp/{n}/derc": 400 for n in range(5)})
    with trio.fail_after(36_000):
        async with world(pki_a, utility=utility, store=store) as w:
            for n in range(5):
                w.targets.put(
                    SubscriptionTargets(
                        list_href=SUBSCRIPTIONS,
                        targets=(SubscriptionTarget(resource=f"/derp/{n}/derc", poll="derp:/d"),),
                    )
                )
                await until(lambda n=n: len(w.records(SubscriptionRefused)) == n + 1, within_s=5)
            assert set(w.actor.core.state.held) == {"/derp/4/derc"}
    ended = w.records(SubscriptionEnded)
    assert [(e.resource, e.location, e.status) for e in ended] == [
        (f"/derp/{n}/derc", "", None) for n in range(4)
    ]
    state, _ = replay(store, SUBSCRIPTION_PROJECTION)
    assert set(state.held) == {"/derp/4/derc"}
