"""Telemetry sampling schedule and minute-aligned interval summaries for the mirror.

IEEE 2030.5 §10.8 / CSIP §5.2.1 (PROTOCOL.md §8): readings are posted at ``postRate`` as averages
over the post interval, with interval starts on whole minutes (seconds = 0). We keep the minimum and
maximum too (forensics). Pure: samples carry their own time; :meth:`IntervalAggregator.close_due`
takes ``now``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from events.telemetry import IntervalSummary, MeasurementPoint, Quantity, Sample

__all__ = [
    "DEFAULT_SAMPLE_PERIOD_S",
    "IntervalAggregator",
    "LateSample",
    "SampleSchedule",
    "TelemetryConfigError",
]

DEFAULT_SAMPLE_PERIOD_S = 5.0


class TelemetryConfigError(ValueError):
    def __init__(self, what: str, value: object, why: str) -> None:
        super().__init__(f"{what}={value!r}: {why}")
        self.what = what
        self.value = value
        self.why = why


class LateSample(ValueError):
    """A sample for an interval that has already been summarised."""

    def __init__(self, sample: Sample, closed_before_s: int) -> None:
        super().__init__(
            f"sample of {sample.point}/{sample.quantity} at {sample.at_s} is older than the open "
            f"interval starting {closed_before_s}; that interval was already summarised"
        )
        self.sample = sample
        self.closed_before_s = closed_before_s


class SampleSchedule:
    """When to sample: every ``period_s`` on multiples of the period (so samples of different runs
    line up with the minute grid when the period divides 60)."""

    __slots__ = ("period_s",)

    def __init__(self, period_s: float = DEFAULT_SAMPLE_PERIOD_S) -> None:
        if not math.isfinite(period_s) or period_s <= 0:
            raise TelemetryConfigError("sample period_s", period_s, "must be a positive number")
        self.period_s = period_s

    def next_deadline(self, now: float) -> float:
        """The first sampling instant strictly after ``now``."""
        return (math.floor(now / self.period_s) + 1) * self.period_s


class _Acc:
    __slots__ = ("count", "maximum", "minimum", "total")

    def __init__(self, value: float) -> None:
        self.total = value
        self.minimum = value
        self.maximum = value
        self.count = 1

    def add(self, value: float) -> None:
        self.total += value
        self.count += 1
        if value < self.minimum:
            self.minimum = value
        elif value > self.maximum:
            self.maximum = value


class IntervalAggregator:
    """Summaries over ``[k·interval_s, (k+1)·interval_s)`` (UTC epoch seconds) for every quantity.

    ``interval_s`` must be a whole number of minutes so every interval starts at seconds = 0.
    """

    __slots__ = ("_accs", "_floor_s", "_open_start", "interval_s")

    def __init__(self, interval_s: int) -> None:
        if (
            isinstance(interval_s, bool)
            or not isinstance(interval_s, int)
            or interval_s <= 0
            or interval_s % 60
        ):
            raise TelemetryConfigError(
                "post interval_s", interval_s, "must be a positive whole number of minutes (60·k)"
            )
        self.interval_s = interval_s
        self._open_start: int | None = None
        self._floor_s: int | None = None  # intervals before this one were already summarised
        self._accs: dict[tuple[MeasurementPoint, Quantity], _Acc] = {}

    def start_of(self, at_s: float) -> int:
        return math.floor(at_s / self.interval_s) * self.interval_s

    def next_deadline(self) -> float | None:
        """When the open interval ends (and can be summarised)."""
        return None if self._open_start is None else self._open_start + self.interval_s

    def add(self, samples: Iterable[Sample]) -> list[IntervalSummary]:
        """Add samples; returns the summaries of intervals that these samples closed."""
        closed: list[IntervalSummary] = []
        accs = self._accs
        checked_at: float | None = None
        for sample in samples:
            value = sample.value
            if not math.isfinite(value):
                continue  # a failed read is a gap, not a number to average
            # The interval checks depend on the instant only, and one reading's samples share it.
            if sample.at_s != checked_at:
                start = self.start_of(sample.at_s)
                if self._floor_s is not None and start < self._floor_s:
                    raise LateSample(sample, self._floor_s)
                if self._open_start is None:
                    self._open_start = start
                elif start < self._open_start:
                    raise LateSample(sample, self._open_start)
                elif start > self._open_start:
                    closed.extend(self._close())
                    self._floor_s = start
                    self._open_start = start
                    accs = self._accs
                checked_at = sample.at_s
            key = (sample.point, sample.quantity)
            acc = accs.get(key)
            if acc is None:
                accs[key] = _Acc(value)
            else:
                acc.add(value)
        return closed

    def close_due(self, now: float) -> list[IntervalSummary]:
        """Summaries of the open interval if it has ended by ``now`` (no sample needed to close it)."""
        if self._open_start is None or now < self._open_start + self.interval_s:
            return []
        closed = self._close()
        self._floor_s = self._open_start + self.interval_s
        self._open_start = None
        return closed

    def _close(self) -> list[IntervalSummary]:
        assert self._open_start is not None
        start = self._open_start
        summaries = [
            IntervalSummary(
                point=point,
                quantity=quantity,
                start_s=start,
                interval_s=self.interval_s,
                mean=acc.total / acc.count,
                minimum=acc.minimum,
                maximum=acc.maximum,
                samples=acc.count,
            )
            for (point, quantity), acc in sorted(self._accs.items())
        ]
        self._accs = {}
        return summaries
