"""Minute-aligned interval averages with min/max (PROTOCOL.md §8, CSIP §5.2.1)."""

from __future__ import annotations

import pytest

from events.telemetry import MeasurementPoint, Quantity, Sample
from statemachines.telemetry import (
    DEFAULT_SAMPLE_PERIOD_S,
    IntervalAggregator,
    LateSample,
    SampleSchedule,
    TelemetryConfigError,
)

T0 = 1_700_000_100  # a whole minute and a whole five minutes


def w(at: float, value: float, point: MeasurementPoint = MeasurementPoint.SITE) -> Sample:
    return Sample(at_s=at, point=point, quantity=Quantity.ACTIVE_POWER_W, value=value)


def test_default_sampling_period_is_five_seconds_on_the_grid() -> None:
    schedule = SampleSchedule()
    assert DEFAULT_SAMPLE_PERIOD_S == 5.0
    assert schedule.next_deadline(T0 + 2.3) == T0 + 5
    assert schedule.next_deadline(T0 + 5) == T0 + 10


def test_summary_is_mean_min_max_over_an_interval_starting_on_a_whole_minute() -> None:
    agg = IntervalAggregator(300)
    assert agg.add([w(T0 + 13, 100), w(T0 + 70, 300), w(T0 + 200, -50)]) == []
    (summary,) = agg.add([w(T0 + 300, 7)])  # first sample of the next interval closes it
    start = T0 - T0 % 300
    assert summary.start_s == start and start % 60 == 0
    assert (summary.mean, summary.minimum, summary.maximum, summary.samples) == (
        350 / 3,
        -50,
        300,
        3,
    )


def test_each_point_and_quantity_is_summarised_separately() -> None:
    agg = IntervalAggregator(60)
    agg.add([w(T0, 10), w(T0 + 1, 20, MeasurementPoint.DER), w(T0 + 2, 30)])
    summaries = agg.close_due(T0 + 60)
    assert {(s.point, s.mean) for s in summaries} == {
        (MeasurementPoint.SITE, 20),
        (MeasurementPoint.DER, 20),
    }


def test_close_due_waits_for_the_interval_end() -> None:
    agg = IntervalAggregator(60)
    agg.add([w(T0 + 5, 1)])
    assert agg.next_deadline() == T0 + 60
    assert agg.close_due(T0 + 59.9) == []
    assert len(agg.close_due(T0 + 60)) == 1
    assert agg.next_deadline() is None


def test_sample_for_an_already_summarised_interval_is_refused() -> None:
    agg = IntervalAggregator(60)
    agg.add([w(T0 + 5, 1)])
    agg.close_due(T0 + 60)
    with pytest.raises(LateSample):
        agg.add([w(T0 + 30, 2)])


def test_non_finite_samples_are_gaps_not_numbers() -> None:
    agg = IntervalAggregator(60)
    agg.add([w(T0, 10), w(T0 + 1, float("nan")), w(T0 + 2, 20)])
    (summary,) = agg.close_due(T0 + 60)
    assert (summary.mean, summary.samples) == (15, 2)


@pytest.mark.parametrize("interval", [0, 30, 90, -60])
def test_interval_must_be_whole_minutes(interval: int) -> None:
    with pytest.raises(TelemetryConfigError, match="whole number of minutes"):
        IntervalAggregator(interval)


def test_sampling_period_must_be_positive() -> None:
    with pytest.raises(TelemetryConfigError):
        SampleSchedule(0)
