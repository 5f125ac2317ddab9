"""HTTP/1.1 sessions over h11 (RFC 9112), client and server role, driven in memory."""

from __future__ import annotations

import pytest

from transport.errors import BodyTooLarge, ConnectionReset, LocalProtocolError, ProtocolViolation
from transport.http.h11_session import H11ClientSession, H11ServerSession
from transport.http.messages import (
    ConnectionClosed,
    Request,
    RequestComplete,
    Response,
    ResponseComplete,
    StreamFailed,
)

PROTOCOLS = ["http/1.1", "h2"]
LIMIT = 4096


def test_http11_body_limit_checks_content_length_before_reading() -> None:
    client = H11ClientSession(max_response_bytes=100)
    client.send_request(Request("GET", "/"), authority="h")
    events = client.receive_data(b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n")
    assert isinstance(events[0], StreamFailed) and isinstance(events[0].error, BodyTooLarge)
    assert client.closed


def test_http11_server_close_mid_response_is_a_reset() -> None:
    client = H11ClientSession(max_response_bytes=LIMIT)
    sid = client.send_request(Request("GET", "/"), authority="h")
    assert client.receive_data(b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\nhalf") == []
    events = client.receive_data(b"")
    assert isinstance(events[0], StreamFailed) and events[0].stream_id == sid
    assert isinstance(events[0].error, ConnectionReset)
    assert isinstance(events[-1], ConnectionClosed)


def test_http11_close_before_any_response_is_a_reset() -> None:
    client = H11ClientSession(max_response_bytes=LIMIT)
    client.send_request(Request("GET", "/"), authority="h")
    events = client.receive_data(b"")
    assert isinstance(events[0], StreamFailed) and isinstance(events[0].error, ConnectionReset)


def test_http11_malformed_response_is_a_protocol_violation() -> None:
    client = H11ClientSession(max_response_bytes=LIMIT)
    client.send_request(Request("GET", "/"), authority="h")
    events = client.receive_data(b"HTTP/1.1 OK-ish\r\n\r\n")
    assert isinstance(events[0], StreamFailed)
    assert isinstance(events[0].error, ProtocolViolation) and events[0].error.by_peer


def test_http11_connection_close_response_ends_reuse() -> None:
    client = H11ClientSession(max_response_bytes=LIMIT)
    client.send_request(Request("GET", "/"), authority="h")
    events = client.receive_data(
        b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"
    )
    assert isinstance(events[0], ResponseComplete) and events[0].response.body == b"ok"
    assert not client.can_send_request


def test_http11_second_request_while_busy_is_a_local_error() -> None:
    client = H11ClientSession(max_response_bytes=LIMIT)
    client.send_request(Request("GET", "/"), authority="h")
    with pytest.raises(LocalProtocolError):
        client.send_request(Request("GET", "/again"), authority="h")


def test_http11_server_answers_pipelined_requests_in_order() -> None:
    server = H11ServerSession(max_request_bytes=LIMIT)
    events = server.receive_data(
        b"GET /a HTTP/1.1\r\nhost: h\r\n\r\nGET /b HTTP/1.1\r\nhost: h\r\n\r\n"
    )
    assert [e.request.target for e in events if isinstance(e, RequestComplete)] == ["/a"]
    more = server.send_response(events[0].stream_id, Response(200))  # type: ignore[union-attr]
    assert [e.request.target for e in more if isinstance(e, RequestComplete)] == ["/b"]


def test_http11_server_answers_malformed_request_with_400() -> None:
    server = H11ServerSession(max_request_bytes=LIMIT)
    events = server.receive_data(b"NOT HTTP\r\n\r\n")
    assert isinstance(events[-1], ConnectionClosed)
    assert isinstance(events[-1].error, ProtocolViolation)
    assert server.data_to_send().startswith(b"HTTP/1.1 400 ")
