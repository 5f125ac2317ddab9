"""Which of the utility's resources the gateway subscribes to, and when it asks, verifies or lets go.

IEEE 2030.5-2018 Subscription/Notification (PROTOCOL.md §2.10; issue 19 point 3). Sans-IO: the
subscription actor tells the core what the walk found and what the server answered; the core says
what to do next (:meth:`SubscriptionCore.next_action`) and when to wake (:meth:`next_deadline`).
Everything it must remember across a restart is a record (``events.subscription_events``) folded
by :data:`SUBSCRIPTION_PROJECTION`; what the walk found is not (links are learned again by every
walk, never remembered, as for the polls).

Rules:

- **What**: the resources the walk reads whose ``subscribable`` attribute is 1 or 2 (the schema's
  default 0 is "not subscribable"): our EndDevice, its FunctionSetAssignmentsList, each
  DERProgramList, DERControlList and DefaultDERControl; at most ``max_subscriptions`` of them, in
  that order (the rest are only polled). The walk gives them in that order.
- **Subscribe** once to each (POST to the EndDevice's SubscriptionListLink); a refusal (any 4xx or
  5xx, or no answer) is asked again after a back-off doubling from ``backoff_initial_s`` to
  ``backoff_max_s``, decided here and recorded, so replay needs no clock.
- **Lost** (a Notification of status 1–4, or the subscription's GET answering 404 after a server
  restart): requested again at once the first time; further losses before a verification back
  off as refusals do (a peer cancelling by notification cannot buy a Subscription POST each).
- **Verify** each held subscription (GET its Location) at most once per ``verify_period_s``, and
  the whole set at most one GET per ``verify_every_s``: a server that lost them all is found
  within a period without a burst of requests.
- **Let go**: a held subscription to a resource the latest walk no longer finds is DELETEd (only
  after a walk: before the first one after a restart, nothing is known to be gone); a refused or
  lost one (no Location) is forgotten, recorded as ended with no answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final

import msgspec

from events.base import Event
from events.replay import Projection
from events.subscription_events import (
    SubscriptionAccepted,
    SubscriptionEnded,
    SubscriptionLost,
    SubscriptionRefused,
    SubscriptionRequested,
    SubscriptionVerified,
)

__all__ = [
    "NOTIFICATION_CANCELLED",
    "SUBSCRIPTION_PROJECTION",
    "Held",
    "Subscribe",
    "SubscriptionCore",
    "SubscriptionSettings",
    "SubscriptionState",
    "SubscriptionTarget",
    "Unsubscribe",
    "Verify",
    "evolve_subscriptions",
    "is_subscribable",
]

#: Notification.status 0: the resource changed; 1–4: the subscription was cancelled (1 without a
#: reason, 2 the resource moved, 3 its definition changed, 4 it was deleted).
NOTIFICATION_CHANGED: Final = 0
NOTIFICATION_CANCELLED: Final = frozenset({1, 2, 3, 4})


def is_subscribable(subscribable: int | None) -> bool:
    """SubscribableResource.subscribable: 0 (the default) not subscribable, 1 non-conditional
    subscriptions, 2 conditional and non-conditional."""
    return subscribable in (1, 2)


class SubscriptionSettings(msgspec.Struct, frozen=True, kw_only=True):
    notification_uri: str
    #: Subscription.limit: list items a notification may carry inline. The gateway re-reads what a
    #: notification names (module docstring of actors.subscriptions), so one is enough.
    limit: int = 1
    max_subscriptions: int = 32
    verify_every_s: float = 60.0
    verify_period_s: float = 300.0
    backoff_initial_s: float = 60.0
    backoff_max_s: float = 3600.0


@dataclass(frozen=True, slots=True)
class SubscriptionTarget:
    """A subscribable resource the walk found, and the poll a notification on it makes due."""

    resource: str
    poll: str


class Held(msgspec.Struct, kw_only=True):
    """What the log says of one resource's subscription."""

    location: str | None = None
    failures: int = 0
    retry_at_s: float = 0.0
    verified_s: float = 0.0
    #: The HTTP status of the last refusal (None: none, or no answer).
    refused_status: int | None = None
    #: Losses in a row (status 1–4 notifications, 404 verifications) since the subscription was
    #: last verified: an acceptance does not reset it, so lose/resubscribe cycles back off.
    losses: int = 0


class SubscriptionState(msgspec.Struct, kw_only=True):
    held: dict[str, Held] = msgspec.field(default_factory=dict)
    last_verify_s: float = 0.0


def evolve_subscriptions(state: SubscriptionState, event: Event) -> SubscriptionState:
    """Apply one record (in place): the fold of the ``subscription`` stream."""
    match event:
        case SubscriptionRequested(resource=resource):
            state.held.setdefault(resource, Held())
        case SubscriptionAccepted(resource=resource, location=location, at_s=at_s):
            held = state.held.setdefault(resource, Held())
            held.location, held.failures, held.verified_s = location, 0, at_s
        case SubscriptionRefused(
            resource=resource, status=status, failures=failures, retry_at_s=retry_at_s
        ):
            held = state.held.setdefault(resource, Held())
            held.location, held.failures, held.retry_at_s = None, failures, retry_at_s
            held.refused_status = status
        case SubscriptionLost(resource=resource, losses=losses, retry_at_s=retry_at_s):
            held = state.held.setdefault(resource, Held())
            held.location, held.retry_at_s, held.losses = None, retry_at_s, losses
        case SubscriptionEnded(resource=resource):
            state.held.pop(resource, None)
        case SubscriptionVerified(location=location, at_s=at_s):
            state.last_verify_s = at_s
            for held in state.held.values():
                if held.location == location:
                    held.verified_s, held.losses = at_s, 0
        case _:
            pass
    return state


_PRISTINE: Final = SubscriptionState()


def _evolve_from_pristine(state: SubscriptionState, event: Event) -> SubscriptionState:
    if state is _PRISTINE:
        state = SubscriptionState()
    return evolve_subscriptions(state, event)


SUBSCRIPTION_PROJECTION: Final = Projection(
    name="subscriptions",
    initial=_PRISTINE,
    evolve=_evolve_from_pristine,
    state_type=SubscriptionState,
    types=(
        SubscriptionRequested,
        SubscriptionAccepted,
        SubscriptionRefused,
        SubscriptionLost,
        SubscriptionEnded,
        SubscriptionVerified,
    ),
)


@dataclass(frozen=True, slots=True)
class Subscribe:
    resource: str
    list_href: str


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    resource: str
    location: str


@dataclass(frozen=True, slots=True)
class Verify:
    resource: str
    location: str


Action = Subscribe | Unsubscribe | Verify


class SubscriptionCore:
    """Sans-IO: see the module docstring."""

    __slots__ = ("_list_href", "_walked", "_wanted", "settings", "state")

    def __init__(self, settings: SubscriptionSettings, state: SubscriptionState | None = None):
        self.settings = settings
        self.state = state if state is not None else SubscriptionState()
        #: resource -> poll, in the walk's order; None until the first walk of this run.
        self._wanted: dict[str, str] | None = None
        self._list_href: str | None = None

    def _emit(self, event: Event) -> list[Event]:
        evolve_subscriptions(self.state, event)
        return [event]

    # -- what the walk found ---------------------------------------------------------------------

    def walked(self, list_href: str | None, targets: Sequence[SubscriptionTarget]) -> None:
        """The latest walk: the EndDevice's SubscriptionList (None: none offered) and the
        subscribable resources found, most important first. At most ``max_subscriptions``."""
        self._list_href = list_href
        wanted: dict[str, str] = {}
        for target in targets:
            if len(wanted) >= self.settings.max_subscriptions:
                break
            wanted.setdefault(target.resource, target.poll)
        self._wanted = wanted if list_href is not None else {}

    def forget_unoffered(self, now: float) -> list[Event]:
        """After a walk: the entries held for resources it no longer offers that hold no
        subscription (refused, or lost and not yet asked again) are forgotten, each a
        ``SubscriptionEnded`` with no location and no answer, so they are neither replayed at
        every start nor scanned at every step. One whose 403 still backs off the whole list
        (:meth:`_forbidden_until`) is kept until its back-off ends. Held subscriptions to such
        resources are let go by :meth:`next_action` (DELETE), not here."""
        if self._wanted is None:
            return []
        events: list[Event] = []
        for resource, held in list(self.state.held.items()):
            if resource in self._wanted or held.location is not None:
                continue
            if held.refused_status == HTTPStatus.FORBIDDEN and held.retry_at_s > now:
                continue
            events += self.ended(resource, "", None, now)
        return events

    def poll_of(self, resource: str) -> str | None:
        """The poll a notification on ``resource`` makes due (None: not one we subscribed to)."""
        return None if self._wanted is None else self._wanted.get(resource)

    def resource_of(self, subscription: str) -> str | None:
        """The resource of the subscription held at ``subscription`` (its Location), if any."""
        for resource, held in self.state.held.items():
            if held.location is not None and held.location == subscription:
                return resource
        return None

    # -- what to do next -------------------------------------------------------------------------

    def next_action(self, now: float) -> Action | None:
        """The one request to make now, if any: let go of what the walk lost, subscribe to what it
        found, then verify the longest unverified."""
        if self._wanted is None:
            return None
        for resource, held in self.state.held.items():
            if resource not in self._wanted and held.location is not None:
                return Unsubscribe(resource, held.location)
        if self._list_href is not None and self._forbidden_until() <= now:
            for resource in self._wanted:
                held_now = self.state.held.get(resource)
                if held_now is None or (held_now.location is None and held_now.retry_at_s <= now):
                    return Subscribe(resource, self._list_href)
        oldest = self._verify_candidate()
        if oldest is not None and self._verify_at(oldest[1]) <= now:
            return Verify(oldest[0], oldest[1].location or "")
        return None

    def _forbidden_until(self) -> float:
        """403 refuses the client, not the resource (a server that lets only aggregator
        certificates subscribe): while such a refusal backs off, no other resource of the list is
        asked either, so the back-off holds for the list, one probe per step."""
        return max(
            (
                held.retry_at_s
                for held in self.state.held.values()
                if held.location is None and held.refused_status == HTTPStatus.FORBIDDEN
            ),
            default=0.0,
        )

    def _verify_candidate(self) -> tuple[str, Held] | None:
        held = [
            (resource, h)
            for resource, h in self.state.held.items()
            if h.location is not None and (self._wanted is None or resource in self._wanted)
        ]
        return min(held, key=lambda item: (item[1].verified_s, item[0]), default=None)

    def _verify_at(self, held: Held) -> float:
        return max(
            held.verified_s + self.settings.verify_period_s,
            self.state.last_verify_s + self.settings.verify_every_s,
        )

    def next_deadline(self) -> float | None:
        """When :meth:`next_action` may next have something to do (None: only a new walk or a
        notification changes that)."""
        if self._wanted is None:
            return None
        times: list[float] = []
        if self._list_href is not None:
            forbidden_until = self._forbidden_until()
            for resource in self._wanted:
                held = self.state.held.get(resource)
                if held is None and forbidden_until:
                    times.append(forbidden_until)
                elif held is not None and held.location is None:
                    times.append(max(held.retry_at_s, forbidden_until))
        candidate = self._verify_candidate()
        if candidate is not None:
            times.append(self._verify_at(candidate[1]))
        return min(times, default=None)

    # -- what happened ---------------------------------------------------------------------------

    def requested(self, resource: str, list_href: str, now: float) -> list[Event]:
        return self._emit(
            SubscriptionRequested(
                resource=resource,
                list_href=list_href,
                notification_uri=self.settings.notification_uri,
                limit=self.settings.limit,
                at_s=now,
            )
        )

    def accepted(self, resource: str, location: str, now: float) -> list[Event]:
        return self._emit(SubscriptionAccepted(resource=resource, location=location, at_s=now))

    def refused(self, resource: str, status: int | None, reason: str, now: float) -> list[Event]:
        """Back-off: ``backoff_initial_s`` doubled with each refusal in a row, at most
        ``backoff_max_s``."""
        held = self.state.held.get(resource)
        failures = (held.failures if held is not None else 0) + 1
        delay = min(
            self.settings.backoff_max_s,
            self.settings.backoff_initial_s * 2 ** min(failures - 1, 30),
        )
        return self._emit(
            SubscriptionRefused(
                resource=resource,
                status=status,
                reason=reason[:300],
                failures=failures,
                retry_at_s=now + delay,
                at_s=now,
            )
        )

    def lost(self, resource: str, why: str, now: float) -> list[Event]:
        """The first loss is requested again at once (a server restart loses every
        subscription); each further loss before a verification doubles the wait from
        ``backoff_initial_s`` to ``backoff_max_s``, so a peer that cancels by notification cannot
        buy one Subscription POST per notification."""
        held = self.state.held.get(resource)
        if held is None or held.location is None:
            return []
        losses = held.losses + 1
        delay = (
            0.0
            if losses == 1
            else min(
                self.settings.backoff_max_s,
                self.settings.backoff_initial_s * 2 ** min(losses - 2, 30),
            )
        )
        return self._emit(
            SubscriptionLost(
                resource=resource,
                location=held.location,
                why=why,
                losses=losses,
                retry_at_s=now + delay,
                at_s=now,
            )
        )

    def verify_failed(self, now: float) -> None:
        """A verification that got no usable answer (offline, 5xx): nothing is known of the
        subscription; the next GET waits ``verify_every_s`` (pacing only, not recorded)."""
        self.state.last_verify_s = now

    def verified(self, location: str, now: float) -> list[Event]:
        return self._emit(SubscriptionVerified(location=location, at_s=now))

    def ended(self, resource: str, location: str, status: int | None, now: float) -> list[Event]:
        return self._emit(
            SubscriptionEnded(resource=resource, location=location, status=status, at_s=now)
        )
