"""A fleet's collector settings (decision 0022f): what start-up built is frozen out of the
collector's passes and the youngest generation waits for a number of allocations that grows with
the number of sites (at least 10,000)."""

from __future__ import annotations

import gc

import pytest

from sep2gw.collector import (
    FLEET_YOUNG_THRESHOLD,
    YOUNG_PER_SITE,
    settle_for_a_fleet,
    young_threshold,
)


def test_settling_freezes_the_heap_and_sets_the_young_threshold_for_the_sites() -> None:
    thresholds = gc.get_threshold()
    kept = [object() for _ in range(10)]  # something long-lived on the heap
    try:
        replaced = settle_for_a_fleet(1000)
        assert replaced == thresholds
        assert gc.get_threshold() == (1000 * YOUNG_PER_SITE, thresholds[1], thresholds[2])
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    assert kept


def test_the_young_threshold_grows_with_the_sites_and_has_a_floor() -> None:
    """A pass walks what every waiting site holds, and the passes come with every site's
    allocations: a fixed threshold makes the collector's cost grow with the square of the sites."""
    assert young_threshold(1) == FLEET_YOUNG_THRESHOLD
    assert young_threshold(0) == FLEET_YOUNG_THRESHOLD
    assert young_threshold(1000) == 1000 * YOUNG_PER_SITE > FLEET_YOUNG_THRESHOLD
    assert young_threshold(5000) == 5 * young_threshold(1000)
    with pytest.raises(ValueError, match="negative number of sites"):
        young_threshold(-1)


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_memory_start_up_freed_is_handed_back_to_the_system() -> None:
    """A fleet's start-up reads, and frees, far more than it keeps (each site pages through the
    aggregator's lists): after settling, that memory is the system's again (glibc)."""
    import platform

    from sep2gw.collector import release_freed_memory

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        assert release_freed_memory() is False  # no malloc_trim: said so, nothing done
        return
    bodies = [bytes(3000) for _ in range(60_000)]  # ~180 MB of page bodies, as start-up reads
    kept = bodies[::100]  # a few stay, scattered through the heap
    del bodies
    before = _rss_kib()
    assert release_freed_memory()
    assert _rss_kib() < before - 100_000, (before, _rss_kib())
    assert len(kept) == 600
