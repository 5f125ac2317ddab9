"""Readings are averages over the server's post interval (PROTOCOL.md §2 step 8).

Regression: the hardware summarises at a fixed local interval and the mirror posted those
summaries as they were, so after the utility changed EndDevice.postRate from 60 s to 120 s the
gateway posted at the new cadence but still one-minute averages. Summaries within one
postRate-aligned interval are now posted as one sample-weighted average."""

from __future__ import annotations

from actors.mirror import due_interval, merge_summaries
from events.telemetry import IntervalSummary, MeasurementPoint, Quantity

T0 = 1_764_115_200  # a multiple of 120 s and of 300 s


def minute(offset_s: int, mean: float, samples: int = 12) -> IntervalSummary:
    return IntervalSummary(
        point=MeasurementPoint.SITE,
        quantity=Quantity.ACTIVE_POWER_W,
        start_s=T0 + offset_s,
        interval_s=60,
        mean=mean,
        minimum=mean - 1,
        maximum=mean + 1,
        samples=samples,
    )


def test_minutes_of_one_post_interval_are_posted_as_one_weighted_average() -> None:
    queue = [minute(0, 100.0, samples=12), minute(60, 400.0, samples=4), minute(120, 7.0)]
    taken = due_interval(queue, 120)
    assert taken == queue[:2]
    merged = merge_summaries(taken, 120)
    assert (merged.start_s, merged.interval_s, merged.samples) == (T0, 120, 16)
    assert merged.mean == (100.0 * 12 + 400.0 * 4) / 16
    assert (merged.minimum, merged.maximum) == (99.0, 401.0)


def test_an_interval_still_in_progress_is_not_posted() -> None:
    assert due_interval([minute(0, 1.0)], 120) == []
    assert due_interval([minute(0, 1.0), minute(60, 2.0)], 300) == []


def test_the_first_interval_after_a_rate_change_starts_where_the_last_post_ended() -> None:
    """The minute at +0 went out while the rate was 60 s: the 120 s interval [0, 120) is posted
    from +60 only, so no interval overlaps one already posted."""
    taken = due_interval([minute(60, 5.0), minute(120, 6.0)], 120)
    merged = merge_summaries(taken, 120)
    assert (merged.start_s - T0, merged.interval_s, merged.mean) == (60, 60, 5.0)


def test_a_post_rate_that_is_not_a_multiple_of_the_summaries_posts_them_as_they_are() -> None:
    queue = [minute(0, 1.0), minute(60, 2.0)]
    assert due_interval(queue, 90) == queue[:1]
    assert merge_summaries(queue[:1], 90) == queue[0]
    assert due_interval(queue, 60) == queue[:1]
