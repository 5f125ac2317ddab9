"""Times and quantities as people read them: one place for every console line, story and export.

Times: server time is UTC epoch seconds in the log; people read it in the site's zone
(``site.time_zone`` of the configuration, or ``--tz``), an IANA name (``Australia/Adelaide``) or a
fixed offset (``+10:30``). Exports carry both: epoch seconds for tools, ISO-8601 with the site's
offset for people, and say the zone in the header.

Quantities: a value is rounded to what the meter or the device can tell (0.1 W, 0.1 %, 1 ms),
never shows float noise (``4.9901509284973145``) or ``-0.0``, and carries its unit.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, timedelta, timezone, tzinfo
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from events.times import not_a_date, utc_datetime, zoned

__all__ = [
    "BadZone",
    "iso_in_zone",
    "parse_zone",
    "quantity",
    "rounded",
    "unit_of",
    "zone_name",
]

_OFFSET: Final = re.compile(r"(?P<sign>[+-])(?P<h>\d{1,2}):?(?P<m>\d{2})?")


class BadZone(ValueError):
    """A time zone that names no zone; the message says what was given and what is expected."""


def parse_zone(text: str | None, *, what: str = "--tz") -> tzinfo | None:
    """``None``: none given; ``UTC``/``Z``: UTC; ``+HH:MM``/``-HHMM``: a fixed offset; else an
    IANA zone name (from the system's zone database, or the ``tzdata`` package)."""
    if text is None:
        return None
    if text.upper() in ("UTC", "Z"):
        return UTC
    match = _OFFSET.fullmatch(text)
    if match:
        minutes = int(match["h"]) * 60 + int(match["m"] or 0)
        if minutes > 24 * 60:
            raise BadZone(f"{what} {text!r}: an offset is at most 24 hours")
        sign = -1 if match["sign"] == "-" else 1
        return timezone(timedelta(minutes=sign * minutes))
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadZone(
            f"{what} {text!r}: not a time zone (an IANA name like Australia/Sydney, or +10:00)"
        ) from None


def zone_name(zone: tzinfo | None) -> str:
    """How a header names the zone its times are in."""
    if zone is None or zone is UTC:
        return "UTC"
    if isinstance(zone, ZoneInfo):
        return zone.key
    offset = zone.utcoffset(None)
    if offset is None:
        return str(zone)
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def iso_in_zone(t: float, zone: tzinfo | None, *, timespec: str = "seconds") -> str:
    """``t`` (epoch seconds) as ISO-8601 in ``zone`` with its offset (``Z`` for UTC), e.g.
    ``2025-11-26T10:35:00+10:30``; total over every number (a NaN or an out-of-range instant is
    named, not raised)."""
    utc = utc_datetime(t)
    if utc is None:
        return not_a_date(t)
    if zone is None or zone is UTC:
        return utc.isoformat(timespec=timespec).replace("+00:00", "Z")
    local = zoned(utc, zone)
    if local is None:
        return not_a_date(t)
    return local.isoformat(timespec=timespec)


#: Unit and decimals by the suffix a domain name carries (STYLE: units in names).
_UNITS: Final[tuple[tuple[str, str, int], ...]] = (
    ("_pct", "%", 1),
    ("_wh", "Wh", 1),
    ("_var", "var", 1),
    ("_w", "W", 1),
    ("_v", "V", 1),
    ("_hz", "Hz", 3),
    ("_s", "s", 3),
)


def unit_of(name: str) -> tuple[str, int] | None:
    """The unit a domain name's suffix says (``export_limit_w`` → W) and the decimals it is shown
    to; ``None`` for a name without one."""
    for suffix, unit, decimals in _UNITS:
        if name.endswith(suffix):
            return unit, decimals
    return None


def rounded(value: float, decimals: int) -> float:
    """``value`` to ``decimals`` places, with no ``-0.0`` (a reading of -0.04 W is 0 W)."""
    if not math.isfinite(value):
        return value
    result = round(value, decimals)
    return 0.0 if result == 0 else result


def _text(value: float, decimals: int) -> str:
    """A rounded value without trailing zeros: 4991.17 → ``4991.2``, 5000.0 → ``5000``."""
    if not math.isfinite(value):
        return str(value)
    text = f"{rounded(value, decimals):.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def quantity(name: str, value: object) -> str:
    """A setting or reading for a line people read: numbers rounded, with the unit the name
    carries (``export_limit_w``, 4991.169952955278 → ``4991.2 W``); others as they are."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    unit = unit_of(name)
    if unit is None:
        return _text(float(value), 3)
    symbol, decimals = unit
    return f"{_text(float(value), decimals)} {symbol}"
