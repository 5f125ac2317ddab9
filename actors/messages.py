"""Messages between actors. They are in-process commands and reports, not log records: whatever
an actor decides because of one is recorded as an event by that actor."""

from __future__ import annotations

import msgspec

from actors.drivers.base import Nameplate, Telemetry
from events.control_events import CommsRestored, ResponseIntended
from events.der_model import Control, ControlSettings, DefaultControl, Mode, Program, ResponseStatus
from events.pricing_events import PricesInForce, RatePrice
from statemachines.ramps import Ramp

__all__ = [
    "ApplyLimits",
    "ControlsInput",
    "ControlsNews",
    "ControlsSeen",
    "DefaultSeen",
    "DerSnapshot",
    "MemberSnapshot",
    "DerStatusTarget",
    "DeviceStatus",
    "LinkState",
    "PricesInForce",
    "ProgramsSeen",
    "RatePrice",
    "ResponseOutcome",
    "SendResponse",
    "TariffLinks",
    "WriteOutcome",
]


class ProgramsSeen(msgspec.Struct, frozen=True, kw_only=True):
    """The DERPrograms our FunctionSetAssignments reference now (one full discovery or re-poll)."""

    programs: tuple[Program, ...]


class DefaultSeen(msgspec.Struct, frozen=True, kw_only=True):
    program_id: str
    default: DefaultControl | None


class ControlsSeen(msgspec.Struct, frozen=True, kw_only=True):
    """One complete poll of a program's DERControlList (every page). ``prompted_by``: the
    (record seq, server time) of the notification that made this poll due now (issue 19 point 3),
    None for a poll at its pollRate."""

    program_id: str
    controls: tuple[Control, ...]
    prompted_by: tuple[int, float] | None = None


class LinkState(msgspec.Struct, frozen=True, kw_only=True):
    online: bool
    #: Why the link went offline (``Link.last_failure``); empty when online.
    reason: str = ""


class ResponseOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What became of one Response POST: ``http_status`` None means a network failure."""

    mrid: str
    status: ResponseStatus
    acked: bool
    http_status: int | None
    #: The server's Retry-After (429/503), seconds: no Response is offered again before then.
    retry_after_s: float | None = None
    #: Why nothing was sent at all (``http_status`` is then None and there is no retry).
    undeliverable: str | None = None


class WriteOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """The device's verdict on the limits last applied; ``seq``: which :class:`ApplyLimits` (a
    verdict on limits older than the newest published is not the verdict the controls await)."""

    ok: bool
    detail: str = ""
    seq: int | None = None


ControlsInput = (
    ProgramsSeen | DefaultSeen | ControlsSeen | LinkState | ResponseOutcome | WriteOutcome
)


class ApplyLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Controls → hardware: the limits in force and the ramps towards them."""

    settings: ControlSettings
    ramps: dict[Mode, Ramp]
    at_s: float
    seq: int = 0


class SendResponse(msgspec.Struct, frozen=True, kw_only=True):
    """Controls → responder: POST this Response (already recorded as sent)."""

    response: ResponseIntended


class DeviceStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Hardware → DER status reporter (a latest-value mailbox): the device's last reading at
    ``at_s`` (``reachable`` False: the last read failed; ``telemetry`` is then the one before, if
    any) and the ``connect``/``energize`` of the control in force (``None``: not constrained), the
    fallback for what the device cannot report. ``control_seq``: the ``ApplyLimits.seq`` in force
    when the device was last sampled (the DERStatus after a control took effect)."""

    at_s: float
    telemetry: Telemetry | None
    reachable: bool = True
    connect: bool | None = None
    energize: bool | None = None
    control_seq: int | None = None


class DerStatusTarget(msgspec.Struct, frozen=True, kw_only=True):
    """Registration → DER status reporter: the DERStatus resource the walk found (PROTOCOL.md
    §2.7); each walk sends it again and the reporter then PUTs the whole status."""

    href: str


class DerSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """Hardware → registration and controls (a latest-value mailbox, read with ``peek``): what the
    DER last reported, for DERCapability/Settings/Availability and LogEvents (PROTOCOL.md §2.7,
    §2.9) and for setGradW's setMaxW (§4 rule 11). Put once the nameplate is read, and again at
    every change of what it holds (nothing before the nameplate)."""

    nameplate: Nameplate
    modes: frozenset[Mode]
    telemetry: Telemetry | None = None
    #: A site of several DER (``actors.drivers.composite``): each DER's own, in configuration
    #: order, for its own DERCapability/Settings/Availability (empty for a single DER).
    members: tuple[MemberSnapshot, ...] = ()
    #: What the DER is (``ders[].role``): its DERCapability's DERType (storage unless ``pv``).
    role: str = "battery"


class MemberSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """One DER of a site of several, as :class:`DerSnapshot` holds it (``nameplate`` ``None``:
    not read yet)."""

    der: str
    nameplate: Nameplate | None
    telemetry: Telemetry | None = None
    role: str = "battery"


class ControlsNews(msgspec.Struct, frozen=True, kw_only=True):
    """Controls → registration, in a latest-value mailbox: what the controls actor made durable that
    the registration actor acts on. ``comms_restored``: the link is back; the registration actor
    folds it into its poll schedule as a replay of the log does, so every resource is due at once
    (PROTOCOL.md §4 rule 12). ``control_took_effect``: a control started; the DER information is
    PUT now, not at the next poll (§2.7). News put while earlier news is still untaken is merged
    into it (:meth:`merged`), so nothing is lost and the mailbox never blocks."""

    comms_restored: CommsRestored | None = None
    control_took_effect: bool = False

    def merged(self, newer: ControlsNews) -> ControlsNews:
        """This untaken news followed by ``newer``. Only the newest CommsRestored counts: the
        registration actor takes its news before each use of its poll schedule, so the schedule
        is untouched since the older one, and the fold sets every poll due at the newer's
        ``at_s`` either way. Several controls that took effect before it looked are one PUT."""
        return ControlsNews(
            comms_restored=newer.comms_restored or self.comms_restored,
            control_took_effect=self.control_took_effect or newer.control_took_effect,
        )


class TariffLinks(msgspec.Struct, frozen=True, kw_only=True):
    """Registration → pricing (a latest-value mailbox): the TariffProfileList links our
    FunctionSetAssignments reference now (empty: no pricing offered)."""

    hrefs: tuple[str, ...]
