"""The tamper-evidence chain: each record's hash covers the previous hash and the record's own bytes.

Editing a body, a time or a stream, deleting a row or swapping two rows changes the hash of that record
and so breaks the link to every record after it; verification names the first record whose stored hash
differs from the recomputed one. The header is JSON (self-delimiting), so field boundaries are unambiguous.
"""

from __future__ import annotations

from hashlib import sha256
from typing import Final

import msgspec

__all__ = ["GENESIS", "link"]

#: The "previous hash" of record 1.
GENESIS: Final = bytes(32)

_encode = msgspec.json.Encoder().encode


def link(
    previous: bytes,
    seq: int,
    stream: str,
    version: int,
    type_tag: str,
    server_time: float,
    monotonic: float,
    body: bytes,
) -> bytes:
    header = _encode((seq, stream, version, type_tag, server_time, monotonic))
    return sha256(previous + header + body).digest()
