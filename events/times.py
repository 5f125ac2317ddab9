"""The span of instants the gateway can represent (issue 15: time is total).

2030.5 ``TimeType`` is an Int64 of epoch seconds; Python's ``datetime`` (and so every rendering of
a time) covers years 1 to 9999 only, and ``float`` loses whole seconds beyond 2**53. An instant in
:data:`EARLIEST_S` … :data:`LATEST_S` (1970-01-01T00:00:00Z … 9999-12-31T23:59:59Z) is one the
gateway can plan with, store, compare and render; a server time outside it is a server fault, and
:func:`utc_datetime` turns any number into a date or ``None`` without raising.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, tzinfo
from typing import Final

__all__ = [
    "EARLIEST_S",
    "LATEST_S",
    "PLAUSIBLE_EARLIEST_S",
    "PLAUSIBLE_LATEST_S",
    "not_a_date",
    "plausible_clock",
    "representable",
    "utc_datetime",
    "zoned",
]

#: 1970-01-01T00:00:00Z: 2030.5 times are epoch seconds; none before the epoch is meaningful.
EARLIEST_S: Final = 0
#: 9999-12-31T23:59:59Z: the last second a ``datetime`` can hold.
LATEST_S: Final = 253_402_300_799

#: A server clock (``Time.currentTime``) is adopted only within 2000-01-01 … 2100-01-01 (exclusive):
#: outside it the server's clock is broken (a 1970 reset, a 2100 or Int64 value), and adopting it
#: would put every decision and every Response's ``createdDateTime`` on that broken clock.
PLAUSIBLE_EARLIEST_S: Final = 946_684_800
PLAUSIBLE_LATEST_S: Final = 4_102_444_800


def plausible_clock(t: float) -> bool:
    """Whether a server's current time may be adopted (see :data:`PLAUSIBLE_EARLIEST_S`)."""
    return not (isinstance(t, float) and math.isnan(t)) and (
        PLAUSIBLE_EARLIEST_S <= t < PLAUSIBLE_LATEST_S
    )


def representable(t: float) -> bool:
    """Whether ``t`` (epoch seconds) is a finite instant within :data:`EARLIEST_S` … :data:`LATEST_S`."""
    return not (isinstance(t, float) and math.isnan(t)) and EARLIEST_S <= t <= LATEST_S


def utc_datetime(t: float) -> datetime | None:
    """``t`` as an aware UTC ``datetime``, or ``None`` when no date can hold it (never raises)."""
    if not representable(t):
        return None
    return datetime.fromtimestamp(t, tz=UTC)


def zoned(utc: datetime, zone: tzinfo) -> datetime | None:
    """``utc`` in ``zone``, or ``None`` when the zone's offset carries it past year 1 or 9999."""
    try:
        return utc.astimezone(zone)
    except (OverflowError, ValueError):
        return None


def not_a_date(t: float) -> str:
    """How a time no date can hold is shown: its number, said to be out of range."""
    return f"{t!r} s (not a date: outside 1970..9999)"
