"""Connect a client session to a server session in memory."""

from __future__ import annotations

from transport.http.messages import RequestComplete, Response, SessionEvent
from transport.http.session import ClientSession, ServerSession

__all__ = ["exchange", "pump"]


def pump(
    client: ClientSession, server: ServerSession
) -> tuple[list[SessionEvent], list[SessionEvent]]:
    """Move bytes both ways until quiet; returns (client events, server events)."""
    client_events: list[SessionEvent] = []
    server_events: list[SessionEvent] = []
    for _ in range(50):
        to_server = client.data_to_send()
        if to_server:
            server_events += server.receive_data(to_server)
        to_client = server.data_to_send()
        if to_client:
            client_events += client.receive_data(to_client)
        if not to_server and not to_client:
            break
    return client_events, server_events


def exchange(client: ClientSession, server: ServerSession, handler) -> list[SessionEvent]:  # type: ignore[no-untyped-def]
    """Pump, answering each complete request with ``handler(request) -> Response``."""
    client_events, server_events = pump(client, server)
    while server_events:
        event = server_events.pop(0)
        if isinstance(event, RequestComplete):
            response: Response = handler(event.request)
            server_events += server.send_response(event.stream_id, response)
            more_client, more_server = pump(client, server)
            client_events += more_client
            server_events += more_server
    return client_events
