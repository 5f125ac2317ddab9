"""Domain events of discovery, registration, polling and posting (PROTOCOL.md §2, §4 rule 15).

Stream ``registration`` for the discovery walk, ``poll`` for poll and post schedules. Times (``at_s``)
are UTC epoch seconds on the server's clock. The back-off jitter is recorded (``BackoffDrawn``) so a
replay never draws again.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from events.base import Event
from events.subscription_events import PollPrompted

__all__ = [
    "POLL_STREAM",
    "REGISTRATION_EVENT_TYPES",
    "REGISTRATION_STREAM",
    "BackoffDrawn",
    "EndDeviceRegistered",
    "LinksChanged",
    "PinCase",
    "Polled",
    "PollRateSeen",
    "PollsShifted",
    "PostRateSeen",
    "Posted",
    "RateBounded",
    "RediscoveryStarted",
    "RegistrationHalted",
    "RegistrationLinkMissing",
    "RegistrationStarted",
    "RegistrationStep",
    "ServerPinRecorded",
    "StepDone",
    "TimeOffsetLearned",
    "TimeRefused",
    "registration_event_stream",
]

REGISTRATION_STREAM = "registration"
POLL_STREAM = "poll"


class RegistrationStep(StrEnum):
    """The steps of PROTOCOL.md §2, in order."""

    DEVICE_CAPABILITY = "device_capability"  # §2.1
    TIME = "time"  # §2.2
    END_DEVICE = "end_device"  # §2.3 (find by LFDI/SFDI, or POST)
    REGISTRATION = "registration"  # §2.4 (PIN check)
    CONNECTION_POINT = "connection_point"  # §2.5 (CSIP-AUS NMI)
    PROGRAMS = "programs"  # §2.6 (FSAs → DERPrograms → defaults, controls)
    DER = "der"  # §2.7 (DERCapability, DERSettings, DERStatus, DERAvailability PUTs)
    MIRROR = "mirror"  # §2.8 (MirrorUsagePoints)


class RegistrationStarted(Event, tag="registration.started.v1", frozen=True, kw_only=True):
    at_s: float


class StepDone(Event, tag="registration.step_done.v1", frozen=True, kw_only=True):
    """A step succeeded; ``href`` is what it found or created (e.g. our EndDevice)."""

    step: RegistrationStep
    href: str | None = None
    at_s: float


class TimeOffsetLearned(Event, tag="registration.time_offset.v1", frozen=True, kw_only=True):
    """Server clock minus our monotonic-derived clock (§2.2): never step the OS clock."""

    offset_s: float
    at_s: float


class TimeRefused(Event, tag="registration.time_refused.v1", frozen=True, kw_only=True):
    """The server's ``Time.currentTime`` (as sent) lies outside the window a clock can plausibly
    be in (``events.times.plausible_clock``): a server fault. Its offset is not adopted; the
    gateway stays on the clock it had (issue 15: time is total)."""

    current_time: int
    reason: str
    at_s: float


class RegistrationHalted(Event, tag="registration.halted.v1", frozen=True, kw_only=True):
    """All traffic to the server stops, with the reason (PIN mismatch, §2.4)."""

    step: RegistrationStep
    reason: str
    at_s: float


class EndDeviceRegistered(
    Event, tag="registration.end_device_registered.v1", frozen=True, kw_only=True
):
    """This gateway POSTed its own EndDevice (in-band registration, §2.3) and the server created it
    at ``href``: the Registration found there has no installer's PIN to compare with (§2.4)."""

    href: str
    at_s: float


class PinCase(StrEnum):
    """Why the server's PIN was recorded instead of compared (PROTOCOL.md §2.4)."""

    REGISTERED_IN_BAND = "registered_in_band"  # this gateway POSTed its EndDevice
    NOT_CONFIGURED = "not_configured"  # server.pin unset: a warning, nothing to compare


class ServerPinRecorded(Event, tag="registration.server_pin.v1", frozen=True, kw_only=True):
    """The Registration's PIN as the server reported it, not compared (§2.4, ``case`` says why);
    recorded when first read and again whenever the server changes it."""

    pin: int
    case: PinCase
    href: str | None = None
    at_s: float


class RegistrationLinkMissing(
    Event, tag="registration.no_registration_link.v1", frozen=True, kw_only=True
):
    """Our EndDevice (``end_device``) offers no RegistrationLink: no PIN to check, the walk goes on
    to the next step (§2.4)."""

    end_device: str | None = None
    at_s: float


class RediscoveryStarted(Event, tag="registration.rediscovery.v1", frozen=True, kw_only=True):
    """A 301 or 404 on ``step``: links may have moved, walk again from DeviceCapability."""

    step: RegistrationStep
    http_status: int
    at_s: float


class LinksChanged(Event, tag="registration.links_changed.v1", frozen=True, kw_only=True):
    """A re-read of ``resource`` (a DeviceCapability polled at its pollRate, §4 rule 15) found the
    links the walk followed changed: walk again from DeviceCapability (§2: follow hrefs)."""

    resource: str
    at_s: float


class BackoffDrawn(Event, tag="registration.backoff_drawn.v1", frozen=True, kw_only=True):
    """A failed ``step`` is retried at ``retry_at_s`` = at_s + base_delay_s + jitter_s (capped)."""

    step: RegistrationStep
    attempt: int
    base_delay_s: float
    jitter_s: float
    retry_at_s: float
    at_s: float


class PollRateSeen(Event, tag="poll.rate.v1", frozen=True, kw_only=True):
    """The pollRate of the resource containing ``resource`` (§4 rule 15)."""

    resource: str
    rate_s: int
    at_s: float


class Polled(Event, tag="poll.done.v1", frozen=True, kw_only=True):
    resource: str
    at_s: float


class PollsShifted(Event, tag="poll.shifted.v1", frozen=True, kw_only=True):
    """The server's clock stepped by ``by_s`` (a re-read Time, §2.2): every planned poll moves with
    it, so each list is still polled one pollRate after its last poll on the device's own clock
    (§4 rule 15), instead of pausing for a backward step or all falling due at a forward one.
    ``at_s`` is on the clock before the step."""

    by_s: float
    at_s: float


class PostRateSeen(Event, tag="post.rate.v1", frozen=True, kw_only=True):
    """The postRate in force for ``mirror`` (EndDevice.postRate wins over local config, §2.8)."""

    mirror: str
    rate_s: int
    at_s: float


class RateBounded(Event, tag="poll.rate_bounded.v1", frozen=True, kw_only=True):
    """A server fault (issue 15): the ``pollRate`` (``kind="poll"``, for the resource polled as
    ``resource``) or ``postRate`` (``kind="post"``, for the mirror ``resource``) the server sent,
    ``sent_s``, lies outside the sane window [``low_s``, ``high_s``] (statemachines.polling), so
    ``used_s`` is used instead (for a pollRate the schema's default, for a postRate the nearest
    bound). The PollRateSeen / PostRateSeen that follows carries ``used_s``."""

    kind: Literal["poll", "post"]
    resource: str
    sent_s: int
    used_s: int
    low_s: int
    high_s: int
    at_s: float


class Posted(Event, tag="post.done.v1", frozen=True, kw_only=True):
    mirror: str
    at_s: float


REGISTRATION_EVENT_TYPES: tuple[type[Event], ...] = (
    RegistrationStarted,
    StepDone,
    TimeOffsetLearned,
    TimeRefused,
    RegistrationHalted,
    RediscoveryStarted,
    BackoffDrawn,
    EndDeviceRegistered,
    ServerPinRecorded,
    RegistrationLinkMissing,
    LinksChanged,
    PollRateSeen,
    Polled,
    PollsShifted,
    PostRateSeen,
    Posted,
    RateBounded,
)


def registration_event_stream(event: Event) -> str:
    """``poll`` for poll and post schedule events, ``registration`` for the walk."""
    if isinstance(
        event,
        PollRateSeen | Polled | PollsShifted | PostRateSeen | Posted | RateBounded | PollPrompted,
    ):
        return POLL_STREAM
    return REGISTRATION_STREAM
