"""HTTP/1.1 and HTTP/2 sessions (sans-IO) for the client and server role, a router, and response
classification."""

from transport.http.messages import (
    SEP_XML,
    ConnectionClosed,
    Headers,
    Request,
    RequestComplete,
    Response,
    ResponseComplete,
    SessionEvent,
    StreamFailed,
)
from transport.http.outcome import (
    BackOff,
    ClientError,
    Created,
    Moved,
    Ok,
    Outcome,
    ServerError,
    classify_response,
    parse_retry_after,
)
from transport.http.router import Match, Miss, RouteError, Router, split_target
from transport.http.session import (
    ClientSession,
    ServerSession,
    new_client_session,
    new_server_session,
)

__all__ = [
    "SEP_XML",
    "BackOff",
    "ClientError",
    "ClientSession",
    "ConnectionClosed",
    "Created",
    "Headers",
    "Match",
    "Miss",
    "Moved",
    "Ok",
    "Outcome",
    "Request",
    "RequestComplete",
    "Response",
    "ResponseComplete",
    "RouteError",
    "Router",
    "ServerError",
    "ServerSession",
    "SessionEvent",
    "StreamFailed",
    "classify_response",
    "new_client_session",
    "new_server_session",
    "parse_retry_after",
    "split_target",
]
