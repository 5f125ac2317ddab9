"""The mirror's backlog rebuilt from the log at start (PROTOCOL.md §2.8: readings of an outage are
posted when the server is back), reading only the past the backlog can hold."""

from __future__ import annotations

from actors.mirror import MAX_BACKLOG, unposted_intervals
from events.envelope import Append
from events.hardware_events import TelemetrySampled
from events.memory_store import MemoryEventStore
from events.mirror_events import ReadingPosted
from events.registry import CATALOGUE
from events.telemetry import MeasurementPoint, Quantity

T0 = 1_764_115_200.0
MINUTE = 60


def log_of(minutes: int) -> MemoryEventStore:
    store = MemoryEventStore(CATALOGUE)
    for m in range(minutes):
        t = T0 + m * MINUTE
        events = [TelemetrySampled(at_s=t + s, site_w=100.0 + m, der_w=-50.0) for s in (0, 30)]
        store.append([Append(stream="hardware", events=events, server_time=t, monotonic=t)])
    return store


def test_every_unposted_interval_before_the_one_in_progress_is_rebuilt() -> None:
    store = log_of(10)
    posted = ReadingPosted(
        point=MeasurementPoint.SITE,
        quantity=Quantity.ACTIVE_POWER_W,
        start_s=int(T0),
        interval_s=MINUTE,
        at_s=T0 + 61,
    )
    store.append_events("mirror", [posted], server_time=T0 + 61, monotonic=61.0)
    summaries = unposted_intervals(store, MINUTE, before_s=T0 + 9 * MINUTE + 10)
    site_w = [
        s.start_s
        for s in summaries
        if (s.point, s.quantity) == (MeasurementPoint.SITE, Quantity.ACTIVE_POWER_W)
    ]
    # minutes 1..8: minute 0 was posted, minute 9 is still in progress
    assert site_w == [int(T0) + m * MINUTE for m in range(1, 9)]


def test_only_the_intervals_the_backlog_can_hold_are_read_back() -> None:
    """A long outage: intervals older than the backlog would be dropped as soon as they were kept,
    so a gateway restarted on a long log does not read them at all."""
    minutes = MAX_BACKLOG + 100
    store = log_of(minutes)
    summaries = unposted_intervals(store, MINUTE, before_s=T0 + minutes * MINUTE)
    site_w = [
        s.start_s
        for s in summaries
        if (s.point, s.quantity) == (MeasurementPoint.SITE, Quantity.ACTIVE_POWER_W)
    ]
    newest = int(T0) + (minutes - 1) * MINUTE
    assert site_w[-1] == newest
    assert MAX_BACKLOG <= len(site_w) <= MAX_BACKLOG + 1
    assert site_w == list(range(site_w[0], newest + 1, MINUTE))
