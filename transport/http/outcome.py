"""What a response means to the 2030.5 client: success, created, moved (re-discover), back off,
retry, or give up. Pure: the current server time is an argument.

IEEE 2030.5 §5.5 / §6.1: 201 Created names the new resource in ``Location``; 301 Moved Permanently
means the client must re-discover from DeviceCapability; 429/503 with ``Retry-After`` ask the
client to wait; other 5xx are retried with back-off, 4xx are not (the request itself is wrong).
"""

from __future__ import annotations

import datetime
import email.utils
import math
import re
from dataclasses import dataclass
from typing import Final

from transport.http.messages import Response

__all__ = [
    "BackOff",
    "MAX_RETRY_AFTER_S",
    "ClientError",
    "Created",
    "Moved",
    "Ok",
    "Outcome",
    "ServerError",
    "classify_response",
    "parse_retry_after",
]


@dataclass(frozen=True, slots=True)
class Ok:
    response: Response


@dataclass(frozen=True, slots=True)
class Created:
    response: Response
    location: str


@dataclass(frozen=True, slots=True)
class Moved:
    """301/308 (permanent): re-discover from DeviceCapability. 302/307: follow once."""

    status: int
    location: str | None
    permanent: bool


@dataclass(frozen=True, slots=True)
class BackOff:
    status: int
    retry_after_s: float | None


@dataclass(frozen=True, slots=True)
class ServerError:
    status: int
    retryable: bool = True


@dataclass(frozen=True, slots=True)
class ClientError:
    status: int
    retryable: bool = False


#: The longest wait a ``Retry-After`` may impose (documented cap: one hour). A server asking for
#: longer is waited on for an hour, then asked again.
MAX_RETRY_AFTER_S: Final = 3600.0

_DELTA_SECONDS: Final = re.compile(r"[0-9]+", re.ASCII)
#: An IMF-fixdate is 29 characters; obsolete forms a few more. Longer is not a date.
_MAX_DATE_CHARS: Final = 64

Outcome = Ok | Created | Moved | BackOff | ServerError | ClientError


def parse_retry_after(value: str | None, *, now_epoch_s: float) -> float | None:
    """RFC 9110 §10.2.3: delta-seconds (``1*DIGIT``, ASCII only) or an HTTP-date; ``None`` when
    absent or unreadable (a malformed header must not turn into "retry immediately", nor fail the
    caller). Whatever the server says, the wait is at most :data:`MAX_RETRY_AFTER_S` (issue 15:
    ``Retry-After: 1e20`` must not stop all traffic for good)."""
    if value is None:
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        # Hundreds of digits are a valid, absurd delay: compare the length before converting.
        return MAX_RETRY_AFTER_S if len(text) > 9 else min(float(int(text)), MAX_RETRY_AFTER_S)
    if len(text) > _MAX_DATE_CHARS or not text.isascii():
        return None
    try:
        when = email.utils.parsedate_to_datetime(text)
        if when.tzinfo is None:  # "-0000": UTC without a stated source (RFC 5322 §3.3)
            when = when.replace(tzinfo=datetime.UTC)
        delay = when.timestamp() - now_epoch_s
    except (TypeError, ValueError, OverflowError, OSError):
        return None
    if not math.isfinite(delay):
        return None
    return min(max(0.0, delay), MAX_RETRY_AFTER_S)


def classify_response(response: Response, *, now_epoch_s: float) -> Outcome:
    status = response.status
    if status == 201:
        location = response.header("location")
        if location:
            return Created(response, location)
        return Ok(response)
    if 200 <= status < 300 or status == 304:
        return Ok(response)
    if status in (301, 302, 303, 307, 308):
        return Moved(status, response.header("location"), permanent=status in (301, 308))
    if status in (429, 503):
        return BackOff(status, parse_retry_after(response.header("retry-after"),
                                                 now_epoch_s=now_epoch_s))
    if status >= 500:
        return ServerError(status, retryable=status != 501)
    return ClientError(status)
