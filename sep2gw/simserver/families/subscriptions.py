"""Subscription/notification (IEEE 2030.5 §5.4 "Subscription/Notification mechanism"): the server side.

An EndDevice whose certificate may subscribe carries a ``SubscriptionListLink`` (``/edev/{e}/sub``);
the client POSTs a ``Subscription`` there (201 + Location ``/edev/{e}/sub/{n}``), GETs the list
(paged) or one subscription, and DELETEs one (204). Who may subscribe is ``[server]
subscriptions``: ``"aggregator"`` (default, as envoy and the public CSIP-AUS servers: only the
aggregator certificates listed in ``aggregators``; a device certificate gets 403 with the reason),
``"all"`` or ``"none"``. The link is shown to the certificates that may subscribe, or to every one
under ``subscription_link = "everyone"`` (as envoy, whose device certificates see it and are
refused).

A Subscription is refused (400 naming the element) unless, strictly:

- ``subscribedResource`` (a path, or an absolute ``https`` URI whose path is taken) is a resource
  of *that* EndDevice the server lets clients subscribe to — the EndDevice, its
  FunctionSetAssignmentsList, a DERProgramList of its FSA, a DERProgram of that list, its
  DefaultDERControl, its DERControlList or one DERControl (the ActiveDERControlList changes with
  time alone and the DERCurveList never: both say ``subscribable`` 0). These resources are served
  with ``subscribable`` 1 (non-conditional subscriptions) to a client that may subscribe;
- there is no ``Condition`` (subscribable 1: conditional subscriptions are not supported);
- ``encoding`` is 0 (application/sep+xml; EXI is not served), ``level`` is ``+S1``;
- ``limit`` is at most ``subscription_limit_max``;
- ``notificationURI`` is an absolute ``https`` URI with a host (the schema: "SHALL be a
  fully-qualified absolute URI"), without user information or fragment;
- the EndDevice holds fewer than ``subscriptions_per_device`` subscriptions.

The same subscription POSTed again (same resource, notificationURI, limit) is answered 201 with
the existing Location, as a re-registration is. Every request and outcome is in
:attr:`SubscriptionResources.subscription_audit`.

Notifications (§5.4 and the schema's ``Subscription.limit``): the server renders every subscribed
resource, as its subscriber reads it, just before and just after each scenario action
(:meth:`SubscriptionResources.subscribed_renderings` / :meth:`notify_changes`), and queues a
``Notification`` (status 0) for each one that changed: for a list, the list with ``results`` up to
``limit`` (``limit`` 0: ``results`` 0, a bare change notice), in list order; for a single
resource, the resource inline with its ``xsi:type`` (``limit`` 0: none). A resource that is gone
afterwards (a default removed, a control deleted) ends its subscriptions with status 4 ("resource
deleted"). Only server-side changes notify: what a client's own request changes, and status that
changes with time passing, do not (a real server notifies on its database's changes).
``cancel_subscriptions`` ends subscriptions with status 1, ``forget_subscriptions`` (a server
restart) drops them silently. Notification faults (``lose_/duplicate_/delay_notifications``) are
decided here when a notification is made, from the world's seed and the notification's number, so
they do not depend on the order tasks run in. The queue (:attr:`outbox`) is carried out by
:class:`sep2gw.simserver.notifier.Notifier`. Pure: no clock, no I/O.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import msgspec

from sep2gw.simserver.families.base import SUBSCRIBABLE_NON_CONDITIONAL, ServedState
from sep2gw.simserver.quirks import apply_text_quirks
from sep2gw.simserver.records import DeviceRecord, SimReply, _Ctx, _decode
from sep2gw.simserver.scenario import (
    CancelSubscriptions,
    DelayNotifications,
    DuplicateNotifications,
    LoseNotifications,
)
from transport.http.router import Match, Router
from transport.sep2 import Sep2DecodeError, decode_any, encode
from transport.sep2 import resources as r

__all__ = [
    "NOTIFICATION_CANCELLED",
    "NOTIFICATION_DEFAULT",
    "NOTIFICATION_DELETED",
    "SUBSCRIBABLE_NON_CONDITIONAL",
    "OutgoingNotification",
    "SubscriptionAudit",
    "SubscriptionRecord",
    "SubscriptionResources",
]

#: ``Notification.status`` values (IEEE 2030.5-2018 schema).
NOTIFICATION_DEFAULT: Final = 0
NOTIFICATION_CANCELLED: Final = 1
NOTIFICATION_DELETED: Final = 4
_LEVEL: Final = "+S1"
_ALL: Final = str(0xFFFFFFFF)

SubscribedKind = Literal[
    "EndDevice",
    "FunctionSetAssignmentsList",
    "DERProgramList",
    "DERProgram",
    "DefaultDERControl",
    "DERControlList",
    "DERControl",
]
_LISTS: Final = frozenset({"FunctionSetAssignmentsList", "DERProgramList", "DERControlList"})
_SUBSCRIPTION_LIST: Final = re.compile(r"/edev/[0-9]+/sub/?")


@dataclass(slots=True)
class SubscriptionRecord:
    id: int
    device: int
    #: The subscriber's certificate LFDI (an aggregator's may differ from the EndDevice's).
    lfdi: int
    #: The subscribed resource's path, as the server serves it.
    path: str
    kind: SubscribedKind
    #: subscribedResource as the client wrote it (echoed in the Subscription and Notifications).
    subscribed_resource: str
    limit: int
    notification_uri: str
    created_at: int

    @property
    def href(self) -> str:
        return f"/edev/{self.device}/sub/{self.id}"


@dataclass(frozen=True, slots=True)
class OutgoingNotification:
    """One Notification the server made, to be POSTed by the notifier. ``copies`` 0: dropped
    (a ``lose_notifications`` draw), 2: duplicated; ``not_before``: server time it may leave."""

    number: int
    subscription: int
    device: int
    uri: str
    status: int
    subscribed_resource: str
    body: bytes
    made_at: float
    not_before: float
    copies: int


@dataclass(frozen=True, slots=True)
class SubscriptionAudit:
    """One subscription event the server audits: ``what`` is ``accepted``, ``repeated``,
    ``refused`` (with the status and reason), ``deleted``, ``forgotten``, ``cancelled``,
    ``resource_deleted``, or a notification ``made``/``dropped``/``duplicated``/``delayed``."""

    at: float
    what: str
    lfdi: int | None
    subscription: int | None
    detail: str
    status: int = 0


def _subscribable_routes(program_base: str) -> Router[SubscribedKind]:
    router: Router[SubscribedKind] = Router()
    router.add("GET", "/edev/{e}", "EndDevice")
    router.add("GET", "/edev/{e}/fsa", "FunctionSetAssignmentsList")
    router.add("GET", "/edev/{e}/fsa/{f}/derp", "DERProgramList")
    router.add("GET", program_base, "DERProgram")
    router.add("GET", program_base + "/dderc", "DefaultDERControl")
    router.add("GET", program_base + "/derc", "DERControlList")
    router.add("GET", program_base + "/derc/{c}", "DERControl")
    return router


def draw(seed: int, number: int, what: str) -> float:
    """A uniform draw in [0, 1) for notification ``number``'s fault ``what``: a pure function of
    the world's seed, so the same seed loses and repeats the same notifications whatever order
    the tasks ran in."""
    digest = hashlib.blake2b(f"{seed}:{number}:{what}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big")).random()


class SubscriptionResources(ServedState):
    """Subscription/notification (IEEE 2030.5 §5.4 "Subscription/Notification mechanism"): the server side."""

    #: Every subscription held, by id (in the order they were made).
    subscriptions: dict[int, SubscriptionRecord]
    _held: dict[int, dict[int, SubscriptionRecord]]  # EndDevice id -> its subscriptions by id
    subscription_audit: list[SubscriptionAudit]
    outbox: list[OutgoingNotification]
    notification_seed: int
    _subscription_counter: int
    _notification_counter: int
    _notification_faults: list[
        tuple[float, float, LoseNotifications | DuplicateNotifications | DelayNotifications]
    ]
    _subscribable: Router[SubscribedKind]
    router: Router[Any]

    def _init_subscriptions(self, program_base: str) -> None:
        self.subscriptions = {}
        self._held = {}
        self.subscription_audit = []
        self.outbox = []
        self.notification_seed = 0
        self._subscription_counter = 0
        self._notification_counter = 0
        self._notification_faults = []
        self._subscribable = _subscribable_routes(program_base)

    # ------------------------------------------------------------------------------ who may

    def _refuse_reason(self, lfdi: int | None) -> str:
        mode = self.scenario.server.subscriptions
        if mode == "none":
            return "this server does not offer subscriptions"
        return (
            "only aggregator certificates may subscribe; this client certificate's LFDI "
            f"{(lfdi or 0):040X} is a device's"
        )

    def _audit(
        self,
        ctx_now: float,
        what: str,
        lfdi: int | None,
        subscription: int | None,
        detail: str,
        status: int = 0,
    ) -> None:
        self.subscription_audit.append(
            SubscriptionAudit(ctx_now, what, lfdi, subscription, detail, status)
        )

    def _refuse(
        self, ctx: _Ctx, status: int, reason: str, parsed: msgspec.Struct | None = None
    ) -> SimReply:
        self._audit(ctx.now, "refused", ctx.lfdi, None, reason, status)
        return SimReply(status, reason=reason, parsed=parsed)

    # --------------------------------------------------------------------------- resources

    def audit_schema_refusal(
        self, method: str, path: str, lfdi: str, reason: str, now: float
    ) -> None:
        """A subscription request the server refused before its state saw it (the body is not
        schema-valid) is in the audit too."""
        if method == "POST" and _SUBSCRIPTION_LIST.fullmatch(path):
            self._audit(now, "refused", int(lfdi, 16) if lfdi else None, None, reason, 400)

    def _wire_subscription(self, sub: SubscriptionRecord) -> r.Subscription:
        return r.Subscription(
            href=sub.href,
            subscribedResource=sub.subscribed_resource,
            encoding=0,
            level=_LEVEL,
            limit=sub.limit,
            notificationURI=sub.notification_uri,
        )

    def _get_subscription_list(self, ctx: _Ctx) -> SimReply:
        device = self._own_device(ctx)
        if not self.may_subscribe(ctx.lfdi):
            return self._refuse(ctx, 403, self._refuse_reason(ctx.lfdi))
        held = list(self._held.get(device.id, {}).values())
        page = self._page_of(ctx, held)
        return self._doc(
            r.SubscriptionList(
                href=f"/edev/{device.id}/sub",
                all=len(held),
                results=len(page),
                Subscription=tuple(self._wire_subscription(s) for s in page),
            )
        )

    def _subscription_param(self, ctx: _Ctx, device: DeviceRecord) -> SubscriptionRecord | None:
        text = ctx.params["s"]
        if not text.isdigit():
            return None
        return self._held.get(device.id, {}).get(int(text))

    def _get_subscription(self, ctx: _Ctx) -> SimReply:
        device = self._own_device(ctx)
        sub = self._subscription_param(ctx, device)
        if sub is None:
            return SimReply(
                404, reason=f"no Subscription {ctx.params['s']!r} of EndDevice {device.id}"
            )
        return self._doc(self._wire_subscription(sub))

    def _delete_subscription(self, ctx: _Ctx) -> SimReply:
        device = self._own_device(ctx)
        sub = self._subscription_param(ctx, device)
        if sub is None:
            return self._refuse(
                ctx, 404, f"no Subscription {ctx.params['s']!r} of EndDevice {device.id}"
            )
        self._drop(sub)
        self._audit(ctx.now, "deleted", ctx.lfdi, sub.id, sub.subscribed_resource)
        return SimReply(204)

    def _post_subscription(self, ctx: _Ctx) -> SimReply:
        """Create a subscription (IEEE 2030.5 §5.4): validated strictly (module docstring);
        201 + Location, or the refusal naming what was wrong."""
        device = self._own_device(ctx)
        sub = _decode(ctx.body, r.Subscription)
        if isinstance(sub, SimReply):
            return self._refuse(ctx, sub.status, sub.reason)
        if not self.may_subscribe(ctx.lfdi):
            return self._refuse(ctx, 403, self._refuse_reason(ctx.lfdi), sub)
        assert ctx.lfdi is not None  # may_subscribe refuses a peer without a certificate
        path, kind, problem = self._subscribed(sub.subscribedResource, device, ctx.now, ctx.lfdi)
        if problem:
            return self._refuse(ctx, 400, f"/Subscription/subscribedResource: {problem}", sub)
        assert kind is not None
        problem = _subscription_problem(sub, self.scenario.server.subscription_limit_max)
        if problem:
            return self._refuse(ctx, 400, problem, sub)
        held = self._held.get(device.id, {})
        for existing in held.values():
            if (existing.path, existing.notification_uri, existing.limit) == (
                path,
                sub.notificationURI,
                sub.limit,
            ):
                self._audit(ctx.now, "repeated", ctx.lfdi, existing.id, path)
                return SimReply(201, location=existing.href, parsed=sub)
        if len(held) >= self.scenario.server.subscriptions_per_device:
            return self._refuse(
                ctx,
                400,
                f"EndDevice {device.id} already holds {len(held)} subscriptions "
                f"(at most {self.scenario.server.subscriptions_per_device})",
                sub,
            )
        self._subscription_counter += 1
        record = SubscriptionRecord(
            id=self._subscription_counter,
            device=device.id,
            lfdi=ctx.lfdi or 0,
            path=path,
            kind=kind,
            subscribed_resource=sub.subscribedResource,
            limit=sub.limit,
            notification_uri=sub.notificationURI,
            created_at=int(ctx.now),
        )
        self.subscriptions[record.id] = record
        self._held.setdefault(record.device, {})[record.id] = record
        self._audit(ctx.now, "accepted", ctx.lfdi, record.id, f"{kind} {path}")
        return SimReply(201, location=record.href, parsed=sub)

    def _subscribed(
        self, text: str, device: DeviceRecord, now: float, viewer: int
    ) -> tuple[str, SubscribedKind | None, str]:
        """(path, kind, problem): what ``subscribedResource`` names, and why the certificate
        ``viewer`` cannot subscribe to it on ``device`` (empty: it can)."""
        path = text
        if "://" in text:
            parts = urlsplit(text)
            if parts.scheme != "https" or not parts.path:
                return text, None, f"{text!r} is neither a path nor an https URI"
            path = parts.path
        if not path.startswith("/"):
            return text, None, f"{text!r} is neither a path nor an https URI"
        match = self._subscribable.resolve("GET", path)
        if not isinstance(match, Match):
            return path, None, f"{path} is not a resource this server lets clients subscribe to"
        e = match.params.get("e")
        if e is not None and e != str(device.id):
            return path, None, f"{path} is not a resource of EndDevice {device.id}"
        if self._render_as_subscriber(device, path, now, None, viewer) is None:
            return path, None, f"no resource at {path} for EndDevice {device.id}"
        return path, match.handler, ""

    # ------------------------------------------------------------------------ notifications

    def _render_as_subscriber(
        self, device: DeviceRecord, path: str, now: float, limit: int | None, viewer: int
    ) -> bytes | None:
        """``path`` as its subscriber (the certificate ``viewer``, acting for ``device``) reads it
        at ``now`` (a list: its first ``limit`` items, ``None``: all of them); ``None`` when there
        is nothing there."""
        match = self.router.resolve("GET", path)
        if not isinstance(match, Match):
            return None
        query = {"s": "0", "l": _ALL if limit is None else str(limit)}
        ctx = _Ctx("GET", match.path, match.params, query, b"", viewer, now)
        try:
            reply: SimReply = match.handler(self, ctx)
        except ValueError:  # _NotFound and bad parameters
            return None
        return reply.body if reply.status == 200 else None

    def subscribed_renderings(self, now: float) -> dict[tuple[int, str, int], bytes | None]:
        """Every subscribed resource as its subscribers read it at ``now`` (by device, path and
        subscribing certificate)."""
        rendered: dict[tuple[int, str, int], bytes | None] = {}
        devices = {d.id: d for d in self.devices}
        for sub in self.subscriptions.values():
            key = (sub.device, sub.path, sub.lfdi)
            if key not in rendered and sub.device in devices:
                rendered[key] = self._render_as_subscriber(
                    devices[sub.device], sub.path, now, None, sub.lfdi
                )
        return rendered

    def notify_changes(self, before: dict[tuple[int, str, int], bytes | None], now: float) -> None:
        """Queue a Notification for every subscription whose resource changed since ``before``
        (:meth:`subscribed_renderings` at the same instant, before the change); a resource that is
        gone ends its subscriptions with status 4."""
        if not before:
            return
        after = self.subscribed_renderings(now)
        devices = {d.id: d for d in self.devices}
        resources: dict[bytes, msgspec.Struct | None] = {}  # one decode per distinct page
        for sub in list(self.subscriptions.values()):
            key = (sub.device, sub.path, sub.lfdi)
            if key not in before or before[key] == after.get(key):
                continue
            if after.get(key) is None:
                self._drop(sub)
                self._audit(now, "resource_deleted", sub.lfdi, sub.id, sub.path)
                self._queue(sub, NOTIFICATION_DELETED, None, now)
                continue
            resource = None
            if sub.limit > 0 or sub.kind in _LISTS:
                page = self._render_as_subscriber(
                    devices[sub.device],
                    sub.path,
                    now,
                    sub.limit if sub.kind in _LISTS else None,
                    sub.lfdi,
                )
                if page is not None:
                    if page not in resources:
                        resources[page] = _resource(page)
                    resource = resources[page]
            self._queue(sub, NOTIFICATION_DEFAULT, resource, now)

    def cancel_subscriptions(self, action: CancelSubscriptions, now: float) -> None:
        """The server ends subscriptions with a Notification of status 1."""
        for sub in list(self.subscriptions.values()):
            if action.resources and not any(sub.path.startswith(p) for p in action.resources):
                continue
            self._drop(sub)
            self._audit(now, "cancelled", sub.lfdi, sub.id, sub.path)
            self._queue(sub, NOTIFICATION_CANCELLED, None, now)

    def forget_subscriptions(self, now: float) -> None:
        """A server restart: every subscription is lost, nobody is told."""
        for sub in self.subscriptions.values():
            self._audit(now, "forgotten", sub.lfdi, sub.id, sub.path)
        self.subscriptions.clear()
        self._held.clear()

    def _drop(self, sub: SubscriptionRecord) -> None:
        del self.subscriptions[sub.id]
        del self._held[sub.device][sub.id]

    def add_notification_fault(
        self,
        action: LoseNotifications | DuplicateNotifications | DelayNotifications,
        now: float,
    ) -> None:
        self._notification_faults.append((now, now + action.duration_s, action))

    def _queue(
        self, sub: SubscriptionRecord, status: int, resource: msgspec.Struct | None, now: float
    ) -> None:
        self._notification_counter += 1
        number = self._notification_counter
        notification = r.Notification(
            subscribedResource=sub.subscribed_resource,
            subscriptionURI=self.scenario.server.base_url + sub.href,
            status=status,
            Resource=resource,  # type: ignore[arg-type]
        )
        body = apply_text_quirks(
            encode(notification, csipaus_ns=self.quirks.csipaus_ns), self.quirks
        )
        copies, delay = 1, 0.0
        for start, end, fault in self._notification_faults:
            if not start <= now < end:
                continue
            if isinstance(fault, LoseNotifications):
                if draw(self.notification_seed, number, "lose") < fault.probability:
                    copies = 0
            elif isinstance(fault, DuplicateNotifications):
                if copies and draw(self.notification_seed, number, "duplicate") < fault.probability:
                    copies = 2
            else:
                delay = max(delay, fault.delay_s)
        what = {0: "dropped", 1: "made", 2: "duplicated"}[copies]
        detail = f"#{number} status {status} to {sub.notification_uri}"
        self._audit(now, what, sub.lfdi, sub.id, detail)
        if delay and copies:
            self._audit(now, "delayed", sub.lfdi, sub.id, f"#{number} by {delay:g} s")
        self.outbox.append(
            OutgoingNotification(
                number=number,
                subscription=sub.id,
                device=sub.device,
                uri=sub.notification_uri,
                status=status,
                subscribed_resource=sub.subscribed_resource,
                body=body,
                made_at=now,
                not_before=now + delay,
                copies=copies,
            )
        )

    def take_outbox(self) -> list[OutgoingNotification]:
        """The notifications made since the last call (the notifier sends them)."""
        taken, self.outbox = self.outbox, []
        return taken


def _resource(document: bytes) -> msgspec.Struct | None:
    try:
        return decode_any(document)
    except Sep2DecodeError:  # pragma: no cover - the server decodes what it rendered
        return None


def _subscription_problem(sub: r.Subscription, limit_max: int) -> str:
    """Why the server refuses ``sub``'s terms (empty: it accepts them)."""
    if sub.Condition is not None:
        return (
            "/Subscription/Condition: conditional subscriptions are not supported "
            "(the resource is subscribable 1, non-conditional)"
        )
    if sub.encoding != 0:
        return f"/Subscription/encoding: {sub.encoding} is not served (0, application/sep+xml)"
    if sub.level != _LEVEL:
        return f"/Subscription/level: {sub.level!r} is not served ({_LEVEL!r})"
    if sub.limit > limit_max:
        return f"/Subscription/limit: {sub.limit} is more than this server sends ({limit_max})"
    uri = urlsplit(sub.notificationURI)
    try:
        port = uri.port
    except ValueError:
        port = -1
    if (
        uri.scheme != "https"
        or not uri.hostname
        or uri.username is not None
        or uri.fragment
        or port == -1
    ):
        return (
            f"/Subscription/notificationURI: {sub.notificationURI!r} is not an absolute https "
            "URI with a host (and no user or fragment)"
        )
    return ""
