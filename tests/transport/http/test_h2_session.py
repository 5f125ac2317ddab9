"""HTTP/2 sessions over h2 (RFC 9113), client and server role, driven in memory."""

from __future__ import annotations

import h2.config
import h2.connection
import pytest

from tests.transport.http.pump import exchange, pump
from transport.errors import ConnectionReset, LocalProtocolError, ProtocolViolation
from transport.http.h2_session import H2ClientSession, H2ServerSession
from transport.http.messages import (
    SEP_XML,
    ConnectionClosed,
    Request,
    RequestComplete,
    Response,
    ResponseComplete,
    StreamFailed,
)

PROTOCOLS = ["http/1.1", "h2"]
LIMIT = 4096


def test_h2_several_requests_in_flight_complete_by_stream() -> None:
    client = H2ClientSession(max_response_bytes=LIMIT)
    server = H2ServerSession(max_request_bytes=LIMIT)
    ids = [client.send_request(Request("GET", f"/s/{i}"), authority="h") for i in range(3)]
    events = exchange(client, server, lambda r: Response(200, (), r.target.encode()))
    bodies = {e.stream_id: e.response.body for e in events if isinstance(e, ResponseComplete)}
    assert bodies == {sid: f"/s/{i}".encode() for i, sid in enumerate(ids)}


def test_h2_large_body_respects_flow_control_windows() -> None:
    size = 200_000  # larger than the 65 535-byte initial window
    client = H2ClientSession(max_response_bytes=size)
    server = H2ServerSession(max_request_bytes=size)
    client.send_request(Request("PUT", "/big", (), b"u" * size), authority="h")
    events = exchange(client, server, lambda r: Response(200, (), b"d" * len(r.body)))
    (event,) = [e for e in events if isinstance(e, ResponseComplete)]
    assert len(event.response.body) == size


def test_h2_garbage_from_peer_is_a_protocol_violation() -> None:
    client = H2ClientSession(max_response_bytes=LIMIT)
    sid = client.send_request(Request("GET", "/"), authority="h")
    events = client.receive_data(b"\x00\x00\x04\x09\x00\x00\x00\x00\x07junk" * 3)
    assert any(isinstance(e, StreamFailed) and e.stream_id == sid for e in events)
    assert isinstance(events[-1], ConnectionClosed)
    assert isinstance(events[-1].error, ProtocolViolation)


def test_h2_peer_closing_mid_response_fails_the_stream() -> None:
    client = H2ClientSession(max_response_bytes=LIMIT)
    sid = client.send_request(Request("GET", "/"), authority="h")
    events = client.receive_data(b"")
    assert isinstance(events[0], StreamFailed) and events[0].stream_id == sid
    assert isinstance(events[0].error, ConnectionReset)


def test_h2_stream_reset_by_server_fails_only_that_stream() -> None:
    client = H2ClientSession(max_response_bytes=LIMIT)
    peer = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    peer.initiate_connection()
    first = client.send_request(Request("GET", "/1"), authority="h")
    second = client.send_request(Request("GET", "/2"), authority="h")
    peer.receive_data(client.data_to_send())
    peer.reset_stream(first)
    peer.send_headers(second, [(":status", "200"), ("content-length", "2")])
    peer.send_data(second, b"ok", end_stream=True)
    events = client.receive_data(peer.data_to_send())
    assert any(isinstance(e, StreamFailed) and e.stream_id == first for e in events)
    assert any(isinstance(e, ResponseComplete) and e.stream_id == second for e in events)
    assert client.can_send_request


def test_h2_outbound_names_are_lowercased_and_connection_fields_dropped() -> None:
    client = H2ClientSession(max_response_bytes=LIMIT)
    server = H2ServerSession(max_request_bytes=LIMIT)
    client.send_request(
        Request("GET", "/", (("Accept", SEP_XML), ("Connection", "keep-alive"))), authority="h"
    )
    _, events = pump(client, server)
    (event,) = events
    assert isinstance(event, RequestComplete)
    assert event.request.header("accept") == SEP_XML
    assert event.request.header("connection") is None


@pytest.mark.parametrize(
    "field", [("x-a", "1\r\nx-b: 2"), ("bad name", "v"), (":path", "/x"), ("x-nul", "a\x00b")]
)
def test_h2_unsendable_header_is_a_local_error_not_sent(field: tuple[str, str]) -> None:
    client = H2ClientSession(max_response_bytes=LIMIT)
    with pytest.raises(LocalProtocolError, match="not sendable"):
        client.send_request(Request("GET", "/", (field,)), authority="h")
