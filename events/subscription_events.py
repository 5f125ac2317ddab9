"""Subscriptions the gateway holds on the utility's resources, and every notification it received.

IEEE 2030.5-2018 Subscription/Notification function set (PROTOCOL.md §2.10; issue 19 point 3): the
client POSTs a Subscription to the EndDevice's SubscriptionListLink; the server POSTs a Notification
to the subscription's notificationURI when the resource changes. Notifications only make the gateway
read sooner; polling at the advertised rates stays the safety net. Every request, answer and
notification is a record, so a dispute can say "changed by notification at T".

Records (stream ``subscription``, except :class:`PollPrompted`, which is the poll schedule's):

- :class:`SubscriptionRequested`, :class:`SubscriptionAccepted`, :class:`SubscriptionRefused`: one
  POST and its answer (a refusal carries the back-off decided, so replay needs no clock).
- :class:`SubscriptionLost`: the server no longer holds it (a Notification of status 1–4, or the
  subscription's GET answered 404: the server restarted); it is requested again, backed off after
  repeated losses.
- :class:`SubscriptionEnded`: the gateway DELETEd it (the walk no longer finds the resource).
- :class:`SubscriptionVerified`: the subscription's GET answered (verification at a bounded rate).
- :class:`NotificationReceived`: one Notification POST, accepted (201) or refused (4xx, why).
- :class:`PollPrompted`: a notification made the poll of ``poll`` due now (the poll fold reads it).
- :class:`ControlsNotified`: the controls first seen by a read a notification prompted.
"""

from __future__ import annotations

from events.base import Event

__all__ = [
    "SUBSCRIPTION_EVENT_TYPES",
    "SUBSCRIPTION_STREAM",
    "ControlsNotified",
    "NotificationReceived",
    "PollPrompted",
    "SubscriptionAccepted",
    "SubscriptionEnded",
    "SubscriptionLost",
    "SubscriptionLostV1",
    "SubscriptionRefused",
    "SubscriptionRequested",
    "SubscriptionVerified",
    "upcast_subscription_lost_v1",
]

SUBSCRIPTION_STREAM = "subscription"


class SubscriptionRequested(Event, tag="subscription.requested.v1", frozen=True, kw_only=True):
    """A Subscription to ``resource`` POSTed to ``list_href`` (the EndDevice's SubscriptionList),
    asking for notifications at ``notification_uri`` with at most ``limit`` list items inline."""

    resource: str
    list_href: str
    notification_uri: str
    limit: int
    at_s: float


class SubscriptionAccepted(Event, tag="subscription.accepted.v1", frozen=True, kw_only=True):
    """The server created it (201) at ``location``: the ``subscriptionURI`` its notifications carry."""

    resource: str
    location: str
    at_s: float


class SubscriptionRefused(Event, tag="subscription.refused.v1", frozen=True, kw_only=True):
    """The POST failed: ``status`` the HTTP status (None: no answer, a network failure), ``reason``
    why; not asked again before ``retry_at_s`` (back-off doubling with each refusal in a row)."""

    resource: str
    status: int | None
    reason: str
    failures: int
    retry_at_s: float
    at_s: float


class SubscriptionLost(Event, tag="subscription.lost.v2", frozen=True, kw_only=True):
    """The server no longer holds the subscription at ``location``: ``why`` says how we know
    (a cancelling notification's status, or the 404 of a verification). Requested again at
    ``retry_at_s``: at once for the first loss, backed off for ``losses`` in a row (losses since
    the last verification; decided when lost and recorded, so replay needs no clock)."""

    resource: str
    location: str
    why: str
    losses: int
    retry_at_s: float
    at_s: float


class SubscriptionLostV1(Event, tag="subscription.lost.v1", frozen=True, kw_only=True):
    """Legacy: :class:`SubscriptionLost` as logs before the loss back-off hold it (always
    requested again at once). Read through :func:`upcast_subscription_lost_v1`; never written."""

    resource: str
    location: str
    why: str
    at_s: float


def upcast_subscription_lost_v1(old: Event) -> Event:
    """v1 → v2: a v1 loss was requested again at once, counted as one loss."""
    assert isinstance(old, SubscriptionLostV1)
    return SubscriptionLost(
        resource=old.resource,
        location=old.location,
        why=old.why,
        losses=1,
        retry_at_s=old.at_s,
        at_s=old.at_s,
    )


class SubscriptionEnded(Event, tag="subscription.ended.v1", frozen=True, kw_only=True):
    """DELETEd by the gateway (the walk no longer finds ``resource``); ``status`` the answer
    (None: no answer; the subscription is forgotten either way, the server's is its own to expire).
    ``location`` empty: none was held (refused or lost), the entry is only forgotten, unasked."""

    resource: str
    location: str
    status: int | None
    at_s: float


class SubscriptionVerified(Event, tag="subscription.verified.v1", frozen=True, kw_only=True):
    """The subscription's GET answered: the server still holds it."""

    location: str
    at_s: float


class NotificationReceived(
    Event, tag="subscription.notification_received.v1", frozen=True, kw_only=True
):
    """One Notification POSTed to the listener. ``http_status`` the listener's answer (201 accepted;
    400 a malformed body, 404 an unknown subscription, 413 too large), ``reason`` why it was refused
    (empty when accepted). ``subscription``/``resource``: the body's subscriptionURI and
    subscribedResource (empty when it could not be read); ``status`` the Notification's status (0
    changed, 1 cancelled, 2 moved, 3 definition changed, 4 deleted; None: not read); ``inline``
    whether the resource was in the body; ``body_bytes`` its size; ``peer_lfdi`` who sent it (from
    its verified client certificate)."""

    subscription: str
    resource: str
    status: int | None
    inline: bool
    body_bytes: int
    http_status: int
    reason: str
    peer_lfdi: str
    at_s: float


class PollPrompted(Event, tag="subscription.poll_prompted.v1", frozen=True, kw_only=True):
    """The notification recorded at ``notification_seq`` made the poll of ``poll`` (a poll schedule
    key, e.g. ``derp:/derp``) due at ``at_s``: it is read as if its pollRate had run out, and the
    next poll comes a pollRate after that read."""

    poll: str
    resource: str
    notification_seq: int
    at_s: float


class ControlsNotified(Event, tag="subscription.controls_notified.v1", frozen=True, kw_only=True):
    """A read prompted by the notification recorded at ``notification_seq`` (received at
    ``notified_at_s``) gave the controls of ``program_id``; ``first_seen`` the mRIDs it was the
    first sight of (recorded after their receipts, in the same batch)."""

    program_id: str
    notification_seq: int
    notified_at_s: float
    first_seen: tuple[str, ...]
    at_s: float


SUBSCRIPTION_EVENT_TYPES: tuple[type[Event], ...] = (
    SubscriptionRequested,
    SubscriptionAccepted,
    SubscriptionRefused,
    SubscriptionLost,
    SubscriptionEnded,
    SubscriptionVerified,
    NotificationReceived,
    PollPrompted,
    ControlsNotified,
)
