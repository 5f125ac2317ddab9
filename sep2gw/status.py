"""What a running gateway is doing, as the log says it: one fold shared by ``sep2gw status``, the
metrics and health endpoint and the embedding API's ``Gateway.state_changes()`` (issue 20 point 2).

The status is a pure fold over records (``evolve(status, record) -> status``): the live gateway
folds each record as it is committed, ``sep2gw status LOG`` folds the file, so the two say the same
thing about the same log and nothing is shown that the log does not hold. Each "last …" field keeps
the ``seq`` of the record it comes from, for ``sep2gw log tail``/``explain`` and SQL.

What it does *not* know from the log alone — whether a process holds the log now — is the writer
lock's (``events.log_lock.holder_of``), read by the command beside the fold.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal

import msgspec

from events.control_events import CommsLost, CommsRestored, LimitsInForceChanged
from events.der_events import DerMemberStatus
from events.der_model import ControlSettings
from events.envelope import Recorded
from events.hardware_events import (
    AlarmsChanged,
    Clamp,
    DeviceStatusChanged,
    DeviceUnreachable,
    LimitsApplied,
    TelemetrySampled,
)
from events.log_events import LogShed, LogShort, PreviousLogSetAside
from events.pricing_events import PriceBlock, PriceInForce, RateDetails, RateSeen, price_per_kwh
from events.registration_events import (
    Polled,
    Posted,
    RegistrationHalted,
    RegistrationStarted,
    RegistrationStep,
    StepDone,
)
from events.registry import every_version
from events.runtime_events import ActorFailed, GatewayStarted, GatewayStopped
from events.store import EventStore
from events.subscription_events import (
    NotificationReceived,
    SubscriptionAccepted,
    SubscriptionEnded,
    SubscriptionLost,
    SubscriptionRefused,
)
from events.times import not_a_date, utc_datetime

__all__ = [
    "STATUS_TAGS",
    "BatteryWrite",
    "DerNow",
    "Measured",
    "Stamped",
    "SiteStatus",
    "evolve",
    "fold",
    "health",
    "problems",
    "status_of_store",
]

Registration = Literal["not started", "in progress", "registered", "halted"]
Comms = Literal["unknown", "up", "lost"]

#: The last registration step (PROTOCOL.md §2.8): once it is done the site is registered.
_LAST_STEP: Final = RegistrationStep.MIRROR


class Stamped(msgspec.Struct, frozen=True, kw_only=True):
    """Something that happened: what, when (server time) and the record that says so."""

    what: str
    at_s: float
    seq: int


class BatteryWrite(msgspec.Struct, frozen=True, kw_only=True):
    """The hardware actor's last application of the limits (``hardware.limits_applied``): what the
    DER could not take as asked (structured clamps, and an old log's unreadable clamp texts)."""

    at_s: float
    seq: int
    wrote: bool
    setpoint_w: float | None = None
    site_limit_met: bool | None = None
    clamps: tuple[Clamp, ...] = ()
    unparsed_clamps: tuple[str, ...] = ()


class Measured(msgspec.Struct, frozen=True, kw_only=True):
    """The newest telemetry sample (``hardware.telemetry.v1``)."""

    at_s: float
    seq: int
    site_w: float | None = None
    der_w: float | None = None
    soc_pct: float | None = None


class DerNow(msgspec.Struct, frozen=True, kw_only=True):
    """One DER of a site of several (``der.member_status.v1``): whether it takes its share of
    the site's limits, and since when; why not; what it reports."""

    available: bool
    since_s: float
    seq: int
    reason: str = ""
    state: str | None = None
    connected: bool | None = None


class PriceNow(msgspec.Struct, frozen=True, kw_only=True):
    """One rate's price in force (``pricing.price_in_force``), with what the rate is
    (``pricing.rate_seen``): per kWh in the tariff's currency when the rate measures Wh."""

    rate_mrid: str
    seq: int
    since_s: float
    interval_mrid: str | None = None
    tou_tier: int | None = None
    rate: RateDetails | None = None
    blocks: tuple[PriceBlock, ...] = ()

    @property
    def per_kwh(self) -> float | None:
        """The first block's price per kWh, or None (no interval, no price, not a Wh rate)."""
        if self.rate is None or not self.blocks or self.interval_mrid is None:
            return None
        return price_per_kwh(self.rate, self.blocks[0])


class SiteStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The gateway's state as of record ``seq`` of its log (see the module docstring)."""

    seq: int = 0
    at_s: float | None = None
    software_version: str | None = None
    started: Stamped | None = None
    stopped: Stamped | None = None
    registration: Registration = "not started"
    registration_step: str | None = None
    registration_halted: str | None = None
    comms: Comms = "unknown"
    comms_since_s: float | None = None
    comms_reason: str = ""
    limits: ControlSettings = ControlSettings()
    limit_sources: dict[str, str] = {}
    limits_since_s: float | None = None
    last_poll: Stamped | None = None
    last_post: Stamped | None = None
    last_write: BatteryWrite | None = None
    measured: Measured | None = None
    alarms: tuple[str, ...] = ()
    device_state: str | None = None
    device_connected: bool | None = None
    device_unreachable: Stamped | None = None
    log_short: str | None = None
    log_set_aside: str | None = None
    actor_failures: int = 0
    last_failure: Stamped | None = None
    gave_up: bool = False
    #: IEEE 2030.5 Pricing: the rates offered (by mRID) and each rate's price in force
    rates: dict[str, RateDetails] = {}
    prices: tuple[PriceNow, ...] = ()
    #: Issue 19 point 3: the resources subscribed to now, the last notification accepted and how
    #: many were refused
    subscriptions: tuple[str, ...] = ()
    last_notification: Stamped | None = None
    notifications_refused: int = 0
    #: A site of several DER (``[[ders]]``): each one by name (empty for a single DER).
    ders: dict[str, DerNow] = {}


_replace = msgspec.structs.replace


def evolve(status: SiteStatus, record: Recorded) -> SiteStatus:
    """``status`` after ``record``; records that say nothing about the status only advance ``seq``."""
    e = record.event
    seq, at = record.seq, record.server_time
    match e:
        case TelemetrySampled():
            return _replace(
                status,
                seq=seq,
                at_s=at,
                measured=Measured(
                    at_s=e.at_s, seq=seq, site_w=e.site_w, der_w=e.der_w, soc_pct=e.soc_pct
                ),
                device_unreachable=None,  # the device answered
            )
        case LimitsApplied():
            write = BatteryWrite(
                at_s=e.at_s,
                seq=seq,
                wrote=e.wrote,
                setpoint_w=e.setpoint_w,
                site_limit_met=e.site_limit_met,
                clamps=e.clamps,
                unparsed_clamps=e.unparsed_clamps,
            )
            return _replace(status, seq=seq, at_s=at, last_write=write, device_unreachable=None)
        case Polled():
            return _replace(
                status,
                seq=seq,
                at_s=at,
                last_poll=Stamped(what=e.resource, at_s=e.at_s, seq=seq),
                **_comms_seen(status, e.at_s),
            )
        case Posted():
            return _replace(
                status,
                seq=seq,
                at_s=at,
                last_post=Stamped(what=e.mirror, at_s=e.at_s, seq=seq),
                **_comms_seen(status, e.at_s),
            )
        case RateSeen():
            rates = dict(status.rates)
            rates[e.rate.rate_mrid] = e.rate
            prices = tuple(
                _replace(p, rate=e.rate) if p.rate_mrid == e.rate.rate_mrid else p
                for p in status.prices
            )
            return _replace(status, seq=seq, at_s=at, rates=rates, prices=prices)
        case SubscriptionAccepted():
            held = tuple(sorted({*status.subscriptions, e.resource}))
            return _replace(status, seq=seq, at_s=at, subscriptions=held)
        case SubscriptionRefused() | SubscriptionLost() | SubscriptionEnded():
            held = tuple(r for r in status.subscriptions if r != e.resource)
            return _replace(status, seq=seq, at_s=at, subscriptions=held)
        case NotificationReceived(http_status=201):
            stamp = Stamped(what=f"{e.resource} changed", at_s=e.at_s, seq=seq)
            return _replace(status, seq=seq, at_s=at, last_notification=stamp)
        case NotificationReceived():
            refused = status.notifications_refused + 1
            return _replace(status, seq=seq, at_s=at, notifications_refused=refused)
        case DerMemberStatus():
            last = status.ders.get(e.der)
            since = e.at_s if last is None or last.available != e.available else last.since_s
            der = DerNow(
                available=e.available,
                since_s=since,
                seq=seq,
                reason=e.reason,
                state=None if e.state is None else e.state.value,
                connected=e.connected,
            )
            return _replace(status, seq=seq, at_s=at, ders={**status.ders, e.der: der})
        case PriceInForce():
            now = PriceNow(
                rate_mrid=e.rate_mrid,
                seq=seq,
                since_s=e.at_s,
                interval_mrid=e.interval_mrid,
                tou_tier=e.tou_tier,
                rate=status.rates.get(e.rate_mrid),
                blocks=e.blocks,
            )
            others = tuple(p for p in status.prices if p.rate_mrid != e.rate_mrid)
            ordered = tuple(sorted((*others, now), key=lambda p: p.rate_mrid))
            return _replace(status, seq=seq, at_s=at, prices=ordered)
        case LimitsInForceChanged():
            return _replace(
                status,
                seq=seq,
                at_s=at,
                limits=e.settings,
                limit_sources={mode.value: source for mode, source in e.sources.items()},
                limits_since_s=e.at_s,
            )
        case GatewayStarted():
            # A new process: it rediscovers everything; what it did before is history.
            return _replace(
                status,
                seq=seq,
                at_s=at,
                software_version=e.software_version,
                started=Stamped(what=e.software_version, at_s=at, seq=seq),
                stopped=None,
                registration="not started",
                registration_step=None,
                registration_halted=None,
                comms="unknown",
                comms_since_s=None,
                comms_reason="",
                gave_up=False,
            )
        case GatewayStopped():
            return _replace(
                status, seq=seq, at_s=at, stopped=Stamped(what=e.reason, at_s=at, seq=seq)
            )
        case RegistrationStarted():
            return _replace(
                status,
                seq=seq,
                at_s=at,
                registration="in progress",
                registration_step=None,
                registration_halted=None,
            )
        case StepDone():
            done = e.step is _LAST_STEP or status.registration == "registered"
            return _replace(
                status,
                seq=seq,
                at_s=at,
                registration="registered" if done else "in progress",
                registration_step=e.step.value,
                **_comms_seen(status, e.at_s),
            )
        case RegistrationHalted():
            return _replace(
                status,
                seq=seq,
                at_s=at,
                registration="halted",
                registration_step=e.step.value,
                registration_halted=e.reason,
            )
        case CommsLost():
            return _replace(
                status, seq=seq, at_s=at, comms="lost", comms_since_s=e.at_s, comms_reason=e.reason
            )
        case CommsRestored():
            return _replace(
                status, seq=seq, at_s=at, comms="up", comms_since_s=e.at_s, comms_reason=""
            )
        case AlarmsChanged():
            return _replace(status, seq=seq, at_s=at, alarms=e.active)
        case DeviceStatusChanged():
            return _replace(
                status,
                seq=seq,
                at_s=at,
                device_state=None if e.state is None else e.state.value,
                device_connected=e.connected,
            )
        case DeviceUnreachable():
            return _replace(
                status,
                seq=seq,
                at_s=at,
                device_unreachable=Stamped(
                    what=f"{e.operation}: {e.error_type}: {e.error}", at_s=e.at_s, seq=seq
                ),
            )
        case LogShort():
            return _replace(status, seq=seq, at_s=at, log_short=e.why)
        case LogShed():
            return _replace(status, seq=seq, at_s=at, log_short=None)  # written when space is back
        case PreviousLogSetAside():
            return _replace(status, seq=seq, at_s=at, log_set_aside=f"{e.kept_as} ({e.finding})")
        case ActorFailed():
            return _replace(
                status,
                seq=seq,
                at_s=at,
                actor_failures=status.actor_failures + 1,
                last_failure=Stamped(
                    what=f"{e.actor}: {e.error_type}: {e.error}", at_s=at, seq=seq
                ),
                gave_up=e.gave_up,
            )
    return _replace(status, seq=seq, at_s=at)


def _comms_seen(status: SiteStatus, at_s: float) -> dict[str, object]:
    """A server exchange that succeeded says the link is up, unless comms loss was declared (only
    ``comms.restored.v1`` ends that: §4 rule 12 is the controls actor's decision, not ours)."""
    if status.comms == "unknown":
        return {"comms": "up", "comms_since_s": at_s}
    return {}


#: The tags the fold reads; a reader of a long log asks the store for these only.
STATUS_TAGS: Final = every_version(
    TelemetrySampled,
    LimitsApplied,
    Polled,
    Posted,
    LimitsInForceChanged,
    GatewayStarted,
    GatewayStopped,
    ActorFailed,
    RegistrationStarted,
    StepDone,
    RegistrationHalted,
    CommsLost,
    CommsRestored,
    AlarmsChanged,
    DeviceStatusChanged,
    DeviceUnreachable,
    LogShort,
    LogShed,
    PreviousLogSetAside,
    RateSeen,
    PriceInForce,
    SubscriptionAccepted,
    SubscriptionRefused,
    SubscriptionLost,
    SubscriptionEnded,
    NotificationReceived,
    DerMemberStatus,
)
#: Written every sample or every second: read only from the recent end of a long log.
_FREQUENT: Final = every_version(TelemetrySampled, LimitsApplied)
#: How far back from the log's newest record the frequent records are read.
_RECENT_S: Final = 3600.0


def fold(records: Iterable[Recorded], status: SiteStatus | None = None) -> SiteStatus:
    for record in records:
        status = evolve(status or SiteStatus(), record)
    return status or SiteStatus()


def status_of_store(store: EventStore) -> SiteStatus:
    """The status a log holds: every status record except the frequent ones, which are read from
    the newest hour only (a day's log holds ~10⁵ of them; the newest is what the status shows)."""
    head = store.head()
    if head.seq == 0:
        return SiteStatus()
    rare = sorted(STATUS_TAGS - _FREQUENT)
    newest = next(store.read(head.seq, head.seq))
    since = store.first_seq_since(newest.server_time - _RECENT_S)
    records = list(store.read(types=rare))
    records += store.read(since, types=sorted(_FREQUENT))
    records.sort(key=lambda r: r.seq)
    status = fold(records)
    # The log's end, whatever its type: how recent the status is.
    return _replace(status, seq=newest.seq, at_s=newest.server_time)


def problems(status: SiteStatus) -> list[str]:
    """What an operator must look at, worst first; empty when the gateway is doing its job."""
    found: list[str] = []
    if status.gave_up and status.last_failure is not None:
        found.append(f"gave up: {status.last_failure.what}")
    if status.registration == "halted":
        found.append(
            f"registration halted at {status.registration_step}: {status.registration_halted}"
        )
    if status.comms == "lost":
        found.append("comms lost" + (f": {status.comms_reason}" if status.comms_reason else ""))
    if status.device_unreachable is not None:
        found.append(f"battery unreachable ({status.device_unreachable.what})")
    if status.log_short is not None:
        found.append(f"event log short of space: {status.log_short}")
    found.extend(f"battery alarm: {alarm}" for alarm in status.alarms)
    found.extend(
        f"DER {name} left out of the site's split: {der.reason}"
        for name, der in status.ders.items()
        if not der.available
    )
    if status.log_set_aside is not None:
        found.append(f"the previous log did not verify, kept as {status.log_set_aside}")
    return found


def health(status: SiteStatus, *, now: float) -> tuple[bool, dict[str, object]]:
    """The ``/health`` document and whether it is healthy: registered, comms up, the battery
    reachable, no alarm (``problems``). A gateway still registering is not yet healthy."""
    found = problems(status)
    healthy = not found and status.registration == "registered"
    document: dict[str, object] = {
        "healthy": healthy,
        "problems": found,
        "registration": status.registration,
        "comms": status.comms,
        "limits_in_force": msgspec.to_builtins(status.limits),
        "last_poll_age_s": _age(status.last_poll, now),
        "last_post_age_s": _age(status.last_post, now),
        "last_battery_write_age_s": _age(status.last_write, now),
        "log_seq": status.seq,
        "software_version": status.software_version,
    }
    return healthy, document


def _age(stamp: Stamped | BatteryWrite | None, now: float) -> float | None:
    return None if stamp is None else round(now - stamp.at_s, 3)


def iso(t: float | None) -> str:
    """Server time as ISO-8601 UTC (``-`` when unknown)."""
    if t is None:
        return "-"
    utc = utc_datetime(t)
    return (
        not_a_date(t) if utc is None else utc.isoformat(timespec="seconds").replace("+00:00", "Z")
    )
