"""The tamper-evidence chain: each record's hash covers the previous hash and the record's own bytes.

Editing a body, a time or a stream, deleting a row or swapping two rows changes the hash of that record
and so breaks the link to every record after it; verification names the first record whose stored hash
differs from the recomputed one. The header is JSON (self-delimiting), so field boundaries are unambiguous.
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import sha256
from typing import Final

import msgspec

__all__ = ["GENESIS", "Row", "first_broken_link", "link"]

#: The "previous hash" of record 1.
GENESIS: Final = bytes(32)

#: A record as stored, in column order: seq, stream, version, type, server_time, monotonic, body,
#: hash (the fields of :class:`events.envelope.RawRecord`, as a tuple: what SQLite hands back).
Row = tuple[int, str, int, str, float, float, bytes, bytes]

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


def first_broken_link(previous: bytes, rows: Sequence[Row]) -> tuple[int | None, bytes]:
    """Recompute each row's link from ``previous`` (the link before the first row) and compare it
    with the hash the row stores: the index of the first row that differs (``None``: none), and the
    last link that matched. The header is the row's first six fields, exactly as :func:`link` makes it.
    """
    encode = _encode
    for index, row in enumerate(rows):
        digest = sha256(previous + encode(row[:6]) + row[6]).digest()
        if digest != row[7]:
            return index, previous
        previous = digest
    return None, previous
