"""What a response means to the 2030.5 client: success, created, moved (re-discover), back off,
retry, or give up. Pure: the current server time is an argument.

IEEE 2030.5 §5.5 / §6.1: 201 Created names the new resource in ``Location``; 301 Moved Permanently
means the client must re-discover from DeviceCapability; 429/503 with ``Retry-After`` ask the
client to wait; other 5xx are retried with back-off, 4xx are not (the request itself is wrong).
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass

from transport.http.messages import Response

__all__ = [
    "BackOff",
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


Outcome = Ok | Created | Moved | BackOff | ServerError | ClientError


def parse_retry_after(value: str | None, *, now_epoch_s: float) -> float | None:
    """RFC 9110 §10.2.3: delta-seconds or an HTTP-date; None when absent or unreadable (a
    malformed header must not turn into "retry immediately")."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now_epoch_s)


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
