"""How a process that serves a fleet sets Python's cyclic garbage collector (decision 0022f).

With a thousand sites' objects on one heap, every pass of the collector walks what start-up built
(the code, the configuration, each site's actors and contexts), and the passes come as often as
on a small heap: at 1,000 sites the collector took about a third of the fleet's CPU. Once the
sites have started, what the heap holds is long-lived: :func:`settle_for_a_fleet` moves it out of
the collector's way (``gc.freeze``).

What is left is the cost of the youngest generation's passes, and that one grows with the square of
the number of sites unless its threshold grows with them. A pass walks every young object still
alive, and between two passes each waiting site leaves a new chain of suspended coroutines,
cancel scopes and events behind (about 200 objects a site, measured at 300 sites: 60,000 young
objects, 15-25 ms a pass). The passes come once per ``threshold`` allocations-less-deallocations,
which also grow with the sites. At a fixed threshold of 10,000 the passes took 37 s of a 600 s
window at 1,000 sites (965 passes of 38 ms), against 0.07 s of 180 s at 100 sites.

Start-up also leaves the C heap larger than what stays in use: every site walks discovery and
pages through the aggregator's lists once (its EndDevice, its MirrorUsagePoints), and the memory
those reads freed stays in the process unless it is handed back (at 100 sites, 50 of 227 MB). A
fleet hands it back once, after the freeze (glibc's ``malloc_trim``, where the C library has it).

So the threshold is :data:`YOUNG_PER_SITE` per site (never less than
:data:`FLEET_YOUNG_THRESHOLD`): the passes then come as often whatever the number of sites, and
each walks what the sites hold, so the collector's cost per site stays flat. The memory this
lets wait is the cyclic garbage made between two passes (the steady state makes little;
reference counting frees everything else as before): at most the threshold's number of objects.
"""

from __future__ import annotations

import ctypes
import gc
from typing import Final

__all__ = [
    "FLEET_YOUNG_THRESHOLD",
    "YOUNG_PER_SITE",
    "release_freed_memory",
    "settle_for_a_fleet",
    "young_threshold",
]

#: The least youngest-generation threshold of a fleet (Python's own is 700).
FLEET_YOUNG_THRESHOLD: Final = 10_000
#: Allocations less deallocations per site before the youngest generation is collected.
YOUNG_PER_SITE: Final = 100


def young_threshold(sites: int) -> int:
    """The youngest generation's threshold for a fleet of ``sites`` (module docstring: why)."""
    if sites < 0:
        raise ValueError(f"a fleet has no negative number of sites, got {sites}")
    return max(FLEET_YOUNG_THRESHOLD, YOUNG_PER_SITE * sites)


def settle_for_a_fleet(sites: int) -> tuple[int, int, int]:
    """Collect once, freeze what is left and set the youngest generation's threshold for
    ``sites`` sites; returns the thresholds it replaced (a benchmark or a test restores them
    with ``gc.set_threshold``)."""
    young = young_threshold(sites)
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(young, before[1], before[2])
    release_freed_memory()
    return before


def release_freed_memory() -> bool:
    """Hand the memory the C heap holds free back to the system (glibc's ``malloc_trim(0)``);
    False where the C library has no such call (the memory stays the process's, as before)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError, TypeError):  # no such call; Windows has no CDLL(None)
        return False
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int
    trim(0)
    return True
