"""What a response means to the client (2030.5 §5.5): created, moved, back off, retry, give up."""

from __future__ import annotations

import email.utils

from transport.http.messages import Response
from transport.http.outcome import (
    MAX_RETRY_AFTER_S,
    BackOff,
    ClientError,
    Created,
    Moved,
    Ok,
    ServerError,
    classify_response,
    parse_retry_after,
)

NOW = 1_780_000_000.0


def test_201_carries_location() -> None:
    outcome = classify_response(Response(201, (("location", "/edev/4"),)), now_epoch_s=NOW)
    assert isinstance(outcome, Created) and outcome.location == "/edev/4"


def test_301_asks_for_rediscovery() -> None:
    outcome = classify_response(Response(301, (("location", "/new/dcap"),)), now_epoch_s=NOW)
    assert outcome == Moved(301, "/new/dcap", permanent=True)


def test_429_retry_after_seconds() -> None:
    outcome = classify_response(Response(429, (("retry-after", "120"),)), now_epoch_s=NOW)
    assert outcome == BackOff(429, 120.0)


def test_retry_after_http_date_is_relative_to_now() -> None:
    date = email.utils.formatdate(NOW + 30, usegmt=True)
    assert parse_retry_after(date, now_epoch_s=NOW) == 30.0
    assert parse_retry_after("soon", now_epoch_s=NOW) is None


def test_5xx_retryable_except_not_implemented_and_4xx_not() -> None:
    assert classify_response(Response(500), now_epoch_s=NOW) == ServerError(500, retryable=True)
    assert classify_response(Response(501), now_epoch_s=NOW) == ServerError(501, retryable=False)
    assert classify_response(Response(404), now_epoch_s=NOW) == ClientError(404)
    assert isinstance(classify_response(Response(204), now_epoch_s=NOW), Ok)


def test_retry_after_is_capped_at_one_hour() -> None:
    """RFC 9110 §10.2.3 with our cap (MAX_RETRY_AFTER_S): a server cannot stop all traffic."""
    assert parse_retry_after("100000000000000000000", now_epoch_s=NOW) == MAX_RETRY_AFTER_S
    assert parse_retry_after("9" * 500, now_epoch_s=NOW) == MAX_RETRY_AFTER_S
    assert parse_retry_after("9" * 5000, now_epoch_s=NOW) == MAX_RETRY_AFTER_S
    far = email.utils.formatdate(NOW + 10 * 86400, usegmt=True)
    assert parse_retry_after(far, now_epoch_s=NOW) == MAX_RETRY_AFTER_S
    assert parse_retry_after("3600", now_epoch_s=NOW) == 3600.0


def test_retry_after_that_is_not_ascii_digits_is_unreadable_not_an_exception() -> None:
    """RFC 9110 §10.2.3: delta-seconds are 1*DIGIT (ASCII); anything else is not a delay."""
    for value in ("²", "١٢", "1e20", "-5", "+5", "5.5", " ", "", "Fri, 31 Dec 99999 23:59:59 GMT",
                  "Mon, 01 Jan 0001 00:00:00 -0000", "Sun, 06 Nov 1994 08:49:37 -0000"):
        result = parse_retry_after(value, now_epoch_s=NOW)
        assert result is None or 0.0 <= result <= MAX_RETRY_AFTER_S, value
