"""The in-memory event store: the same contract as the SQLite store, for simulations and tests."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence

from events.catalogue import Catalogue
from events.envelope import Append, RawRecord, Recorded
from events.hashchain import GENESIS
from events.log_events import Snapshot, snapshot_stream
from events.store import EventStore, Head, plan_append

__all__ = ["MemoryEventStore"]


class MemoryEventStore(EventStore):
    """Holds records in lists; appends are atomic because planning happens before any mutation."""

    def __init__(self, catalogue: Catalogue, *, where: str = "<memory>") -> None:
        self.catalogue = catalogue
        self.where = where
        self._records: list[Recorded] = []
        self._raw: list[RawRecord] = []
        self._versions: dict[str, int] = {}
        self._by_stream: dict[str, list[int]] = {}

    def append(self, appends: Sequence[Append]) -> list[Recorded]:
        plan = plan_append(appends, self.catalogue, self.head(), self.stream_version)
        for row, record in zip(plan.rows, plan.records, strict=True):
            self._raw.append(RawRecord(*row))
            self._records.append(record)
            self._by_stream.setdefault(record.stream, []).append(record.seq)
        self._versions.update(plan.versions)
        return plan.records

    def read(
        self,
        from_seq: int = 1,
        to_seq: int | None = None,
        *,
        stream: str | None = None,
        types: Iterable[str] | None = None,
    ) -> Iterator[Recorded]:
        end = len(self._records) if to_seq is None else min(to_seq, len(self._records))
        wanted = None if types is None else frozenset(types)
        if stream is not None:
            seqs = self._by_stream.get(stream, [])
            candidates: Iterable[Recorded] = (
                self._records[s - 1] for s in seqs[bisect.bisect_left(seqs, from_seq) :] if s <= end
            )
        else:
            candidates = (self._records[i] for i in range(max(from_seq, 1) - 1, end))
        for record in candidates:
            if wanted is None or self._raw[record.seq - 1].type in wanted:
                yield record

    def read_raw(self, from_seq: int = 1) -> Iterator[RawRecord]:
        yield from self._raw[max(from_seq, 1) - 1 :]

    def first_seq_since(self, server_time: float) -> int:
        for raw in self._raw:
            if raw.server_time >= server_time:
                return raw.seq
        return len(self._raw) + 1

    def head(self) -> Head:
        if not self._raw:
            return Head(0, GENESIS)
        last = self._raw[-1]
        return Head(last.seq, last.hash)

    def stream_version(self, stream: str) -> int:
        return self._versions.get(stream, 0)

    def latest_snapshot(
        self, projection: str, *, at_or_before: int | None = None
    ) -> Recorded | None:
        seqs = self._by_stream.get(snapshot_stream(projection), [])
        for seq in reversed(seqs):
            record = self._records[seq - 1]
            body = record.event
            if not isinstance(body, Snapshot):
                continue
            if at_or_before is None or body.through_seq <= at_or_before:
                return record
        return None
