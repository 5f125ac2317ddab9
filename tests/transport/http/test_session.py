"""HTTP/1.1 and HTTP/2 sessions, client and server role, driven in memory (no sockets)."""

from __future__ import annotations

import h2.config
import h2.connection
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.transport.http.pump import exchange, pump
from transport.errors import BodyTooLarge, ConnectionReset, LocalProtocolError, ProtocolViolation
from transport.http.h2_session import H2ClientSession, H2ServerSession
from transport.http.h11_session import H11ClientSession, H11ServerSession
from transport.http.messages import (
    SEP_XML,
    ConnectionClosed,
    Request,
    RequestComplete,
    Response,
    ResponseComplete,
    StreamFailed,
)
from transport.http.session import new_client_session, new_server_session

PROTOCOLS = ["http/1.1", "h2"]
LIMIT = 4096


def _echo(request: Request) -> Response:
    return Response(201 if request.method == "POST" else 200,
                    (("content-type", SEP_XML), ("location", "/edev/3")), request.body[::-1])


@pytest.mark.parametrize("alpn", PROTOCOLS)
def test_request_and_response_round_trip(alpn: str) -> None:
    client = new_client_session(alpn, max_response_bytes=LIMIT)
    server = new_server_session(alpn, max_request_bytes=LIMIT)
    request = Request("POST", "/edev", (("content-type", SEP_XML),), b"<EndDevice/>")
    sid = client.send_request(request, authority="utility:8443")
    (event,) = exchange(client, server, _echo)
    assert isinstance(event, ResponseComplete) and event.stream_id == sid
    assert event.response.status == 201
    assert event.response.header("location") == "/edev/3"
    assert event.response.header("content-type") == SEP_XML
    assert event.response.body == b"<EndDevice/>"[::-1]


@pytest.mark.parametrize("alpn", PROTOCOLS)
def test_server_sees_method_target_host_and_body(alpn: str) -> None:
    client = new_client_session(alpn, max_response_bytes=LIMIT)
    server = new_server_session(alpn, max_request_bytes=LIMIT)
    client.send_request(Request("PUT", "/der/1/dera?x=1", (), b"abc"), authority="h:1")
    _, server_events = pump(client, server)
    (event,) = server_events
    assert isinstance(event, RequestComplete)
    assert (event.request.method, event.request.target, event.request.body) == (
        "PUT", "/der/1/dera?x=1", b"abc")
    assert event.request.header("host") == "h:1"


@pytest.mark.parametrize("alpn", PROTOCOLS)
def test_connection_is_reused_for_the_next_request(alpn: str) -> None:
    client = new_client_session(alpn, max_response_bytes=LIMIT)
    server = new_server_session(alpn, max_request_bytes=LIMIT)
    for i in range(3):
        assert client.can_send_request
        client.send_request(Request("GET", f"/r/{i}"), authority="h")
        (event,) = exchange(client, server, lambda r: Response(200, (), r.target.encode()))
        assert isinstance(event, ResponseComplete) and event.response.body == f"/r/{i}".encode()


@pytest.mark.parametrize("alpn", PROTOCOLS)
def test_oversized_response_fails_the_stream_with_body_too_large(alpn: str) -> None:
    client = new_client_session(alpn, max_response_bytes=100)
    server = new_server_session(alpn, max_request_bytes=LIMIT)
    sid = client.send_request(Request("GET", "/big"), authority="h")
    events = exchange(client, server, lambda r: Response(200, (), b"x" * 1000))
    failed = [e for e in events if isinstance(e, StreamFailed)]
    assert failed and failed[0].stream_id == sid and isinstance(failed[0].error, BodyTooLarge)
    assert not any(isinstance(e, ResponseComplete) for e in events)


@pytest.mark.parametrize("alpn", PROTOCOLS)
def test_oversized_request_is_refused_by_the_server(alpn: str) -> None:
    client = new_client_session(alpn, max_response_bytes=LIMIT)
    server = new_server_session(alpn, max_request_bytes=10)
    client.send_request(Request("POST", "/mup", (), b"y" * 100), authority="h")
    _, server_events = pump(client, server)
    assert any(isinstance(e, StreamFailed) and isinstance(e.error, BodyTooLarge)
               for e in server_events)
    assert not any(isinstance(e, RequestComplete) for e in server_events)


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
        b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok")
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
        b"GET /a HTTP/1.1\r\nhost: h\r\n\r\nGET /b HTTP/1.1\r\nhost: h\r\n\r\n")
    assert [e.request.target for e in events if isinstance(e, RequestComplete)] == ["/a"]
    more = server.send_response(events[0].stream_id, Response(200))  # type: ignore[union-attr]
    assert [e.request.target for e in more if isinstance(e, RequestComplete)] == ["/b"]


def test_http11_server_answers_malformed_request_with_400() -> None:
    server = H11ServerSession(max_request_bytes=LIMIT)
    events = server.receive_data(b"NOT HTTP\r\n\r\n")
    assert isinstance(events[-1], ConnectionClosed)
    assert isinstance(events[-1].error, ProtocolViolation)
    assert server.data_to_send().startswith(b"HTTP/1.1 400 ")


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


@settings(max_examples=40)
@given(alpn=st.sampled_from(PROTOCOLS), body=st.binary(max_size=3000),
       cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=12))
def test_response_is_the_same_however_the_bytes_are_split(
    alpn: str, body: bytes, cuts: list[int]
) -> None:
    client = new_client_session(alpn, max_response_bytes=LIMIT)
    server = new_server_session(alpn, max_request_bytes=LIMIT)
    client.send_request(Request("GET", "/split"), authority="h")
    _, requests = pump(client, server)
    (request,) = requests
    assert isinstance(request, RequestComplete)
    server.send_response(request.stream_id, Response(200, (("content-type", SEP_XML),), body))
    wire = server.data_to_send()
    events = []
    at = 0
    for cut in cuts:
        events += client.receive_data(wire[at : at + cut])
        at += cut
        if at >= len(wire):
            break
    if at < len(wire):
        events += client.receive_data(wire[at:])
    (complete,) = [e for e in events if isinstance(e, ResponseComplete)]
    assert complete.response.body == body
    assert complete.response.header("content-type") == SEP_XML


def test_h2_outbound_names_are_lowercased_and_connection_fields_dropped() -> None:
    client = H2ClientSession(max_response_bytes=LIMIT)
    server = H2ServerSession(max_request_bytes=LIMIT)
    client.send_request(Request("GET", "/", (("Accept", SEP_XML), ("Connection", "keep-alive"))),
                        authority="h")
    _, events = pump(client, server)
    (event,) = events
    assert isinstance(event, RequestComplete)
    assert event.request.header("accept") == SEP_XML
    assert event.request.header("connection") is None


@pytest.mark.parametrize("field", [("x-a", "1\r\nx-b: 2"), ("bad name", "v"), (":path", "/x"),
                                   ("x-nul", "a\x00b")])
def test_h2_unsendable_header_is_a_local_error_not_sent(field: tuple[str, str]) -> None:
    client = H2ClientSession(max_response_bytes=LIMIT)
    with pytest.raises(LocalProtocolError, match="not sendable"):
        client.send_request(Request("GET", "/", (field,)), authority="h")
