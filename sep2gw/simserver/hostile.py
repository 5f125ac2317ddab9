"""A hostile utility server (issue 15 point 6): the simulated utility's normal discovery tree, with
one fault class injected while a :class:`~sep2gw.simserver.scenario.HostileWindow` is open.

The behaviours (:data:`~sep2gw.simserver.scenario.HOSTILE_BEHAVIOURS`, described one line each in
:data:`DESCRIPTIONS`) fall in eight classes (:data:`FAULT_CLASS`):

- **tls**: garbage on the wire right after a completed handshake; a close in the middle of the
  handshake (half a ServerHello, then the hang-up).
- **http/1.1**: a status line that is not one; a body shorter than its ``Content-Length``; a 1 MiB
  header; a ``Content-Length`` of a terabyte; a chunked body that never ends. Written byte by byte
  here, since a well-behaved HTTP library refuses to misbehave.
- **h2**: DATA far beyond the peer's flow-control window (4 MiB into 64 KiB, its WINDOW_UPDATEs
  never read); a HEADERS frame followed by CONTINUATION frames that never end (frames written by
  hand with hyperframe/hpack).
- **amplification**: thousands of element names no document had before, in every document; in
  every DERControlList a billion-laughs entity bomb, ``all="1000000"`` with 100 distinct controls
  a page, 1,500 items when ``l=100`` was asked, or the same page whatever ``s`` asks for.
- **absurd values**: negative import/export limits, ``opModFixedW`` ±327 %, ``opModMaxLimW``
  655 % (every control and default); ``Time.currentTime`` and every control's start at the Int64
  limits, in 1970 and in 2100; every ``pollRate`` of 1 s or of 4,000,000,000 s (~127 years);
  every ``postRate`` of 1 s.
- **header abuse**: 503 with a ``Retry-After`` of 1e20 seconds (written out), of 300 digits, in
  non-ASCII digits.
- **redirect games**: every GET answered 301 to itself, or 301 to another origin.
- **slow peer**: every answer written one byte every few seconds.

Connection-level behaviours (tls, http/1.1, h2, header abuse, slow peer) take over a connection
accepted while their window is open; document-level ones (amplification, absurd values, redirects)
rewrite the answers of :class:`HostileState`, a :class:`~sep2gw.simserver.state.UtilityState` that
is otherwise the normal one. The normal server (``server.py``) has no hook for any of this: the
hostile one is a subclass, used only when a scenario has ``[[hostile]]`` windows (``sep2gw.world``)
or ``sep2gw sim-server --hostile NAME``. Every request the server saw is recorded as usual (status
0: no well-formed answer), and :attr:`HostileUtilityServer.connection_times` keeps every accepted
connection, for the bounds the tests and ``benchmarks/hostile_bench.py`` check.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import ssl
from collections import Counter
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import parse_qs

import anyio
import anyio.abc
import h2.config
import h2.connection
import h2.events
import hpack
import msgspec
from hyperframe.frame import ContinuationFrame, DataFrame, HeadersFrame

from actors.https import PeerInfo
from actors.tls_stream import TlsStream
from sep2gw.simserver.scenario import (
    HOSTILE_BEHAVIOURS,
    HostileName,
    HostileWindow,
    Scenario,
    parse_scenario,
)
from sep2gw.simserver.server import ServerClock, SimUtilityServer
from sep2gw.simserver.state import SimReply, UtilityState
from transport.errors import LinkError
from transport.http.messages import SEP_XML, Request
from transport.identity import CORE_2030_5, IdentityProfile, lfdi_from_der, sfdi_from_lfdi
from transport.sep2 import HexBinary128, Sep2CodecError, decode_any, encode
from transport.sep2 import resources as r
from transport.tls import TlsMaterial, server_context

__all__ = [
    "DESCRIPTIONS",
    "FAULT_CLASS",
    "HostileState",
    "HostileUtilityServer",
    "hostile_scenario",
]

#: The class of fault each behaviour belongs to (issue 15 point 6).
FAULT_CLASS: Final[dict[HostileName, str]] = {
    "tls_garbage_after_handshake": "tls",
    "tls_close_mid_handshake": "tls",
    "http_bad_status_line": "http/1.1",
    "http_truncated_body": "http/1.1",
    "http_huge_header": "http/1.1",
    "http_oversized_content_length": "http/1.1",
    "http_endless_chunked": "http/1.1",
    "h2_ignore_flow_control": "h2",
    "h2_endless_continuation": "h2",
    "xml_entity_bomb": "amplification",
    "xml_unique_names": "amplification",
    "list_all_million": "amplification",
    "list_page_overflow": "amplification",
    "list_repeating_page": "amplification",
    "control_negative_limits": "absurd values",
    "control_fixed_w_327": "absurd values",
    "control_max_lim_655": "absurd values",
    "time_int64_max": "absurd values",
    "time_int64_min": "absurd values",
    "time_1970": "absurd values",
    "time_2100": "absurd values",
    "poll_rate_1s": "absurd values",
    "poll_rate_huge": "absurd values",
    "post_rate_1s": "absurd values",
    "retry_after_1e20": "header abuse",
    "retry_after_hundreds_of_digits": "header abuse",
    "retry_after_non_ascii": "header abuse",
    "redirect_to_itself": "redirect games",
    "redirect_other_origin": "redirect games",
    "slow_peer": "slow peer",
}

#: What each behaviour does, one line (``sep2gw sim-server --hostile``, the benchmark's report).
DESCRIPTIONS: Final[dict[HostileName, str]] = {
    "tls_garbage_after_handshake": "completes the TLS handshake, then writes 4 KiB of non-TLS bytes",
    "tls_close_mid_handshake": "reads the ClientHello, sends half of its ServerHello, hangs up",
    "http_bad_status_line": "answers 'HTTP/1.1 2OO OK' (letters for digits) and closes",
    "http_truncated_body": "declares the whole body's Content-Length, sends half, closes",
    "http_huge_header": "sends a 1 MiB header before the body",
    "http_oversized_content_length": "declares Content-Length: 1 TB and sends the real body",
    "http_endless_chunked": "a chunked body of 4 KiB chunks every 50 ms that never ends",
    "h2_ignore_flow_control": "h2: 4 MiB of DATA into a 64 KiB window, WINDOW_UPDATEs ignored",
    "h2_endless_continuation": "h2: HEADERS without END_HEADERS, then 16 KiB CONTINUATIONs forever",
    "xml_entity_bomb": "every DERControlList is a billion-laughs entity bomb",
    "xml_unique_names": "every document carries 3,000 element names never seen before",
    "list_all_million": "DERControlList all=1000000, 100 distinct controls a page",
    "list_page_overflow": "DERControlList answers 1,500 items whatever l asks for",
    "list_repeating_page": "DERControlList all=1000, the same 100 items whatever s asks for",
    "control_negative_limits": "every control and default: opModExpLimW -5 kW, opModImpLimW -3 kW",
    "control_fixed_w_327": "every control opModFixedW +327 %, every default -327 %",
    "control_max_lim_655": "every control and default: opModMaxLimW 655 %",
    "time_int64_max": "Time.currentTime and every control start at 2**63-1",
    "time_int64_min": "Time.currentTime and every control start at -2**63",
    "time_1970": "Time.currentTime and every control start at 0 (1970-01-01)",
    "time_2100": "Time.currentTime and every control start at 2100-01-01",
    "poll_rate_1s": "every document with a pollRate: pollRate 1 s",
    "poll_rate_huge": "every document with a pollRate: pollRate 4,000,000,000 s (~127 years)",
    "post_rate_1s": "every EndDevice and MirrorUsagePoint: postRate 1 s",
    "retry_after_1e20": "every request: 503 with Retry-After: 100000000000000000000 (1e20 s)",
    "retry_after_hundreds_of_digits": "every request: 503 with a Retry-After of 300 digits",
    "retry_after_non_ascii": "every request: 503 with a Retry-After in Arabic-Indic digits",
    "redirect_to_itself": "every GET: 301 to the same path, forever",
    "redirect_other_origin": "every GET: 301 to https://elsewhere.example:8443 (another origin)",
    "slow_peer": "every answer written one byte every 3 s",
}

_TLS: Final = frozenset({"tls_garbage_after_handshake", "tls_close_mid_handshake"})
_H2: Final = frozenset({"h2_ignore_flow_control", "h2_endless_continuation"})
_H1: Final = frozenset(
    {
        "http_bad_status_line",
        "http_truncated_body",
        "http_huge_header",
        "http_oversized_content_length",
        "http_endless_chunked",
        "retry_after_1e20",
        "retry_after_hundreds_of_digits",
        "retry_after_non_ascii",
        "slow_peer",
    }
)
#: Behaviours that take over a whole connection (the rest rewrite documents).
CONNECTION_LEVEL: Final = _TLS | _H2 | _H1

#: No hostile connection lasts longer than this (server seconds): every endless behaviour ends.
_MAX_CONNECTION_S: Final = 600.0
_HANDSHAKE_S: Final = 10.0
_REQUEST_HEAD_MAX: Final = 64 * 1024
_HUGE_HEADER_BYTES: Final = 1 << 20
_SEND_PIECE: Final = 64 * 1024
_CHUNK_BYTES: Final = 4096
_CHUNK_EVERY_S: Final = 0.05
_SLOW_BYTE_EVERY_S: Final = 3.0
_CONTINUATION_EVERY_S: Final = 0.1
_FLOOD_FRAMES: Final = 256  # 16 KiB DATA frames: 4 MiB
_UNIQUE_NAMES: Final = 3000
_PAGE: Final = 100
_OVERFLOW_ITEMS: Final = 1500
_REPEATING_ALL: Final = 1000
_MILLION: Final = 1_000_000
_OTHER_ORIGIN: Final = "https://elsewhere.example:8443"
_INT64_MAX: Final = (1 << 63) - 1
_INT64_MIN: Final = -(1 << 63)
_Y2100: Final = 4_102_444_800
_TIMES: Final[dict[str, int]] = {
    "time_int64_max": _INT64_MAX,
    "time_int64_min": _INT64_MIN,
    "time_1970": 0,
    "time_2100": _Y2100,
}
#: The rate every document carrying one gets: (field, seconds).
_RATES: Final[dict[str, tuple[str, int]]] = {
    "poll_rate_1s": ("pollRate", 1),
    "poll_rate_huge": ("pollRate", 4_000_000_000),
    "post_rate_1s": ("postRate", 1),
}
_RETRY_AFTER: Final[dict[str, bytes]] = {
    "retry_after_1e20": b"100000000000000000000",  # 1e20 seconds, written out
    "retry_after_hundreds_of_digits": b"9" * 300,
    "retry_after_non_ascii": "\u0661\u0662\u0660".encode(),  # ١٢٠ (120 in Arabic-Indic digits)
}
_ROOT = re.compile(rb"\s*(?:<\?xml[^>]*\?>)?\s*<(?P<name>[A-Za-z_][\w.-]*)")
_CLOSED = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, LinkError)

assert set(FAULT_CLASS) == set(HOSTILE_BEHAVIOURS) == set(DESCRIPTIONS)


# ------------------------------------------------------------------------------------- documents


class HostileState(UtilityState):
    """The utility's state model, whose answers are rewritten while a document-level window is
    open (amplification, absurd values, redirects). Also the one place that knows the windows."""

    def __init__(
        self, scenario: Scenario, *, start: float, windows: Sequence[HostileWindow]
    ) -> None:
        super().__init__(scenario, start=start)
        self.windows = tuple(windows)
        #: Answers rewritten and connections taken over, by behaviour.
        self.injected: Counter[str] = Counter()
        self._fresh_names = itertools.count()
        self._templates: dict[str, r.DERControl] = {}
        #: Set while a hostile connection handler asks for the normal answer it will garble.
        self.raw = False

    def behaviour_at(self, now: float) -> HostileName | None:
        """The behaviour whose window is open at server time ``now`` (the first, if several)."""
        for window in self.windows:
            if self.start + window.at_s <= now < self.start + window.at_s + window.duration_s:
                return window.behaviour
        return None

    def handle(
        self,
        method: str,
        target: str,
        body: bytes,
        lfdi: str | int | None,
        now: float,
        *,
        content_type: str | None = None,
    ) -> SimReply:
        name = self.behaviour_at(now)
        if name is not None and name in CONNECTION_LEVEL and not self.raw:
            # A connection opened before the window: drop it, so the client's next connection
            # meets the fault (the hostile handlers answer with ``raw`` set).
            return SimReply(0, reset=True, reason=f"hostile: {name} (connection dropped)")
        reply = super().handle(method, target, body, lfdi, now, content_type=content_type)
        if name is None or name in CONNECTION_LEVEL or method.upper() != "GET":
            return reply
        rewritten = self._rewrite(name, target, reply)
        if rewritten is not reply:
            self.injected[name] += 1
        return rewritten

    def _rewrite(self, name: HostileName, target: str, reply: SimReply) -> SimReply:
        reason = f"hostile: {name}"
        if name == "redirect_to_itself":
            return SimReply(301, location=target, reason=reason)
        if name == "redirect_other_origin":
            return SimReply(301, location=_OTHER_ORIGIN + target, reason=reason)
        if reply.status != 200 or not reply.body:
            return reply
        if name == "xml_unique_names":
            return dataclasses.replace(reply, body=self._unique_names(reply.body), reason=reason)
        try:
            document = decode_any(reply.body)
        except Sep2CodecError:  # the normal state only writes valid documents
            return reply
        new: msgspec.Struct | bytes | None = None
        if isinstance(document, r.DERControlList):
            new = self._control_list(name, target, document)
        elif isinstance(document, r.DefaultDERControl):
            base = _absurd_base(name, document.DERControlBase, default=True)
            if base is not None:
                new = msgspec.structs.replace(document, DERControlBase=base)
        elif isinstance(document, r.Time) and name in _TIMES:
            new = msgspec.structs.replace(document, currentTime=_TIMES[name])
        elif name in _RATES and _RATES[name][0] in type(document).__struct_fields__:
            field, seconds = _RATES[name]
            new = msgspec.structs.replace(document, **{field: seconds})
        if new is None:
            return reply
        data = new if isinstance(new, bytes) else encode(new, csipaus_ns=self.quirks.csipaus_ns)
        return dataclasses.replace(reply, body=data, reason=reason)

    def _control_list(
        self, name: HostileName, target: str, page: r.DERControlList
    ) -> msgspec.Struct | bytes | None:
        if name == "xml_entity_bomb":
            return _entity_bomb(encode(page, csipaus_ns=self.quirks.csipaus_ns))
        if name in ("list_all_million", "list_page_overflow", "list_repeating_page"):
            # Later pages of the real list are empty: copy the first control seen on this list.
            path = target.partition("?")[0]
            if page.DERControl:
                self._templates[path] = page.DERControl[0]
            template = self._templates.get(path)
            return None if template is None else _amplified(name, target, page, template)
        controls = []
        for control in page.DERControl:
            if name in _TIMES:
                interval = msgspec.structs.replace(control.interval, start=_TIMES[name])
                controls.append(msgspec.structs.replace(control, interval=interval))
                continue
            base = _absurd_base(name, control.DERControlBase, default=False)
            if base is None:
                return None
            controls.append(msgspec.structs.replace(control, DERControlBase=base))
        return msgspec.structs.replace(page, DERControl=tuple(controls))

    def _unique_names(self, document: bytes) -> bytes:
        """Element names no document had before (a parser that keeps every name it met grows
        without bound), inside the root element."""
        k = next(self._fresh_names)
        names = "".join(f"<u{k}x{i}>1</u{k}x{i}>" for i in range(_UNIQUE_NAMES)).encode()
        head, close, tail = document.rpartition(b"</")
        return head + names + close + tail


def _absurd_base(name: str, base: r.DERControlBase, *, default: bool) -> r.DERControlBase | None:
    match name:
        case "control_negative_limits":
            return msgspec.structs.replace(
                base,
                opModExpLimW=r.ActivePower(multiplier=0, value=-5000),
                opModImpLimW=r.ActivePower(multiplier=0, value=-3000),
            )
        case "control_fixed_w_327":
            return msgspec.structs.replace(base, opModFixedW=-32700 if default else 32700)
        case "control_max_lim_655":
            return msgspec.structs.replace(base, opModMaxLimW=65500)
    return None


def _query(target: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for key, values in parse_qs(target.partition("?")[2]).items():
        try:
            found[key] = int(values[0])
        except ValueError:
            continue
    return found


def _amplified(
    name: str, target: str, page: r.DERControlList, template: r.DERControl
) -> r.DERControlList:
    """A list that is bigger than it should be: ``all`` of a million (100 distinct controls a
    page), 1,500 items in one page, or the same page whatever ``s`` asks for."""
    query = _query(target)
    first = max(query.get("s", 0), 0)
    if name == "list_all_million":
        total, count = _MILLION, _PAGE
    elif name == "list_page_overflow":
        total, count, first = _OVERFLOW_ITEMS, _OVERFLOW_ITEMS, 0
    else:
        total, count, first = _REPEATING_ALL, _PAGE, 0
    controls = tuple(
        msgspec.structs.replace(
            template,
            href=f"{template.href}x{first + i}",
            mRID=HexBinary128((int(template.mRID) ^ ((first + i + 1) << 64)) & ((1 << 128) - 1)),
        )
        for i in range(count)
    )
    return msgspec.structs.replace(page, all=total, results=count, DERControl=controls)


def _entity_bomb(document: bytes) -> bytes:
    """Billion laughs (10 levels of 10 references) around the document's own root element."""
    found = _ROOT.match(document)
    root = found["name"] if found else b"DERControlList"
    entities = [b'<!ENTITY l0 "lol">']
    for level in range(1, 10):
        refs = b"".join(b"&l%d;" % (level - 1) for _ in range(10))
        entities.append(b'<!ENTITY l%d "%s">' % (level, refs))
    return (
        b'<?xml version="1.0"?>\n<!DOCTYPE %s [\n%s\n]>\n'
        b'<%s xmlns="urn:ieee:std:2030.5:ns" all="1" results="1">&l9;</%s>'
        % (root, b"\n".join(entities), root, root)
    )


# ----------------------------------------------------------------------------------- connections


class HostileUtilityServer(SimUtilityServer):
    """The simulated utility server, hostile while a window of ``windows`` (default: the
    scenario's ``[[hostile]]``) is open. Everything else is :class:`SimUtilityServer`."""

    def __init__(
        self,
        scenario: Scenario,
        tls: TlsMaterial,
        *,
        clock: ServerClock,
        start: float | None = None,
        windows: Sequence[HostileWindow] | None = None,
        profile: IdentityProfile = CORE_2030_5,
        **options: Any,
    ) -> None:
        super().__init__(scenario, tls, clock=clock, start=start, profile=profile, **options)
        # Before any request or action: the hostile state replaces the normal one it wraps.
        seed = self.state.notification_seed
        self.state = HostileState(
            scenario,
            start=self.state.start,
            windows=scenario.hostile if windows is None else windows,
        )
        self.state.notification_seed = seed
        self._profile = profile
        self._h1_context = server_context(tls, alpn=("http/1.1",))
        self._h2_context = server_context(tls, alpn=("h2",))
        #: Server time of every connection accepted (hostile or not).
        self.connection_times: list[float] = []

    @property
    def hostile(self) -> HostileState:
        assert isinstance(self.state, HostileState)
        return self.state

    async def _serve_connection(self, transport: anyio.abc.ByteStream) -> None:
        now = self.clock.now()
        self.connection_times.append(now)
        name = self.hostile.behaviour_at(now)
        if name is None or name not in CONNECTION_LEVEL:
            await super()._serve_connection(transport)
            return
        self.hostile.injected[name] += 1
        try:
            with anyio.move_on_after(_MAX_CONNECTION_S):
                if name in _TLS:
                    await self._tls_fault(name, transport)
                elif name in _H2:
                    await self._h2_fault(name, transport)
                else:
                    await self._h1_fault(name, transport)
        except _CLOSED:
            pass  # the client gave up on us: that is the point
        finally:
            await transport.aclose()

    # -------------------------------------------------------------------------------------- TLS

    async def _tls_fault(self, name: HostileName, transport: anyio.abc.ByteStream) -> None:
        if name == "tls_garbage_after_handshake":
            with anyio.fail_after(_HANDSHAKE_S):
                await TlsStream.handshake(transport, self._h1_context, server_side=True)
            await transport.send(bytes(range(256)) * 16)  # not a TLS record: bytes on the wire
            with anyio.move_on_after(_HANDSHAKE_S):
                while await transport.receive():
                    pass
            return
        # Half a ServerHello: the server's real first flight, cut in the middle.
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = self.ssl_context.wrap_bio(incoming, outgoing, server_side=True)
        with anyio.fail_after(_HANDSHAKE_S):
            incoming.write(await transport.receive())
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError:
            return
        flight = outgoing.read()
        await transport.send(flight[: max(len(flight) // 2, 1)])

    # --------------------------------------------------------------------------------- HTTP/1.1

    async def _accept_tls(
        self, transport: anyio.abc.ByteStream, alpn: str
    ) -> tuple[TlsStream, PeerInfo]:
        context = self._h2_context if alpn == "h2" else self._h1_context
        with anyio.fail_after(_HANDSHAKE_S):
            stream = await TlsStream.handshake(transport, context, server_side=True)
        der = stream.ssl_object.getpeercert(binary_form=True) or b""
        lfdi = lfdi_from_der(der, self._profile) if der else ""
        return stream, PeerInfo(der, lfdi, sfdi_from_lfdi(lfdi) if lfdi else 0, alpn)

    def _normal(self, request: Request, peer: PeerInfo) -> tuple[float, SimReply]:
        self._apply_due()
        now = self.clock.now()
        self.hostile.raw = True
        try:
            reply = self.state.handle(
                request.method,
                request.target,
                request.body,
                peer.lfdi,
                now,
                content_type=request.header("content-type"),
            )
        finally:
            self.hostile.raw = False
        return now, reply

    async def _h1_fault(self, name: HostileName, transport: anyio.abc.ByteStream) -> None:
        stream, peer = await self._accept_tls(transport, "http/1.1")
        try:
            while True:
                request = await _read_h1_request(stream)
                if request is None:
                    return
                now, reply = self._normal(request, peer)
                keep_going = await self._h1_answer(name, stream, request, peer, now, reply)
                if not keep_going:
                    return
        finally:
            await stream.aclose()

    async def _h1_answer(
        self,
        name: HostileName,
        stream: TlsStream,
        request: Request,
        peer: PeerInfo,
        now: float,
        reply: SimReply,
    ) -> bool:
        """Answer one request the hostile way; whether the connection may carry another."""
        body = reply.body or reply.reason.encode()
        status = reply.status
        head = _status_line(status) + _headers(reply, len(body))
        reason = f"hostile: {name}"
        if name in _RETRY_AFTER:
            self._record(now, request, peer, SimReply(503, reason=reason))
            await stream.send(
                b"HTTP/1.1 503 Service Unavailable\r\nretry-after: "
                + _RETRY_AFTER[name]
                + b"\r\ncontent-length: 0\r\n\r\n"
            )
            return True
        if name == "slow_peer":
            self._record(now, request, peer, dataclasses.replace(reply, reason=reason))
            for byte in head + b"\r\n" + body:
                await stream.send(bytes((byte,)))
                await anyio.sleep(_SLOW_BYTE_EVERY_S)
            return True
        self._record(now, request, peer, SimReply(0, reason=reason))
        if name == "http_bad_status_line":
            await stream.send(b"HTTP/1.1 2OO OK\r\n" + _headers(reply, len(body)) + b"\r\n" + body)
        elif name == "http_truncated_body":
            await stream.send(head + b"\r\n" + body[: len(body) // 2])
        elif name == "http_huge_header":
            await stream.send(head)
            filler = b"x-padding: " + b"a" * _HUGE_HEADER_BYTES + b"\r\n"
            for i in range(0, len(filler), _SEND_PIECE):
                await stream.send(filler[i : i + _SEND_PIECE])
            await stream.send(b"\r\n" + body)
            await _drain(stream)
        elif name == "http_oversized_content_length":
            await stream.send(
                _status_line(status) + b"content-type: application/sep+xml\r\n"
                b"content-length: 1000000000000\r\n\r\n" + body
            )
            await _drain(stream)
        elif name == "http_endless_chunked":
            await stream.send(
                _status_line(status) + b"content-type: application/sep+xml\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
            )
            chunk = b"%x\r\n%s\r\n" % (_CHUNK_BYTES, b"<" * _CHUNK_BYTES)
            while True:
                await stream.send(chunk)
                await anyio.sleep(_CHUNK_EVERY_S)
        return False

    # -------------------------------------------------------------------------------------- h2

    async def _h2_fault(self, name: HostileName, transport: anyio.abc.ByteStream) -> None:
        stream, peer = await self._accept_tls(transport, "h2")
        try:
            conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
            conn.initiate_connection()
            await stream.send(conn.data_to_send())
            while True:
                data = await stream.receive()
                events = conn.receive_data(data)
                pending = conn.data_to_send()
                if pending:
                    await stream.send(pending)
                for event in events:
                    if isinstance(event, h2.events.RequestReceived):
                        headers = {_text(k): _text(v) for k, v in event.headers or ()}
                        request = Request(headers.get(":method", "GET"), headers.get(":path", "/"))
                        now, _ = self._normal(request, peer)
                        self._record(now, request, peer, SimReply(0, reason=f"hostile: {name}"))
                        assert event.stream_id is not None
                        await self._h2_misbehave(name, conn, stream, event.stream_id)
                        return
        finally:
            await stream.aclose()

    async def _h2_misbehave(
        self, name: HostileName, conn: h2.connection.H2Connection, stream: TlsStream, sid: int
    ) -> None:
        if name == "h2_ignore_flow_control":
            conn.send_headers(sid, [(":status", "200"), ("content-type", SEP_XML)])
            await stream.send(conn.data_to_send())
            # Never a look at the client's WINDOW_UPDATEs: 4 MiB back to back into its 64 KiB
            # window (a client that acknowledges as it reads sees a body beyond its cap).
            frame = DataFrame(sid, data=b"<" * 16384).serialize()
            for _ in range(_FLOOD_FRAMES):
                await stream.send(frame)
            await _drain(stream)
            return
        encoder = hpack.Encoder()
        await stream.send(HeadersFrame(sid, data=encoder.encode([(":status", "200")])).serialize())
        for i in itertools.count():
            block = encoder.encode([(f"x-junk-{i}", "v" * 16000)], huffman=False)
            await stream.send(ContinuationFrame(sid, data=block[:16384]).serialize())
            await anyio.sleep(_CONTINUATION_EVERY_S)


def _text(value: bytes | str) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _status_line(status: int) -> bytes:
    return b"HTTP/1.1 %d X\r\n" % status


def _headers(reply: SimReply, length: int) -> bytes:
    lines = [b"content-length: %d" % length]
    if reply.body:
        lines.append(b"content-type: " + SEP_XML.encode())
    if reply.location is not None:
        lines.append(b"location: " + reply.location.encode())
    return b"".join(line + b"\r\n" for line in lines)


async def _drain(stream: anyio.abc.ByteStream) -> None:
    """Read until the client hangs up (bounded by the connection's deadline)."""
    while await stream.receive():
        pass


async def _read_h1_request(stream: anyio.abc.ByteStream) -> Request | None:
    """One HTTP/1.1 request (head and ``Content-Length`` body); None when the client hangs up or
    sends something that is not one."""
    buffer = b""
    try:
        while b"\r\n\r\n" not in buffer:
            if len(buffer) > _REQUEST_HEAD_MAX:
                return None
            buffer += await stream.receive()
        head, _, body = buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return None
        headers = tuple(
            (k.strip().lower(), v.strip())
            for k, _, v in (line.partition(":") for line in lines[1:])
        )
        length = int(dict(headers).get("content-length", "0") or 0)
        while len(body) < length:
            body += await stream.receive()
    except (anyio.EndOfStream, ValueError):
        return None
    return Request(parts[0], parts[1], headers, body[:length])


# ---------------------------------------------------------------------------------- scenarios

_BASE = """
name = "hostile {name}"
[server]
epoch = 1764158400
poll_rate_s = 60
post_rate_s = 60

[[programs]]
id = "base"
primacy = 20
default = {{ opModExpLimW = 5000, opModImpLimW = 5000 }}

[[actions]]
at_s = 0
kind = "create_control"
mrid = "A1"
program = "base"
start_s = 30
duration_s = 3600
modes = {{ opModExpLimW = 1500 }}

[[hostile]]
behaviour = "{name}"
at_s = {at_s}
duration_s = {duration_s}
"""

#: Connection-level faults (and redirects, which answer the polls) start after the first walk
#: has registered, so they hit polling as well as the walk they send the gateway back to.
LINK_FAULT_AT_S: Final = 60.0
#: How long a link-level fault lasts (issue 15: at most ~20 connection attempts in 150 s).
LINK_FAULT_S: Final = 150.0


def hostile_scenario(
    name: str, *, at_s: float | None = None, duration_s: float = 240.0
) -> Scenario:
    """A one-program utility with one long control whose server turns ``name`` for a window:
    from ``at_s`` (default: 0 for document faults, :data:`LINK_FAULT_AT_S` for connection faults
    and redirects) for ``duration_s``. Raises ``ScenarioError`` naming an unknown behaviour."""
    if at_s is None:
        late = name in CONNECTION_LEVEL or name.startswith("redirect")
        at_s = LINK_FAULT_AT_S if late and not name.startswith("retry_after") else 0.0
    text = _BASE.format(name=name, at_s=at_s, duration_s=duration_s)
    return parse_scenario(text, source=f"hostile scenario {name!r}")
