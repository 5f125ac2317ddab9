"""The ``[expect]`` section of a scenario: the outcomes PROTOCOL.md demands, checked after a world
has run by :func:`sep2gw.expect.check_expectations` (issue 8, scope 2).

Every key is optional; an expectation not written is not checked. Times (``at_s``, ``from_s``,
``to_s``) are offsets from the scenario start on the utility's clock. Unknown keys are errors
(``expect.limits[0].opModExpLimitW: unknown key (misspelt?)``), as everywhere in a scenario.

``responses = { A1 = [1, 2, 3], B1 = [] }``
    Per mRID (hex, compared as a number) the Response statuses the server *accepted* (201), in
    order; ``[]``: never answered (§4 rules 2-9, 14, 16).

``price_responses = { 71 = [1, 2, 3] }`` and ``[[expect.prices]]`` with ``at_s`` and ``price`` (or
    ``none = true``): per price interval mRID, the PriceResponse statuses the server accepted in
    order; and the price the log recorded in force at that offset (the last
    ``pricing.price_in_force`` record at or before it: its first block's price).

``[[expect.response_times]]`` with ``mrid``, ``status``, ``at_s`` (``tolerance_s``, default 1): the
    server accepted that status for that mRID within ``[at_s, at_s + tolerance_s]`` (activation at
    the effective start, rule 6; 7 at the superseding event's start, rule 7; 3 at the end, rule 9).

``[[expect.adjacent]]`` with ``first`` and ``then`` (mRIDs): ``then``'s effective start, as the log
    last scheduled it, is ``first``'s effective end (§4 rule 5: no randomisation gap).

``[[expect.limits]]`` with ``at_s`` and mode keys in schema spelling
    What the controls actor decided was in force at that offset (the last ``control.limits_in_force``
    record at or before it): a number (W, or percent for ``opModMaxLimW``/``opModFixedW``), a
    boolean (``opModConnect``/``opModEnergize``), or ``"none"`` for "no limit in this mode".

``[expect.telemetry]`` (§2 step 8), over the MirrorReadingSets the server accepted:
    ``min_reading_posts``: each mirror got at least this many distinct intervals;
    ``every_interval_once``: per mirror and reading no interval twice and none skipped between the
    first and the last; ``minute_aligned``: every interval starts on a whole minute;
    ``post_intervals = [{ from_s, interval_s }]``: intervals starting at or after ``from_s`` last
    ``interval_s`` (the EndDevice's postRate wins); ``covered_from_s``/``covered_to_s``: every
    interval starting in that window reached the server (an outage's backlog);
    ``min_mirrors_created``: MirrorUsagePoint POSTs accepted (re-created when the server lost them).

``[[expect.requests]]`` with ``method``, ``path`` (regular expression, full match, no query),
    optional ``status``, ``from_s``, ``to_s``, ``min_count``, ``max_count``: how many such requests
    the server saw in the window (registration POSTs, PUTs, Response retries, silence after a halt).

``[[expect.poll_intervals]]`` with ``path`` (regular expression), ``from_s``, ``to_s``, ``min_s``,
    ``max_s``: every gap between consecutive GETs of one matching path inside the window lies in
    ``[min_s, max_s]`` (§4 rule 15: neither over- nor under-polling).

``[[expect.ramps]]`` with ``mode``, ``to`` and ``duration_s`` (``tolerance_s``, default 1): a ramp
    towards ``to`` lasting ``duration_s`` was planned by the controls core (§4 rule 11); with
    ``on = "device"``, the ramp the hardware actor started on the device from the measured output
    (``hardware.ramp_started.v1``) lasted that long.

``[[expect.der_settings]]`` with ``at_s`` and ``fields = { setGradW = 500 }``: scalar fields of the
    last DERSettings the server accepted at or before that offset (§4 rule 10, §2 step 7).

``[[expect.der_status_fields]]`` with ``from_s``, ``to_s`` and ``fields = { operationalModeStatus = 1 }``:
    the server accepted a DERStatus PUT inside the window whose fields have those values (the
    status's ``value``: genConnectStatus/storConnectStatus bitmaps, operationalModeStatus,
    inverterStatus, stateOfChargeStatus in hundredths of a percent, alarmStatus) — §2 step 7:
    DERStatus follows the device, promptly.
``[[expect.der_status]]`` with ``at_s``, ``within_s`` (default 5) and any of ``connected``,
    ``available``, ``operating``, ``fault`` (``genConnectStatus`` bits 0, 1, 2, 4) and
    ``operational_mode`` (``operationalModeStatus``): the server accepted, within
    ``[at_s, at_s + within_s]``, a DERStatus reporting all of them (§2 step 7: DERStatus follows
    the device promptly, whatever caused the change).

``[[expect.compliance]]`` with ``mode`` (``opModExpLimW``, ``opModImpLimW``, ``opModGenLimW`` or
    ``opModLoadLimW``), optional ``from_s``, ``to_s``, ``tolerance_w`` (default 50), ``grace_s``
    (default 0), ``max_seconds_over`` (default 0) and ``min_seconds_binding`` (default 0): judged by
    the forensic compliance series (:mod:`sep2gw.forensics.compliance`, what ``sep2gw report``
    prints), the measured power stayed within the limit in force (seconds over at most
    ``max_seconds_over``), and it ran within ``tolerance_w`` of that limit for at least
    ``min_seconds_binding`` seconds, so the limit is shown to have mattered (§5: limits are met at
    the connection point by closing the loop on the site meter).

``[[expect.storage]]`` with ``from_s``, ``to_s``, ``der_w`` and optional ``tolerance_w`` (default
    150), ``grace_s`` (default 10) and ``max_seconds_off`` (default 0): CSIP-AUS v1.3 storage, the
    battery follows the storage target in force within its limits: after ``grace_s`` into the
    window, the DER's measured power (positive = discharge) stays within ``tolerance_w`` of
    ``der_w``, what the target comes to on this battery (the target itself; the rate a binding
    export limit leaves; 0 W once the battery is full or empty). At least one sample must fall in
    the window.

``halted = true``: a ``registration.halted`` record exists and the server saw no request after it
    (§2 step 4, PIN mismatch); ``false``: no halt was recorded.

``[expect.audit]``: the audits a strict CSIP-AUS test server runs over the client's traffic
    (:mod:`sep2gw.simserver.audit`), each enabled by its table (``{}``: its defaults), each
    finding a violation ``audit.<name>``: ``poll_cadence = { from_s, to_s, slack_s (1),
    late_factor (1.5) }`` every depended-on resource re-read at its advertised pollRate;
    ``der_info = {}`` every DER information PUT complete from the first; ``duplicate_puts = {}``
    no unchanged DER information PUT again within a cycle; ``reading_lateness = { grace_s (10) }``
    each interval posted in the first cycle after it closes; ``curtailment = { tolerance_s (10),
    tolerance_w (100) }`` a lower export/generation limit reached within the time its rampTms or
    the declared setGradW implies.

``log_events = ["control.server_fault.v1"]`` / ``no_log_events = [...]``: record types that must
    (must not) appear in the log (faults, gaps, ignored controls).

``[expect.notifications]`` (issue 19 point 3), over the server's subscription audit and its
    notifier's attempts (:mod:`sep2gw.simserver.notification_audit`): ``min_accepted``,
    ``min_delivered``, ``min_dropped``, ``min_duplicated``, ``max_refused``, and
    ``resubscribed_within_s`` (after each ``forget_subscriptions``/``cancel_subscriptions``, a
    subscription accepted again within that many seconds).
"""

from __future__ import annotations

import math
import re
from typing import Final, Literal

import msgspec

from transport.sep2.versions import CSIPAUS_VERSIONS, Learned

__all__ = [
    "LIMIT_MODES",
    "COMPLIANCE_MODES",
    "Adjacent",
    "AuditExpect",
    "ComplianceExpect",
    "DER_STATUS_FIELDS",
    "DerSettingsAt",
    "DerStatusIn",
    "DerStatusAt",
    "Expect",
    "LimitAt",
    "NotificationsExpect",
    "PollIntervals",
    "PostInterval",
    "RampExpect",
    "RequestCount",
    "ResponseAt",
    "StorageExpect",
    "TelemetryExpect",
    "check_expect",
]

_HEX = re.compile(r"[0-9A-Fa-f]{1,32}")

#: Scenario (schema) mode names → ``ControlSettings`` field names.
LIMIT_MODES: dict[str, str] = {
    "opModConnect": "connect",
    "opModEnergize": "energize",
    "opModExpLimW": "export_limit_w",
    "opModImpLimW": "import_limit_w",
    "opModGenLimW": "generation_limit_w",
    "opModLoadLimW": "load_limit_w",
    "opModTargetW": "target_w",
    "opModStorageTargetW": "storage_target_w",
    "opModMaxLimW": "max_limit_pct",
    "opModFixedW": "fixed_w_pct",
}

_None = Literal["none"]


class _Strict(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Unknown keys are errors: a misspelt expectation silently unchecked would make a scenario lie."""


class LimitAt(_Strict, frozen=True, kw_only=True):
    at_s: float
    opModConnect: bool | _None | None = None
    opModEnergize: bool | _None | None = None
    opModExpLimW: float | _None | None = None
    opModImpLimW: float | _None | None = None
    opModGenLimW: float | _None | None = None
    opModLoadLimW: float | _None | None = None
    opModTargetW: float | _None | None = None
    opModStorageTargetW: float | _None | None = None
    opModMaxLimW: float | _None | None = None
    opModFixedW: float | _None | None = None

    def expected(self) -> dict[str, float | bool | None]:
        """Schema mode name → the value expected (``None``: no limit in that mode)."""
        out: dict[str, float | bool | None] = {}
        for name in LIMIT_MODES:
            value = getattr(self, name)
            if value is not None:
                out[name] = None if value == "none" else value
        return out


class PostInterval(_Strict, frozen=True, kw_only=True):
    from_s: float
    interval_s: int


class TelemetryExpect(_Strict, frozen=True, kw_only=True):
    min_reading_posts: int | None = None
    every_interval_once: bool = False
    minute_aligned: bool = False
    post_intervals: list[PostInterval] = []
    covered_from_s: float | None = None
    covered_to_s: float | None = None
    min_mirrors_created: int | None = None


class RequestCount(_Strict, frozen=True, kw_only=True):
    method: str
    path: str
    status: int | None = None
    from_s: float = 0.0
    to_s: float | None = None
    min_count: int = 0
    max_count: int | None = None


class PollIntervals(_Strict, frozen=True, kw_only=True):
    path: str
    from_s: float = 0.0
    to_s: float | None = None
    min_s: float = 0.0
    max_s: float | None = None


class RampExpect(_Strict, frozen=True, kw_only=True):
    mode: str
    to: float
    duration_s: float
    tolerance_s: float = 1.0
    on: Literal["plan", "device"] = "plan"


class DerSettingsAt(_Strict, frozen=True, kw_only=True):
    at_s: float
    fields: dict[str, int | float | bool]


#: The DERStatus fields a ``der_status`` expectation can name (schema spelling).
DER_STATUS_FIELDS: frozenset[str] = frozenset(
    {
        "genConnectStatus",
        "storConnectStatus",
        "operationalModeStatus",
        "inverterStatus",
        "stateOfChargeStatus",
        "alarmStatus",
    }
)


class DerStatusIn(_Strict, frozen=True, kw_only=True):
    from_s: float
    to_s: float
    fields: dict[str, int]


class DerStatusAt(_Strict, frozen=True, kw_only=True):
    at_s: float
    within_s: float = 5.0
    connected: bool | None = None
    available: bool | None = None
    operating: bool | None = None
    fault: bool | None = None
    operational_mode: int | None = None

    def bits(self) -> dict[str, tuple[int, bool]]:
        """``genConnectStatus`` bits named here: name → (bit, wanted)."""
        named = {"connected": 0, "available": 1, "operating": 2, "fault": 4}
        return {
            name: (bit, wanted)
            for name, bit in named.items()
            if (wanted := getattr(self, name)) is not None
        }


class ResponseAt(_Strict, frozen=True, kw_only=True):
    mrid: str
    status: int
    at_s: float
    tolerance_s: float = 1.0


class Adjacent(_Strict, frozen=True, kw_only=True):
    first: str
    then: str


#: The modes a compliance expectation can judge (schema spelling), measured at the meter or DER.
COMPLIANCE_MODES: tuple[str, ...] = (
    "opModExpLimW",
    "opModImpLimW",
    "opModGenLimW",
    "opModLoadLimW",
)


class ComplianceExpect(_Strict, frozen=True, kw_only=True):
    mode: str
    from_s: float = 0.0
    to_s: float | None = None
    tolerance_w: float = 50.0
    grace_s: float = 0.0
    max_seconds_over: float = 0.0
    min_seconds_binding: float = 0.0


class StorageExpect(_Strict, frozen=True, kw_only=True):
    from_s: float
    to_s: float
    der_w: float
    tolerance_w: float = 150.0
    grace_s: float = 10.0
    max_seconds_off: float = 0.0


class PollCadenceAudit(_Strict, frozen=True, kw_only=True):
    from_s: float = 0.0
    to_s: float | None = None
    slack_s: float = 1.0
    late_factor: float = 1.5


class DerInfoAudit(_Strict, frozen=True, kw_only=True):
    """No options: every DER information PUT is judged."""


class DuplicatePutsAudit(_Strict, frozen=True, kw_only=True):
    slack_s: float = 1.0


class ReadingLatenessAudit(_Strict, frozen=True, kw_only=True):
    grace_s: float = 10.0


class CurtailmentAudit(_Strict, frozen=True, kw_only=True):
    tolerance_s: float = 10.0
    tolerance_w: float = 100.0


class AuditExpect(_Strict, frozen=True, kw_only=True):
    """Which server-side audits run (``sep2gw.simserver.audit``); a table enables one."""

    poll_cadence: PollCadenceAudit | None = None
    der_info: DerInfoAudit | None = None
    duplicate_puts: DuplicatePutsAudit | None = None
    reading_lateness: ReadingLatenessAudit | None = None
    curtailment: CurtailmentAudit | None = None


_VERSION_NAMES: Final = tuple(v.name for v in CSIPAUS_VERSIONS)
_LEARNED: Final = tuple(m.value for m in Learned)
_FAULT_KINDS: Final = ("unknown-namespace", "not-allowed", "mixed")


class CsipAusExpect(_Strict, frozen=True, kw_only=True):
    """Issue 18 point 2: the CSIP-AUS version the gateway ends up speaking (``version``: ``v1.2``,
    ``v1.3-beta/storage``, ``v1.3``), how it was last learned (``learned``: ``well-known``,
    ``namespaces``, ``configured``), and a regular expression a recorded discovery fallback
    must match (``fallback``; empty: discovery must not have fallen back). Every request body
    being in that version's namespace is the strict server's check."""

    version: str
    learned: str
    fallback: str = ""
    faults: list[str] = []


class PriceAt(_Strict, frozen=True, kw_only=True):
    """The price the log recorded in force at ``at_s`` (the first block's, of the one rate), or
    ``none = true`` for no interval in force."""

    at_s: float
    price: int | None = None
    none: bool = False
    #: Which tariff's rate (its ``id``); optional when the scenario has one tariff.
    tariff: str | None = None


class NotificationsExpect(_Strict, frozen=True, kw_only=True):
    """What the server's subscription audit must show (``sep2gw.simserver.notification_audit``):
    at least ``min_accepted`` subscriptions accepted, notifications ``min_delivered`` delivered
    (each copy), ``min_dropped`` dropped and ``min_duplicated`` duplicated by the fault windows,
    at most ``max_refused`` subscription requests refused; and after each
    ``forget_subscriptions`` / ``cancel_subscriptions`` a subscription accepted again within
    ``resubscribed_within_s``."""

    min_accepted: int = 0
    min_delivered: int = 0
    min_dropped: int = 0
    min_duplicated: int = 0
    max_refused: int | None = None
    resubscribed_within_s: float | None = None


class Expect(_Strict, frozen=True, kw_only=True):
    responses: dict[str, list[int]] = {}
    price_responses: dict[str, list[int]] = {}
    prices: list[PriceAt] = []
    response_times: list[ResponseAt] = []
    adjacent: list[Adjacent] = []
    limits: list[LimitAt] = []
    telemetry: TelemetryExpect | None = None
    requests: list[RequestCount] = []
    poll_intervals: list[PollIntervals] = []
    ramps: list[RampExpect] = []
    der_settings: list[DerSettingsAt] = []
    der_status_fields: list[DerStatusIn] = []
    der_status: list[DerStatusAt] = []
    compliance: list[ComplianceExpect] = []
    storage: list[StorageExpect] = []
    halted: bool | None = None
    log_events: list[str] = []
    no_log_events: list[str] = []
    audit: AuditExpect | None = None
    csipaus: CsipAusExpect | None = None
    notifications: NotificationsExpect | None = None


def _mrid(key: str, text: str, created: set[int], problems: list[str]) -> None:
    if not _HEX.fullmatch(text):
        problems.append(f"{key}: {text!r} is not an mRID (1 to 32 hex digits)")
    elif int(text, 16) not in created:
        problems.append(f"{key}: no create_control action creates {text}")


def _regex(key: str, text: str, problems: list[str]) -> None:
    try:
        re.compile(text)
    except re.error as exc:
        problems.append(f"{key}: {text!r} is not a regular expression ({exc})")


def _window(key: str, from_s: float, to_s: float | None, problems: list[str]) -> None:
    if from_s < 0:
        problems.append(f"{key}.from_s: must not be negative, got {from_s:g}")
    if to_s is not None and to_s <= from_s:
        problems.append(f"{key}.to_s: {to_s:g} is not after from_s {from_s:g}")


def check_expect(
    expect: Expect, created_mrids: set[int], known_event_types: frozenset[str]
) -> list[str]:
    """Ranges and cross-references of an ``[expect]`` section; every problem names its key."""
    problems: list[str] = []
    for mrid, statuses in expect.responses.items():
        key = f"expect.responses.{mrid}"
        if not _HEX.fullmatch(mrid):
            problems.append(f"{key}: {mrid!r} is not an mRID (1 to 32 hex digits)")
        elif int(mrid, 16) not in created_mrids:
            problems.append(f"{key}: no create_control action creates {mrid}")
        for j, status in enumerate(statuses):
            if not 0 <= status <= 255:
                problems.append(f"{key}[{j}]: {status} is not a Response status (0..255)")
    for mrid, statuses in expect.price_responses.items():
        key = f"expect.price_responses.{mrid}"
        if not _HEX.fullmatch(mrid):
            problems.append(f"{key}: {mrid!r} is not an mRID (1 to 32 hex digits)")
        elif int(mrid, 16) not in created_mrids:
            problems.append(f"{key}: no create_price_interval action creates {mrid}")
        for j, status in enumerate(statuses):
            if not 0 <= status <= 255:
                problems.append(f"{key}[{j}]: {status} is not a Response status (0..255)")
    for i, price_at in enumerate(expect.prices):
        key = f"expect.prices[{i}]"
        if price_at.at_s < 0:
            problems.append(f"{key}.at_s: must not be negative, got {price_at.at_s:g}")
        if (price_at.price is None) != price_at.none:
            problems.append(f"{key}: give either price or none = true")
    for i, timed in enumerate(expect.response_times):
        key = f"expect.response_times[{i}]"
        _mrid(f"{key}.mrid", timed.mrid, created_mrids, problems)
        if not 0 <= timed.status <= 255:
            problems.append(f"{key}.status: {timed.status} is not a Response status (0..255)")
        if timed.tolerance_s < 0:
            problems.append(f"{key}.tolerance_s: must not be negative, got {timed.tolerance_s:g}")
    for i, pair in enumerate(expect.adjacent):
        _mrid(f"expect.adjacent[{i}].first", pair.first, created_mrids, problems)
        _mrid(f"expect.adjacent[{i}].then", pair.then, created_mrids, problems)
    for i, limit in enumerate(expect.limits):
        key = f"expect.limits[{i}]"
        if limit.at_s < 0:
            problems.append(f"{key}.at_s: must not be negative, got {limit.at_s:g}")
        if not limit.expected():
            problems.append(f"{key}: names no mode to check")
    telemetry = expect.telemetry
    if telemetry is not None:
        for name in ("min_reading_posts", "min_mirrors_created"):
            value = getattr(telemetry, name)
            if value is not None and value < 0:
                problems.append(f"expect.telemetry.{name}: must not be negative, got {value}")
        for j, period in enumerate(telemetry.post_intervals):
            if period.interval_s <= 0:
                problems.append(
                    f"expect.telemetry.post_intervals[{j}].interval_s: must be positive, "
                    f"got {period.interval_s}"
                )
        if (telemetry.covered_from_s is None) != (telemetry.covered_to_s is None):
            problems.append(
                "expect.telemetry.covered_to_s: covered_from_s and covered_to_s go together"
            )
        elif telemetry.covered_from_s is not None and telemetry.covered_to_s is not None:
            _window(
                "expect.telemetry.covered",
                telemetry.covered_from_s,
                telemetry.covered_to_s,
                problems,
            )
    if expect.notifications is not None:
        notified = expect.notifications
        for name in ("min_accepted", "min_delivered", "min_dropped", "min_duplicated"):
            if getattr(notified, name) < 0:
                problems.append(f"expect.notifications.{name}: must not be negative")
        if notified.max_refused is not None and notified.max_refused < 0:
            problems.append("expect.notifications.max_refused: must not be negative")
        if notified.resubscribed_within_s is not None and not notified.resubscribed_within_s > 0:
            problems.append("expect.notifications.resubscribed_within_s: must be positive")
    if expect.csipaus is not None:
        csipaus = expect.csipaus
        if csipaus.version not in _VERSION_NAMES:
            problems.append(
                f"expect.csipaus.version: {csipaus.version!r} is not one of "
                f"{', '.join(_VERSION_NAMES)}"
            )
        if csipaus.learned not in _LEARNED:
            problems.append(
                f"expect.csipaus.learned: {csipaus.learned!r} is not one of {', '.join(_LEARNED)}"
            )
        _regex("expect.csipaus.fallback", csipaus.fallback, problems)
        for j, kind in enumerate(csipaus.faults):
            if kind not in _FAULT_KINDS:
                problems.append(
                    f"expect.csipaus.faults[{j}]: {kind!r} is not one of {', '.join(_FAULT_KINDS)}"
                )
    for i, request in enumerate(expect.requests):
        key = f"expect.requests[{i}]"
        if request.method not in ("GET", "HEAD", "POST", "PUT", "DELETE"):
            problems.append(f"{key}.method: {request.method!r} is not an HTTP method")
        _regex(f"{key}.path", request.path, problems)
        _window(key, request.from_s, request.to_s, problems)
        if request.max_count is not None and request.max_count < request.min_count:
            problems.append(f"{key}.max_count: {request.max_count} is below min_count")
    for i, polls in enumerate(expect.poll_intervals):
        key = f"expect.poll_intervals[{i}]"
        _regex(f"{key}.path", polls.path, problems)
        _window(key, polls.from_s, polls.to_s, problems)
        if polls.max_s is not None and polls.max_s < polls.min_s:
            problems.append(f"{key}.max_s: {polls.max_s:g} is below min_s {polls.min_s:g}")
    for i, ramp in enumerate(expect.ramps):
        if ramp.mode not in LIMIT_MODES:
            problems.append(
                f"expect.ramps[{i}].mode: {ramp.mode!r} is not one of {list(LIMIT_MODES)}"
            )
    for i, settings in enumerate(expect.der_settings):
        if not settings.fields:
            problems.append(f"expect.der_settings[{i}].fields: names no field to check")
    for i, status_at in enumerate(expect.der_status_fields):
        key = f"expect.der_status_fields[{i}]"
        _window(key, status_at.from_s, status_at.to_s, problems)
        if not status_at.fields:
            problems.append(f"{key}.fields: names no field to check")
        for name in sorted(set(status_at.fields) - DER_STATUS_FIELDS):
            problems.append(
                f"{key}.fields.{name}: not a DERStatus field (one of {sorted(DER_STATUS_FIELDS)})"
            )
    for i, reported in enumerate(expect.der_status):
        key = f"expect.der_status[{i}]"
        if not reported.bits() and reported.operational_mode is None:
            problems.append(f"{key}: names no status to check")
        if reported.at_s < 0 or not 0 <= reported.within_s < float("inf"):
            problems.append(f"{key}: at_s and within_s must be finite and not negative")
        if reported.operational_mode is not None and not 0 <= reported.operational_mode <= 255:
            problems.append(
                f"{key}.operational_mode: {reported.operational_mode} is not an "
                "operationalModeStatus (0..255)"
            )
    for i, spec in enumerate(expect.compliance):
        key = f"expect.compliance[{i}]"
        if spec.mode not in COMPLIANCE_MODES:
            problems.append(f"{key}.mode: {spec.mode!r} is not one of {list(COMPLIANCE_MODES)}")
        _window(key, spec.from_s, spec.to_s, problems)
        for name in ("tolerance_w", "grace_s", "max_seconds_over", "min_seconds_binding"):
            value = getattr(spec, name)
            if not value >= 0 or value == float("inf"):
                problems.append(f"{key}.{name}: must be a finite number >= 0, got {value:g}")
    for i, storage in enumerate(expect.storage):
        key = f"expect.storage[{i}]"
        _window(key, storage.from_s, storage.to_s, problems)
        if not math.isfinite(storage.der_w):
            problems.append(f"{key}.der_w: must be a finite number, got {storage.der_w:g}")
        for name in ("tolerance_w", "grace_s", "max_seconds_off"):
            value = getattr(storage, name)
            if not value >= 0 or value == float("inf"):
                problems.append(f"{key}.{name}: must be a finite number >= 0, got {value:g}")
        if storage.grace_s >= storage.to_s - storage.from_s:
            problems.append(f"{key}.grace_s: {storage.grace_s:g} s leaves nothing of the window")
    if expect.audit is not None:
        _check_audit(expect.audit, problems)
    for i, name in enumerate(expect.log_events):
        if name not in known_event_types:
            problems.append(f"expect.log_events[{i}]: {name!r} is not a record type of the log")
    for i, name in enumerate(expect.no_log_events):
        if name not in known_event_types:
            problems.append(f"expect.no_log_events[{i}]: {name!r} is not a record type of the log")
    return problems


def _check_audit(audit: AuditExpect, problems: list[str]) -> None:
    """Ranges of ``[expect.audit]``: every number finite and not negative, windows in order."""
    for name in audit.__struct_fields__:
        spec = getattr(audit, name)
        if spec is None:
            continue
        for option in spec.__struct_fields__:
            value = getattr(spec, option)
            if value is not None and (not value >= 0 or value == float("inf")):
                problems.append(
                    f"expect.audit.{name}.{option}: must be a finite number >= 0, got {value:g}"
                )
    cadence = audit.poll_cadence
    if cadence is not None:
        _window("expect.audit.poll_cadence", cadence.from_s, cadence.to_s, problems)
        if cadence.late_factor < 1:
            problems.append(
                "expect.audit.poll_cadence.late_factor: a poll is late only after its pollRate "
                f"has passed (>= 1), got {cadence.late_factor:g}"
            )
