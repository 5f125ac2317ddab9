"""Keep one site of a fleet running: a site that stops with an error starts again after a bounded
back-off, and nothing it does waits on any other site (issue 19: one failing site never stalls
another).

A site's gateway already rebuilds its own actors after a failure (``actors.supervisor``); this is the
level above, for a gateway that gave up (its supervisor's restart budget spent) or could not start
(its log locked, a driver that cannot connect): the fleet keeps the other sites running and tries
this one again later, longer each time up to ``max_s``, afresh once a start has run for ``max_s``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec

from actors.clock import Clock

__all__ = ["SiteBackoff", "SiteStopped", "keep_site_running"]


class SiteStopped(Exception):
    """A site's gateway returned although nothing stopped it."""


class SiteBackoff(msgspec.Struct, frozen=True, kw_only=True):
    initial_s: float = 30.0
    max_s: float = 600.0

    def delay_s(self, failures: int) -> float:
        """The wait before start ``failures + 1``: doubling from ``initial_s``, capped."""
        return float(min(self.initial_s * 2 ** max(failures - 1, 0), self.max_s))


async def keep_site_running(
    run_once: Callable[[], Awaitable[None]],
    *,
    clock: Clock,
    backoff: SiteBackoff,
    on_stopped: Callable[[BaseException, float], None],
) -> None:
    """Run ``run_once`` until cancelled; each time it ends — with an error, or returning, which a
    site that should run until cancelled must not do — ``on_stopped(error, delay)`` and a wait of
    ``delay`` seconds, then again."""
    failures = 0
    while True:
        started = clock.monotonic()
        try:
            await run_once()
            raise SiteStopped("its gateway stopped on its own")
        except Exception as error:  # a site's failure, whatever it is, is that site's alone
            if clock.monotonic() - started >= backoff.max_s:
                failures = 0  # it ran well for a while: this is a new episode
            failures += 1
            delay = backoff.delay_s(failures)
            on_stopped(error, delay)
        await clock.sleep_until_monotonic(clock.monotonic() + delay)
