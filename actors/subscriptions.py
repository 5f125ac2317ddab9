"""The subscription actor: holds the gateway's subscriptions on the utility's resources, and turns
each notification into "read that resource now" (issue 19 point 3; PROTOCOL.md §2.10).

The registration actor's walk says what can be subscribed (:class:`SubscriptionTargets`); the
pure :class:`statemachines.subscriptions.SubscriptionCore` says what to request next; this actor
makes the requests through the :class:`actors.link.Link` and records each with its answer.

A notification the listener accepted (:meth:`SubscriptionActor.notified_nowait`) of status 0 makes
the poll of its resource due now (:class:`PollPrompts` to the registration actor, which records the
prompt and reads the resource as at any poll); of status 1–4 the subscription is lost and asked for
again. Why re-read rather than use a resource carried inline: the one path through the poll and
controls code decides, whatever the notification held (a list notification carries at most
``limit`` items, a DefaultDERControl's program is not named in it); a lost, duplicated or reordered
notification is harmless, because the read returns the server's state now; and polling at the
advertised rates keeps going as the safety net ([0022d](docs/decisions/0022d-notifications.md)).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

import anyio
import msgspec
from anyio.abc import TaskStatus

from actors.clock import Clock
from actors.link import BadDocument, HttpFailure, Link, describe_failure
from actors.log_writer import LogWriter
from actors.mailbox import Latest
from events.base import Event
from events.envelope import Append
from events.replay import replay
from events.store import EventStore
from events.subscription_events import SUBSCRIPTION_STREAM
from statemachines.subscriptions import (
    NOTIFICATION_CANCELLED,
    SUBSCRIPTION_PROJECTION,
    Subscribe,
    SubscriptionCore,
    SubscriptionSettings,
    SubscriptionState,
    SubscriptionTarget,
    Unsubscribe,
    Verify,
)
from transport.errors import LinkError
from transport.sep2 import resources as r

__all__ = [
    "NOTIFICATION_QUEUE",
    "Notified",
    "PollPrompt",
    "PollPrompts",
    "SubscriptionActor",
    "SubscriptionStatistics",
    "SubscriptionTargets",
]

logger = logging.getLogger(__name__)

#: Accepted notifications waiting for the actor; more are dropped (counted): each one only makes a
#: poll due sooner, and a burst of them names the same few resources.
NOTIFICATION_QUEUE: Final = 32

#: Subscription.encoding 0: application/sep+xml.
_ENCODING_XML: Final = 0
#: Subscription.level: the function set level this client speaks (IEEE 2030.5 "+S1").
_LEVEL: Final = "+S1"


class SubscriptionTargets(msgspec.Struct, frozen=True, kw_only=True):
    """Registration → subscriptions (a latest-value mailbox): our EndDevice's SubscriptionList
    (None: the server offers none) and the subscribable resources the walk found, most important
    first, each with the poll a notification on it makes due."""

    list_href: str | None
    targets: tuple[SubscriptionTarget, ...]


class PollPrompt(msgspec.Struct, frozen=True, kw_only=True):
    poll: str
    resource: str
    notification_seq: int
    at_s: float


class PollPrompts(msgspec.Struct, frozen=True, kw_only=True):
    """Subscriptions → registration (a latest-value mailbox, merged): the polls notifications made
    due, one per poll (the newest notification of each)."""

    prompts: tuple[PollPrompt, ...]

    def merged(self, newer: PollPrompts) -> PollPrompts:
        by_poll = {p.poll: p for p in self.prompts}
        by_poll.update({p.poll: p for p in newer.prompts})
        return PollPrompts(prompts=tuple(by_poll.values()))


class Notified(msgspec.Struct, frozen=True, kw_only=True):
    """Listener → subscriptions: a notification accepted and recorded at ``seq`` (0: its record
    is held while the log is full, so no seq is known yet; the prompt still goes on)."""

    seq: int
    subscription: str
    resource: str
    status: int
    at_s: float


class SubscriptionStatistics(msgspec.Struct, frozen=True):
    held: int
    requests: int
    notifications: int
    dropped: int


class SubscriptionActor:
    def __init__(
        self,
        *,
        settings: SubscriptionSettings,
        link: Link,
        log: LogWriter,
        clock: Clock,
        store: EventStore,
        targets: Latest[SubscriptionTargets],
        prompts: Latest[PollPrompts],
    ) -> None:
        self._link = link
        self._log = log
        self._clock = clock
        self._store = store
        self._targets = targets
        self._prompts = prompts
        self.core = SubscriptionCore(settings)
        self._send, self._inbox = anyio.create_memory_object_stream[Notified](NOTIFICATION_QUEUE)
        self._requests = 0
        self._notifications = 0
        self._dropped = 0

    def statistics(self) -> SubscriptionStatistics:
        held = sum(1 for h in self.core.state.held.values() if h.location is not None)
        return SubscriptionStatistics(held, self._requests, self._notifications, self._dropped)

    def resource_of(self, subscription: str) -> str | None:
        """The resource of the subscription held at ``subscription`` (the listener's 404 test)."""
        return self.core.resource_of(subscription)

    def notified_nowait(self, notification: Notified) -> None:
        """A notification the listener accepted (never blocks; dropped when the queue is full:
        polling is the safety net)."""
        try:
            self._send.send_nowait(notification)
        except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._dropped += 1
            logger.warning("notification of %s dropped: queue full", notification.resource)

    async def _persist(self, events: Sequence[Event]) -> None:
        if not events:
            return
        reading = self._clock.read()
        await self._log.append(
            [
                Append(
                    stream=SUBSCRIPTION_STREAM,
                    events=tuple(events),
                    server_time=reading.server_time,
                    monotonic=reading.monotonic,
                )
            ]
        )

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with self._send, self._inbox:
            state, _ = replay(self._store, SUBSCRIPTION_PROJECTION)
            self.core.state = msgspec.json.decode(
                msgspec.json.encode(state), type=SubscriptionState
            )
            task_status.started()
            while True:
                if self._targets.fresh:
                    walked = self._targets.take_nowait()
                    self.core.walked(walked.list_href, walked.targets)
                    await self._persist(self.core.forget_unoffered(self._clock.server_time()))
                while True:
                    try:
                        notification = self._inbox.receive_nowait()
                    except anyio.WouldBlock:
                        break
                    await self._handle(notification)
                action = self.core.next_action(self._clock.server_time())
                if action is not None:
                    await self._act(action)
                    continue
                await self._wait(self.core.next_deadline())

    async def _wait(self, deadline: float | None) -> None:
        """Until new targets, a notification (handled here), or ``deadline`` (server time)."""
        received: list[Notified] = []
        async with anyio.create_task_group() as group:

            async def targets() -> None:
                await self._targets.wait()
                group.cancel_scope.cancel()

            async def timer(at: float) -> None:
                await self._clock.sleep_until_server_time(at)
                group.cancel_scope.cancel()

            group.start_soon(targets)
            if deadline is not None:
                group.start_soon(timer, deadline)
            received.append(await self._inbox.receive())
            group.cancel_scope.cancel()
        for notification in received:
            await self._handle(notification)

    async def _handle(self, notification: Notified) -> None:
        """Status 0: the resource changed, its poll is due now. 1–4: the subscription is gone
        (2 moved, 3 definition changed, 4 deleted: the resource is read now too, which finds out)."""
        self._notifications += 1
        now = self._clock.server_time()
        if notification.status in NOTIFICATION_CANCELLED:
            await self._persist(
                self.core.lost(
                    notification.resource,
                    f"notification of status {notification.status} (subscription cancelled)",
                    now,
                )
            )
            if notification.status == 1:
                return
        poll = self.core.poll_of(notification.resource)
        if poll is None:
            return
        self._prompts.put_merged(
            PollPrompts(
                prompts=(
                    PollPrompt(
                        poll=poll,
                        resource=notification.resource,
                        notification_seq=notification.seq,
                        at_s=notification.at_s,
                    ),
                )
            ),
            PollPrompts.merged,
        )

    async def _act(self, action: Subscribe | Unsubscribe | Verify) -> None:
        self._requests += 1
        match action:
            case Subscribe(resource=resource, list_href=list_href):
                await self._subscribe(resource, list_href)
            case Unsubscribe(resource=resource, location=location):
                await self._unsubscribe(resource, location)
            case Verify(resource=resource, location=location):
                await self._verify(resource, location)

    async def _subscribe(self, resource: str, list_href: str) -> None:
        settings = self.core.settings
        await self._persist(self.core.requested(resource, list_href, self._clock.server_time()))
        body = r.Subscription(
            subscribedResource=resource,
            encoding=_ENCODING_XML,
            level=_LEVEL,
            limit=settings.limit,
            notificationURI=settings.notification_uri,
        )
        try:
            status, location = await self._link.post_answered(list_href, body)
        except HttpFailure as failure:
            events = self.core.refused(
                resource, failure.status, str(failure), self._clock.server_time()
            )
        except LinkError as error:
            events = self.core.refused(
                resource, None, describe_failure(error), self._clock.server_time()
            )
        else:
            now = self._clock.server_time()
            if location is None:
                events = self.core.refused(
                    resource, status, f"answered {status} without a Location", now
                )
            else:
                events = self.core.accepted(resource, location, now)
        await self._persist(events)

    async def _unsubscribe(self, resource: str, location: str) -> None:
        status: int | None
        try:
            status = await self._link.delete(location)
        except HttpFailure as failure:
            status = failure.status
        except LinkError:
            status = None
        await self._persist(self.core.ended(resource, location, status, self._clock.server_time()))

    async def _verify(self, resource: str, location: str) -> None:
        """The subscription's GET: 404 means the server no longer holds it (a restart lost it)."""
        try:
            await self._link.get(location, r.Subscription)
        except HttpFailure as failure:
            now = self._clock.server_time()
            if failure.status == 404 and not isinstance(failure, BadDocument):
                await self._persist(
                    self.core.lost(resource, "its GET answered 404 (the server lost it)", now)
                )
            else:
                self.core.verify_failed(now)
            return
        except LinkError:
            self.core.verify_failed(self._clock.server_time())
            return
        await self._persist(self.core.verified(location, self._clock.server_time()))
