"""Several DER at one site (issue 19 point 2): which server DER each configured DER is reported as,
and each DER's own state beside the site's.

A single-DER site writes none of these (its log is what it always was); a site that lists several
DER (``[[ders]]``) writes:

- ``der.list_matched.v1`` when the EndDevice's DERList is matched against the configured DER and
  the match differs from the last one recorded (a configured DER with no server DER, or a server
  DER with no configured one, is a finding, never a crash: it is named here);
- ``der.member_status.v1`` when whether a DER takes part in the site's split changes, or what it
  reports of its connection and state (the evidence behind its DERStatus and behind "the other
  DER carried the limit");
- ``der.member_sampled.v1`` per DER per sample (detail: its output, state of charge, stored
  energy), beside the site's ``hardware.telemetry.v1``;
- ``der.reading_posted.v1`` per interval posted at a DER's own MirrorUsagePoint.
"""

from __future__ import annotations

import msgspec

from events.base import Event
from events.telemetry import OperatingState, Quantity

__all__ = [
    "DER_EVENT_TYPES",
    "DerListMatched",
    "DerMatch",
    "DerMemberSampled",
    "DerMemberStatus",
    "DerReadingPosted",
]


class DerMatch(msgspec.Struct, frozen=True, kw_only=True):
    """A configured DER (``der``: its name) reported as the server's DER at ``href``; ``by``
    says how it was matched: ``href`` (the configuration names it) or ``order``."""

    der: str
    href: str
    by: str


class DerListMatched(Event, frozen=True, kw_only=True, tag="der.list_matched.v1"):
    """The DERList at ``list_href`` matched against the configured DER. ``unmatched_ders``:
    configured DER the list has no DER for (their information and status are not reported);
    ``unmatched_hrefs``: the list's DER no configured DER is reported as (left alone);
    ``finding``: what an operator should know, empty when every DER matched."""

    at_s: float
    list_href: str
    matches: tuple[DerMatch, ...]
    unmatched_ders: tuple[str, ...] = ()
    unmatched_hrefs: tuple[str, ...] = ()
    finding: str = ""


class DerMemberStatus(Event, frozen=True, kw_only=True, tag="der.member_status.v1"):
    """One DER of the site: ``available`` (it takes part in the site's split) and why not
    (``reason``), ``reachable`` (its last read or write answered), and what it last reported of
    its connection and state (``None``: not reported)."""

    at_s: float
    der: str
    available: bool
    reachable: bool
    reason: str = ""
    connected: bool | None = None
    state: OperatingState | None = None


class DerMemberSampled(
    Event, frozen=True, kw_only=True, tag="der.member_sampled.v1", omit_defaults=True
):
    """One DER's reading at a sample of the site (positive ``der_w`` = injecting)."""

    at_s: float
    der: str
    der_w: float | None = None
    der_var: float | None = None
    soc_pct: float | None = None
    stored_wh: float | None = None


class DerReadingPosted(Event, frozen=True, kw_only=True, tag="der.reading_posted.v1"):
    """The average of ``quantity`` of DER ``der`` over ``[start_s, start_s + interval_s)`` was
    accepted at that DER's own MirrorUsagePoint (or refused for good with a 4xx: ``refused``);
    the site's and the site-wide DER readings stay ``mirror.reading_posted.v1``."""

    der: str
    quantity: Quantity
    start_s: int
    interval_s: int
    at_s: float
    refused: bool = False


DER_EVENT_TYPES: tuple[type[Event], ...] = (
    DerListMatched,
    DerMemberStatus,
    DerMemberSampled,
    DerReadingPosted,
)
