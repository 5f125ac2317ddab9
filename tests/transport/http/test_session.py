"""The common session interface, for both protocols and both roles, driven in memory (no
sockets)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.transport.http.pump import exchange, pump
from transport.errors import BodyTooLarge
from transport.http.messages import (
    SEP_XML,
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
    return Response(
        201 if request.method == "POST" else 200,
        (("content-type", SEP_XML), ("location", "/edev/3")),
        request.body[::-1],
    )


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
        "PUT",
        "/der/1/dera?x=1",
        b"abc",
    )
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
    assert any(
        isinstance(e, StreamFailed) and isinstance(e.error, BodyTooLarge) for e in server_events
    )
    assert not any(isinstance(e, RequestComplete) for e in server_events)


@settings(max_examples=40)
@given(
    alpn=st.sampled_from(PROTOCOLS),
    body=st.binary(max_size=3000),
    cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=12),
)
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
