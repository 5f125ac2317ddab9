"""Demo PKIs written to disk for the link tests (two independent ones: "a" trusted, "b" foreign),
and an in-memory TLS pump for handshake tests without sockets."""

from __future__ import annotations

import datetime as dt
import ssl
from dataclasses import dataclass
from pathlib import Path

from transport.pki import DemoPki, chain_pem, mint_demo_pki, private_key_pem
from transport.tls import TlsMaterial

__all__ = ["MemoryPair", "PkiFiles", "memory_handshake", "write_pki"]

NOT_BEFORE = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class PkiFiles:
    pki: DemoPki
    directory: Path
    ca: str
    device: TlsMaterial
    server: TlsMaterial


def write_pki(directory: Path, *, key_password: bytes | None = None) -> PkiFiles:
    directory.mkdir(parents=True, exist_ok=True)
    pki = mint_demo_pki(NOT_BEFORE)

    def put(name: str, data: bytes) -> str:
        path = directory / name
        path.write_bytes(data)
        return str(path)

    ca = put("ca.pem", chain_pem([pki.serca.certificate]))
    device = TlsMaterial(
        put("device.pem", chain_pem(pki.device_chain())),
        put("device.key", private_key_pem(pki.device.key, key_password)),
        ca,
        key_password,
    )
    server = TlsMaterial(
        put("server.pem", chain_pem(pki.server_chain())),
        put("server.key", private_key_pem(pki.server.key, key_password)),
        ca,
        key_password,
    )
    return PkiFiles(pki, directory, ca, device, server)


@dataclass
class MemoryPair:
    client: ssl.SSLObject
    server: ssl.SSLObject
    client_error: ssl.SSLError | None
    server_error: ssl.SSLError | None
    to_client: bytes  # everything the server sent, in order (the client's captured flight)
    to_server: bytes


def memory_handshake(
    client_ctx: ssl.SSLContext, server_ctx: ssl.SSLContext, session: ssl.SSLSession | None = None
) -> MemoryPair:
    """Drive both handshakes by moving bytes between memory BIOs until both finish or fail."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_side=False)
    if session is not None:
        client.session = session
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    errors: dict[str, ssl.SSLError | None] = {"client": None, "server": None}
    done = {"client": False, "server": False}
    to_client = bytearray()
    to_server = bytearray()
    for _ in range(20):
        for name, obj in (("client", client), ("server", server)):
            if done[name] or errors[name] is not None:
                continue
            try:
                obj.do_handshake()
                done[name] = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as exc:
                errors[name] = exc
        moved = c_out.read()
        if moved:
            to_server += moved
            s_in.write(moved)
        moved_back = s_out.read()
        if moved_back:
            to_client += moved_back
            c_in.write(moved_back)
        if (
            not moved
            and not moved_back
            and (all(done.values()) or any(e is not None for e in errors.values()))
        ):
            break
    return MemoryPair(
        client, server, errors["client"], errors["server"], bytes(to_client), bytes(to_server)
    )
