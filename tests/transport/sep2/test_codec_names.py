"""Issue 15 point 3, bounded resources: the parser's name dictionary cannot grow with the documents
a server sends. libxml2 interns every element and attribute name in one dictionary per thread that
lxml keeps for the thread's life (a fresh parser shares it), so the decoder admits at most
``MAX_UNKNOWN_NAMES`` names outside the schemas' vocabulary; beyond that, a document bringing new
ones is refused, naming the cap."""

from __future__ import annotations

import gc

import pytest

from transport.sep2 import DocumentRejected, codec, decode, decoding
from transport.sep2 import resources as r

TIME = (
    '<Time xmlns="urn:ieee:std:2030.5:ns" href="/tm">{extra}<currentTime>1700000000</currentTime>'
    "<dstEndTime>0</dstEndTime><dstOffset>0</dstOffset><dstStartTime>0</dstStartTime>"
    "<quality>7</quality><tzOffset>0</tzOffset></Time>"
)


def time_doc(names: list[str]) -> bytes:
    return TIME.format(extra="".join(f'<{n} {n}a="1"/>' for n in names)).encode()


def test_bounded_names_a_document_bringing_new_unknown_names_beyond_the_cap_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(decoding, "_NAMES", codec.NameBudget(100))
    assert decode(time_doc([f"a{i}" for i in range(40)]), r.Time).currentTime == 1700000000
    assert decode(time_doc([f"b{i}" for i in range(10)]), r.Time).currentTime == 1700000000
    with pytest.raises(DocumentRejected, match="never seen before, beyond the 100"):
        decode(time_doc([f"c{i}" for i in range(60)]), r.Time)
    # Names already admitted, and the schemas' own, stay welcome.
    assert decode(time_doc([f"a{i}" for i in range(40)]), r.Time).currentTime == 1700000000
    assert decode(time_doc([]), r.Time).currentTime == 1700000000


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 1e6


def test_bounded_names_memory_stays_flat_whatever_names_a_server_invents(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """~1.9 MB per response before: 150 documents of 2,000 new names each grew RSS by ~15 MB."""
    monkeypatch.setattr(decoding, "_NAMES", codec.NameBudget(codec.MAX_UNKNOWN_NAMES))
    gc.collect()
    start = _rss_mb()
    for i in range(150):
        try:
            decode(time_doc([f"u{i}x{j}abcdefghij" for j in range(2000)]), r.Time)
        except DocumentRejected:
            pass
    gc.collect()
    assert _rss_mb() - start < 5.0
