"""How a process that serves a fleet sets Python's cyclic garbage collector (decision 0022f).

With a thousand sites' objects on one heap, every pass of the collector walks what start-up built
(the code, the configuration, each site's actors and contexts), and the passes come as often as
on a small heap: at 1,000 sites the collector took about a third of the fleet's CPU. Once the
sites have started, what the heap holds is long-lived: :func:`settle_for_a_fleet` moves it out of
the collector's way (``gc.freeze``) and lets the youngest generation grow to 10,000 allocations
before a pass (Python's default is 700), which the gateway's steady state, making almost no
cyclic garbage, does not turn into memory. Reference counting frees everything else as before.
"""

from __future__ import annotations

import gc
from typing import Final

__all__ = ["FLEET_YOUNG_THRESHOLD", "settle_for_a_fleet"]

#: Allocations less deallocations before the youngest generation is collected (Python: 700).
FLEET_YOUNG_THRESHOLD: Final = 10_000


def settle_for_a_fleet() -> tuple[int, int, int]:
    """Collect once, freeze what is left and raise the youngest generation's threshold; returns
    the thresholds it replaced (a benchmark or a test restores them with ``gc.set_threshold``)."""
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(FLEET_YOUNG_THRESHOLD, before[1], before[2])
    return before
