"""What the mirror actor told the utility: each interval average it posted and the server took.

With the samples (``hardware.telemetry.v1``) these make the mirror's backlog a fold of the log, so
readings not yet posted survive a restart (PROTOCOL.md §2.8: every interval is posted, once)."""

from __future__ import annotations

from events.base import Event
from events.telemetry import MeasurementPoint, Quantity

__all__ = ["MIRROR_EVENT_TYPES", "MIRROR_STREAM", "ReadingPosted"]

MIRROR_STREAM = "mirror"


class ReadingPosted(Event, frozen=True, kw_only=True, tag="mirror.reading_posted.v1"):
    """The average of ``quantity`` at ``point`` over ``[start_s, start_s + interval_s)`` was accepted
    by the server (or refused for good with a 4xx: ``refused``)."""

    point: MeasurementPoint
    quantity: Quantity
    start_s: int
    interval_s: int
    at_s: float
    refused: bool = False


MIRROR_EVENT_TYPES: tuple[type[Event], ...] = (ReadingPosted,)
