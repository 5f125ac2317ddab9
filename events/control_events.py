"""Domain events of the decision core: what happened to each DERControl, the limits in force, Responses.

Streams: ``control:<mRID>`` for an event's lifecycle, ``controls`` for programs, defaults, limits in
force and comms state, ``response:<mRID>`` for Responses. Times (``at_s``) are UTC epoch seconds on the
server's clock. Every random draw is recorded here (``RandomizationDrawn``, ``CancelDelayDrawn``) so a
re-poll, a restart or a replay reuses it and never draws again (PROTOCOL.md §4, preamble and rule 8).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from events.base import Event
from events.der_model import (
    Control,
    ControlSettings,
    DefaultControl,
    EventStatus,
    Mode,
    Program,
    ResponseStatus,
)

__all__ = [
    "CONTROLS_STREAM",
    "CONTROL_EVENT_TYPES",
    "CONTROL_UPCASTERS",
    "CancelDelayDrawn",
    "CommsLost",
    "CommsRestored",
    "ControlCancelled",
    "ControlCompleted",
    "ControlGap",
    "ControlIgnored",
    "ControlReceived",
    "ControlRejected",
    "ControlRemoved",
    "ControlScheduled",
    "ControlStarted",
    "ControlSuperseded",
    "DefaultChanged",
    "DefaultRefused",
    "DeviceWriteResult",
    "IgnoreReason",
    "LimitsInForceChanged",
    "LimitsInForceChangedV1",
    "NOT_SENT",
    "ProgramsChanged",
    "RampPlanned",
    "RandomizationDrawn",
    "ResponseAcked",
    "ResponseFailed",
    "ResponseIntended",
    "ResponseSent",
    "ServerFault",
    "ServerStatusSeen",
    "control_event_stream",
    "control_stream",
    "limits_in_force_from_v1",
    "response_stream",
]

CONTROLS_STREAM = "controls"
#: ``ResponseFailed.undeliverable`` of a Response whose control names no ``replyTo``.
NOT_SENT = "the control names no replyTo: there is nowhere to send it"


def control_stream(mrid: str) -> str:
    return f"control:{mrid}"


def response_stream(mrid: str) -> str:
    return f"response:{mrid}"


def control_event_stream(event: Event) -> str:
    """The stream an event of this module is appended to (see the module docstring)."""
    if isinstance(event, ResponseIntended | ResponseSent | ResponseAcked | ResponseFailed):
        return response_stream(event.mrid)
    if isinstance(event, ControlReceived):
        return control_stream(event.control.mrid)
    mrid = getattr(event, "mrid", None)
    return control_stream(mrid) if isinstance(mrid, str) else CONTROLS_STREAM


class IgnoreReason(StrEnum):
    """Why a received control is neither applied nor (except 254) answered."""

    EXPIRED_ON_RECEIPT = "expired_on_receipt"  # §4 rule 3
    DEVICE_CATEGORY = "device_category"  # §4 rule 14


class ControlReceived(Event, tag="control.received.v1", frozen=True, kw_only=True):
    """First sight of an mRID (§4 rule 2), with its content as received."""

    at_s: float
    control: Control


class RandomizationDrawn(Event, tag="control.randomization_drawn.v1", frozen=True, kw_only=True):
    """The once-per-mRID draws ρs ∈ [0, randomizeStart] and ρd ∈ [0, randomizeDuration] (sign kept)."""

    mrid: str
    start_offset_s: int
    duration_offset_s: int
    at_s: float


class ControlScheduled(Event, tag="control.scheduled.v1", frozen=True, kw_only=True):
    """The effective period ``[effective_start_s, effective_end_s)``; ``adjacent_to`` names the event
    whose effective end pinned the start (§4 rule 5). Recorded again when adjacency re-plans it."""

    mrid: str
    effective_start_s: int
    effective_end_s: int
    adjacent_to: str | None = None
    at_s: float


class ControlStarted(Event, tag="control.started.v1", frozen=True, kw_only=True):
    """Activation at effective start (§4 rule 6); ``late``: discovered already inside its period;
    ``awaiting_write``: Response 2 waits for the device to confirm the write."""

    mrid: str
    at_s: float
    late: bool = False
    awaiting_write: bool = False


class DeviceWriteResult(Event, tag="control.device_write.v1", frozen=True, kw_only=True):
    """The device accepted (``ok``) or refused the limits that started ``mrids`` (§4 rule 6)."""

    mrids: tuple[str, ...]
    ok: bool
    detail: str = ""
    at_s: float


class ControlSuperseded(Event, tag="control.superseded.v1", frozen=True, kw_only=True):
    """The event lost ``modes_lost`` to ``by`` for good (§4 rule 7). ``fully``: it has now lost every
    mode it sets, so it stops and answers 7; otherwise it keeps running its other modes."""

    mrid: str
    by: str
    modes_lost: tuple[Mode, ...]
    fully: bool
    at_s: float


class CancelDelayDrawn(Event, tag="control.cancel_delay_drawn.v1", frozen=True, kw_only=True):
    """The delay before a cancel-with-randomisation takes effect (§4 rule 8, status 3)."""

    mrid: str
    delay_s: int
    at_s: float


class ControlCancelled(Event, tag="control.cancelled.v1", frozen=True, kw_only=True):
    """The server cancelled the event (status 2, 3 after its delay, §4 rule 8)."""

    mrid: str
    server_status: EventStatus
    at_s: float


class ControlCompleted(Event, tag="control.completed.v1", frozen=True, kw_only=True):
    """Reached its effective end (§4 rule 9), or the server marked it Completed (status 5)."""

    mrid: str
    by_server: bool = False
    at_s: float


class ControlIgnored(Event, tag="control.ignored.v1", frozen=True, kw_only=True):
    """Received but never applicable: expired on receipt (§4 rule 3) or not for our category (rule 14)."""

    mrid: str
    reason: IgnoreReason
    at_s: float


class ControlRejected(Event, tag="control.rejected.v1", frozen=True, kw_only=True):
    """Refused with a rejection code (253 invalid event, 252 not applicable), §4 rules 6 and 16."""

    mrid: str
    status: ResponseStatus
    reason: str
    at_s: float


class ControlRemoved(Event, tag="control.removed.v1", frozen=True, kw_only=True):
    """Its DERProgram is no longer referenced by our FSAs: it stops silently (§4 rule 4)."""

    mrid: str
    program_id: str
    at_s: float


class ServerFault(Event, tag="control.server_fault.v1", frozen=True, kw_only=True):
    """The server changed content under an mRID it already sent (§4 rule 1); the first plan stands."""

    mrid: str
    reason: str
    received: Control
    at_s: float


class ServerStatusSeen(Event, tag="control.server_status.v1", frozen=True, kw_only=True):
    """The server's ``EventStatus.currentStatus`` for an event changed (§4 rule 8)."""

    mrid: str
    status: EventStatus
    at_s: float


class ControlGap(Event, tag="control.gap.v1", frozen=True, kw_only=True):
    """Near-adjacent events leave ``[start_s, end_s)`` to the default on ``modes`` (§4 rule 5)."""

    before: str
    after: str
    start_s: int
    end_s: int
    modes: tuple[Mode, ...]
    at_s: float


class ProgramsChanged(Event, tag="control.programs.v1", frozen=True, kw_only=True):
    """The DERPrograms referenced by our FunctionSetAssignments, as last discovered (§2 step 6)."""

    programs: tuple[Program, ...]
    at_s: float


class DefaultChanged(Event, tag="control.default.v1", frozen=True, kw_only=True):
    """A program's DefaultDERControl appeared, changed (``default``) or disappeared (``None``)."""

    program_id: str
    default: DefaultControl | None
    at_s: float


class DefaultRefused(Event, tag="control.default_refused.v1", frozen=True, kw_only=True):
    """A program's DefaultDERControl carries a value no DER can carry out (issue 15: a negative
    limit, a percentage beyond 100, …): it is not adopted, the default in force stays, and the
    server's document is kept here with the reason (a server fault)."""

    program_id: str
    received: DefaultControl
    reason: str
    at_s: float


class LimitsInForceChanged(Event, tag="control.limits_in_force.v2", frozen=True, kw_only=True):
    """The arbitrated settings for every mode, and who supplies each (``control:<mRID>`` or
    ``default:<programID>``), from ``at_s`` until something changes, at ``next_change_s`` at the latest.

    ``ramps_ended``: the modes whose ramp (``RampPlanned``) is over from now on, as the controls core
    decided (§4 rule 11: a ramp leads to the value in force; one towards another value is over).
    The fold drops exactly these, so a change of that rule never reinterprets an old log (issue 17).
    ``None`` only on a record written as v1 (:class:`LimitsInForceChangedV1`), which did not say:
    the fold then ends the ramps the v1 fold ended (``statemachines.controls.fold``)."""

    settings: ControlSettings
    sources: dict[Mode, str]
    next_change_s: int | None
    ramps_ended: tuple[Mode, ...] | None
    at_s: float


class LimitsInForceChangedV1(Event, tag="control.limits_in_force.v1", frozen=True, kw_only=True):
    """Legacy (read, never written): :class:`LimitsInForceChanged` as logs before issue 17 hold it,
    with no ``ramps_ended``; the fold decided which ramps ended. Upcast with ``ramps_ended=None``."""

    settings: ControlSettings
    sources: dict[Mode, str]
    next_change_s: int | None
    at_s: float


def limits_in_force_from_v1(old: LimitsInForceChangedV1) -> LimitsInForceChanged:
    """v1 → v2: the record did not say which ramps ended (``None``: the v1 fold rule applies)."""
    return LimitsInForceChanged(
        settings=old.settings,
        sources=old.sources,
        next_change_s=old.next_change_s,
        ramps_ended=None,
        at_s=old.at_s,
    )


class RampPlanned(Event, tag="control.ramp_planned.v1", frozen=True, kw_only=True):
    """A limit change turned into a straight-line trajectory (§4 rule 11)."""

    mode: Mode
    from_value: float
    to_value: float
    start_s: float
    end_s: float
    at_s: float


class ResponseIntended(Event, tag="response.intended.v1", frozen=True, kw_only=True):
    """We owe the server this Response (§4 rule 16); the key (mRID, status, LFDI) is reserved now."""

    mrid: str
    status: ResponseStatus
    lfdi: str
    reply_to: str | None
    created_s: int
    at_s: float


class ResponseSent(Event, tag="response.sent.v1", frozen=True, kw_only=True):
    mrid: str
    status: ResponseStatus
    at_s: float


class ResponseAcked(Event, tag="response.acked.v1", frozen=True, kw_only=True):
    mrid: str
    status: ResponseStatus
    http_status: int
    at_s: float


class ResponseFailed(Event, tag="response.failed.v1", frozen=True, kw_only=True):
    """A POST failed; ``retry`` is False for a 4xx (never retried, §4 rule 16).

    ``http_status`` is what the server answered, None when no answer came (a network failure) or
    nothing was sent; ``undeliverable`` says why nothing was sent (e.g. :data:`NOT_SENT`)."""

    mrid: str
    status: ResponseStatus
    http_status: int | None
    retry: bool
    at_s: float
    undeliverable: str | None = None


class CommsLost(Event, tag="comms.lost.v1", frozen=True, kw_only=True):
    """The server became unreachable: keep the known schedule, queue Responses (§4 rule 12).

    ``reason``: the link failure that made it so, as the link classified it (connection refused,
    timeout, the TLS alert: unknown CA, certificate rejected, handshake failure, …); empty in logs
    written before it was recorded."""

    at_s: float
    reason: str = ""


class CommsRestored(Event, tag="comms.restored.v1", frozen=True, kw_only=True):
    """The server is reachable again: send the queued Responses, re-poll everything (§4 rule 12)."""

    at_s: float


CONTROL_EVENT_TYPES: tuple[type[Event], ...] = (
    ControlReceived,
    RandomizationDrawn,
    ControlScheduled,
    ControlStarted,
    DeviceWriteResult,
    ControlSuperseded,
    CancelDelayDrawn,
    ControlCancelled,
    ControlCompleted,
    ControlIgnored,
    ControlRejected,
    ControlRemoved,
    ServerFault,
    ServerStatusSeen,
    ControlGap,
    ProgramsChanged,
    DefaultChanged,
    DefaultRefused,
    LimitsInForceChanged,
    RampPlanned,
    ResponseIntended,
    ResponseSent,
    ResponseAcked,
    ResponseFailed,
    CommsLost,
    CommsRestored,
)
#: The old tags of this module's events, each with the upcaster to its current type.
CONTROL_UPCASTERS: dict[type[Event], Callable[[Any], Event]] = {
    LimitsInForceChangedV1: limits_in_force_from_v1,
}
