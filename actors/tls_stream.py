"""TLS over any anyio byte stream, driven through ``ssl.MemoryBIO``.

anyio's own ``TLSStream`` performs the handshake inside ``wrap()``, which leaves no place to offer
a saved session (TLS 1.2 resumption) and hides the raw handshake bytes. This stream does the same
job with both: ``session=`` is set before the handshake, and the peer's plaintext handshake flight
is kept (bounded) so the link can classify failures and show the peer's certificate chain.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

import anyio
import anyio.abc
from anyio.streams.tls import TLSAttribute

from transport.errors import ConnectionReset, LinkError, ProtocolViolation
from transport.tls import classify_tls_error, peer_certificates

__all__ = ["TlsStream"]

T = TypeVar("T")

_HANDSHAKE_CAPTURE_BYTES = 64 * 1024  # a 2030.5 chain is a few KiB; bound what we keep
_RECEIVE_BYTES = 65536


class TlsStream(anyio.abc.ByteStream):
    """A TLS connection over ``transport``. Create it with ``await TlsStream.handshake(...)``."""

    def __init__(
        self,
        transport: anyio.abc.ByteStream,
        ssl_object: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        role: Literal["client", "server"],
    ) -> None:
        self._transport = transport
        self._ssl = ssl_object
        self._incoming = incoming
        self._outgoing = outgoing
        self._role = role
        self._captured = bytearray()
        self._capturing = True
        self._closed = False

    @classmethod
    async def handshake(
        cls,
        transport: anyio.abc.ByteStream,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        session: ssl.SSLSession | None = None,
    ) -> TlsStream:
        """Run the TLS handshake; raises a typed ``LinkError`` that says why it failed. The
        caller applies the deadline."""
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        ssl_object = context.wrap_bio(incoming, outgoing, server_side=server_side)
        if session is not None:
            ssl_object.session = session  # offered in the ClientHello; the server may decline
        stream = cls(
            transport, ssl_object, incoming, outgoing, "server" if server_side else "client"
        )
        try:
            await stream._call(ssl_object.do_handshake)
        except ssl.SSLError as exc:
            error = classify_tls_error(
                exc, role=stream._role, peer_hello_seen=stream._peer_hello_seen()
            )
            await stream._abort()
            raise error from exc
        except BaseException:
            await stream._abort()
            raise
        stream._capturing = False
        return stream

    def _peer_hello_seen(self) -> bool:
        return bool(self._captured) and self._captured[0] == 0x16

    @property
    def ssl_object(self) -> ssl.SSLObject:
        return self._ssl

    @property
    def session(self) -> ssl.SSLSession | None:
        return self._ssl.session

    @property
    def session_reused(self) -> bool:
        return self._ssl.session_reused

    def peer_chain_der(self) -> list[bytes]:
        """The certificates the peer sent in this handshake (leaf first); after a resumed
        handshake only the leaf, which the session remembers."""
        chain = peer_certificates(bytes(self._captured))
        if not chain:
            leaf = self._ssl.getpeercert(binary_form=True)
            chain = [leaf] if leaf else []
        return chain

    async def _flush(self) -> None:
        data = self._outgoing.read()
        if data:
            try:
                await self._transport.send(data)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
                raise ConnectionReset(
                    f"connection to the peer broke while sending ({exc!r})", by_peer=True
                ) from exc

    async def _fill(self) -> None:
        """Send what is pending, then wait for the peer's next bytes (or its EOF)."""
        await self._flush()
        try:
            data = await self._transport.receive(_RECEIVE_BYTES)
        except anyio.EndOfStream:
            self._incoming.write_eof()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise ConnectionReset(f"connection reset by the peer ({exc!r})", by_peer=True) from exc
        else:
            if self._capturing and len(self._captured) < _HANDSHAKE_CAPTURE_BYTES:
                self._captured += data
            self._incoming.write(data)

    async def _call(self, func: Callable[..., T], *args: Any) -> T:
        while True:
            try:
                result = func(*args)
            except ssl.SSLWantReadError:
                await self._fill()
            except ssl.SSLWantWriteError:
                await self._flush()
            except ssl.SSLError:
                # Send the alert OpenSSL queued, so the peer learns why; the error is ours.
                try:
                    await self._flush()
                except LinkError:
                    pass
                raise
            else:
                await self._flush()
                return result

    async def receive(self, max_bytes: int = _RECEIVE_BYTES) -> bytes:
        if not (self._incoming.pending or self._incoming.eof or self._ssl.pending()):
            # Nothing buffered at either level: a read could only ask for more bytes (by raising
            # SSLWantReadError), so fetch them first and spare the exception.
            await self._fill()
        try:
            data = await self._call(self._ssl.read, max_bytes)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError) as exc:
            # Clean close_notify or a bare TCP close: the HTTP session decides whether the
            # exchange had completed (a close mid-body is a reset at that layer).
            raise anyio.EndOfStream from exc
        except ssl.SSLError as exc:
            raise ProtocolViolation(
                f"TLS record error from the peer: {exc.reason or exc}", by_peer=True
            ) from exc
        if not data:
            raise anyio.EndOfStream
        return data

    async def send(self, item: bytes) -> None:
        try:
            await self._call(self._ssl.write, item)
        except ssl.SSLError as exc:
            raise ConnectionReset(f"TLS write failed: {exc.reason or exc}", by_peer=True) from exc

    async def send_eof(self) -> None:
        raise NotImplementedError("TLS has no half-close; use aclose()")

    async def _abort(self) -> None:
        self._closed = True
        await self._transport.aclose()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            # Best effort close_notify; the peer need not answer it.
            self._ssl.unwrap()
        except ssl.SSLError:
            pass
        try:
            with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                await self._flush()
        except LinkError:
            pass
        await self._transport.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return {
            **self._transport.extra_attributes,
            TLSAttribute.alpn_protocol: self._ssl.selected_alpn_protocol,
            TLSAttribute.cipher: self._ssl.cipher,
            TLSAttribute.peer_certificate: lambda: self._ssl.getpeercert(False),
            TLSAttribute.peer_certificate_binary: lambda: self._ssl.getpeercert(True),
            TLSAttribute.server_side: lambda: self._ssl.server_side,
            TLSAttribute.shared_ciphers: lambda: (
                self._ssl.shared_ciphers() if self._ssl.server_side else None
            ),
            TLSAttribute.ssl_object: lambda: self._ssl,
            TLSAttribute.standard_compatible: lambda: False,
            TLSAttribute.tls_version: self._ssl.version,
        }
