"""A fleet's collector settings (decision 0022f): what start-up built is frozen out of the
collector's passes and the youngest generation waits for 10,000 allocations."""

from __future__ import annotations

import gc

from sep2gw.collector import FLEET_YOUNG_THRESHOLD, settle_for_a_fleet


def test_settling_freezes_the_heap_and_raises_the_young_threshold() -> None:
    thresholds = gc.get_threshold()
    kept = [object() for _ in range(10)]  # something long-lived on the heap
    try:
        replaced = settle_for_a_fleet()
        assert replaced == thresholds
        assert gc.get_threshold() == (FLEET_YOUNG_THRESHOLD, thresholds[1], thresholds[2])
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    assert kept
