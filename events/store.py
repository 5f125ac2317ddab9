"""The event store contract shared by the SQLite and in-memory backends, and log verification.

One writer appends batches; a batch is all-or-nothing and, for the durable backend, synchronously
committed before ``append`` returns (group commit: many events, one sync). Readers get records in
global sequence order.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any, Final

import msgspec

from events.base import Event
from events.catalogue import Catalogue
from events.envelope import Append, RawRecord, Recorded
from events.errors import ConcurrencyConflict, LogDamaged, UnknownEventTag
from events.hashchain import GENESIS, link
from events.log_events import Snapshot, snapshot_stream
from events.replay import Projection

__all__ = ["Head", "EventStore", "Problem", "VerifyReport", "verify_records"]

SNAPSHOT_TAG: Final = "log.snapshot.v1"


class Head(msgspec.Struct, frozen=True):
    """The newest record's position and hash: an operator can write it down as an external anchor."""

    seq: int
    hash: bytes


class Problem(msgspec.Struct, frozen=True):
    """What is wrong and the first record it concerns (``None``: the file, not one record)."""

    seq: int | None
    why: str


class VerifyReport(msgspec.Struct, frozen=True, kw_only=True):
    where: str
    records: int
    head: Head
    problem: Problem | None = None
    warnings: tuple[str, ...] = ()
    snapshots_checked: int = 0

    @property
    def ok(self) -> bool:
        return self.problem is None

    def describe(self) -> str:
        if self.problem is None:
            return (
                f"{self.where}: intact: {self.records} records, hash chain verified through record "
                f"{self.head.seq} (head {self.head.hash.hex()}), "
                f"{self.snapshots_checked} snapshots re-folded and equal"
            )
        if self.problem.seq is None:
            return f"{self.where}: {self.problem.why}"
        return f"{self.where}: record {self.problem.seq}: {self.problem.why}"


class EventStore(abc.ABC):
    """The contract. ``where`` names the log in every error (a file path, or ``<memory>``)."""

    catalogue: Catalogue
    where: str

    @abc.abstractmethod
    def append(self, appends: Sequence[Append]) -> list[Recorded]:
        """Append every batch atomically, in order; durable when it returns. Raises ConcurrencyConflict."""

    @abc.abstractmethod
    def read(
        self,
        from_seq: int = 1,
        to_seq: int | None = None,
        *,
        stream: str | None = None,
        types: Iterable[str] | None = None,
    ) -> Iterator[Recorded]:
        """Records with ``from_seq <= seq <= to_seq`` in order, optionally of one stream or some tags."""

    @abc.abstractmethod
    def read_raw(self, from_seq: int = 1) -> Iterator[RawRecord]:
        """Records as stored, bodies undecoded (verification, export)."""

    @abc.abstractmethod
    def head(self) -> Head:
        """The newest record's seq and hash (seq 0 and the genesis hash for an empty log)."""

    @abc.abstractmethod
    def stream_version(self, stream: str) -> int:
        """How many records ``stream`` holds (0 if none)."""

    @abc.abstractmethod
    def latest_snapshot(
        self, projection: str, *, at_or_before: int | None = None
    ) -> Recorded | None:
        """The newest snapshot of ``projection`` covering no record after ``at_or_before``."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release the backend's resources; the default has none."""

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append_events(
        self,
        stream: str,
        events: Sequence[Event],
        *,
        server_time: float,
        monotonic: float,
        expected_version: int | None = None,
    ) -> list[Recorded]:
        """Append one stream's events as a batch of its own."""
        return self.append(
            [
                Append(
                    stream=stream,
                    events=events,
                    server_time=server_time,
                    monotonic=monotonic,
                    expected_version=expected_version,
                )
            ]
        )

    def verify(self, projections: Mapping[str, Projection[Any]] | None = None) -> VerifyReport:
        """Check the whole log; see :func:`verify_records`. A damaged file is a failed check."""
        head = self.head()
        try:
            return verify_records(
                self.read_raw(),
                self.catalogue,
                head=head,
                where=self.where,
                projections=projections or {},
                snapshot_through=self._snapshot_through_seqs(),
            )
        except LogDamaged as exc:
            return VerifyReport(
                where=self.where,
                records=exc.after_seq,
                head=head,
                problem=Problem(exc.after_seq + 1, f"unreadable, the file is damaged ({exc.why})"),
            )

    def _snapshot_through_seqs(self) -> dict[str, set[int]]:
        wanted: dict[str, set[int]] = {}
        for record in self.read(types=(SNAPSHOT_TAG,)):
            body = record.event
            if isinstance(body, Snapshot):
                wanted.setdefault(body.projection, set()).add(body.through_seq)
        return wanted


class AppendPlan(msgspec.Struct, gc=False):
    rows: list[tuple[int, str, int, str, float, float, bytes, bytes]]
    records: list[Recorded]
    versions: dict[str, int]


def plan_append(
    appends: Sequence[Append],
    catalogue: Catalogue,
    head: Head,
    version_of: Any,
) -> AppendPlan:
    """Assign seq, stream versions and hash links to a batch; both backends use this one planner.

    ``version_of(stream) -> int`` gives a stream's committed version. Raises ConcurrencyConflict before
    anything is written.
    """
    rows: list[tuple[int, str, int, str, float, float, bytes, bytes]] = []
    records: list[Recorded] = []
    versions: dict[str, int] = {}
    seq = head.seq
    previous = head.hash
    encode = catalogue.encode
    tag = catalogue.tag
    for append in appends:
        stream = append.stream
        version = versions[stream] if stream in versions else version_of(stream)
        if append.expected_version is not None and append.expected_version != version:
            raise ConcurrencyConflict(stream, append.expected_version, version)
        server_time = float(append.server_time)
        monotonic = float(append.monotonic)
        for event in append.events:
            seq += 1
            version += 1
            type_tag = tag(event)
            body = encode(event)
            previous = link(previous, seq, stream, version, type_tag, server_time, monotonic, body)
            rows.append((seq, stream, version, type_tag, server_time, monotonic, body, previous))
            records.append(Recorded(seq, stream, version, server_time, monotonic, event, previous))
        versions[stream] = version
    return AppendPlan(rows=rows, records=records, versions=versions)


def verify_records(
    records: Iterable[RawRecord],
    catalogue: Catalogue,
    *,
    head: Head,
    where: str,
    projections: Mapping[str, Projection[Any]],
    snapshot_through: Mapping[str, set[int]],
) -> VerifyReport:
    """Check a log end to end and name the first bad record.

    Checks, in one pass: the sequence is gapless from 1; each stream's versions are gapless from 1;
    every body decodes with the catalogue and carries the tag its row says; every hash link recomputes;
    the stored head equals the last record; every snapshot covers an earlier record and, for each
    projection given, equals the fold of the records it covers.
    """
    previous = GENESIS
    expected_seq = 1
    versions: dict[str, int] = {}
    warnings: list[str] = []
    # One entry per projection: [name, evolve, state, the seqs its snapshots cover] (a list per
    # fold and no dict look-ups: this loop runs once per record of a log that may hold millions).
    folds: list[list[Any]] = [
        [name, p.evolve, p.initial, snapshot_through.get(name) or None]
        for name, p in projections.items()
    ]
    folded_at: dict[tuple[str, int], bytes] = {}
    snapshots_checked = 0
    count = 0

    def report(problem: Problem | None) -> VerifyReport:
        return VerifyReport(
            where=where,
            records=count,
            head=head,
            problem=problem,
            warnings=tuple(warnings),
            snapshots_checked=snapshots_checked,
        )

    for raw, decoded in _with_bodies_decoded(records, catalogue):
        seq = raw.seq
        if seq != expected_seq:
            why = (
                f"sequence gap: expected record {expected_seq}, found {seq} "
                f"({seq - expected_seq} record(s) missing or reordered)"
                if seq > expected_seq
                else f"sequence out of order: record {seq} follows {expected_seq - 1}"
            )
            return report(Problem(expected_seq if seq > expected_seq else seq, why))
        version = versions.get(raw.stream, 0) + 1
        if raw.version != version:
            return report(
                Problem(seq, f"stream {raw.stream!r} version {raw.version}, expected {version}")
            )
        versions[raw.stream] = version
        if decoded is None:
            try:
                event = catalogue.decode(raw.body)
            except UnknownEventTag as exc:
                return report(Problem(seq, f"unknown event type {exc.tag!r}"))
            except msgspec.MsgspecError as exc:
                return report(Problem(seq, f"body does not decode as {raw.type!r}: {exc}"))
            stored_tag = _stored_tag(raw.body)
        else:
            stored_tag, event = decoded
        if stored_tag != raw.type:
            return report(
                Problem(seq, f"row says type {raw.type!r} but the body is {stored_tag!r}")
            )
        expected_hash = link(
            previous,
            seq,
            raw.stream,
            raw.version,
            raw.type,
            raw.server_time,
            raw.monotonic,
            raw.body,
        )
        if expected_hash != raw.hash:
            return report(
                Problem(
                    seq,
                    "hash chain broken: the record was altered, or a record before it was removed, "
                    "inserted or reordered",
                )
            )
        previous = expected_hash
        count += 1
        expected_seq += 1

        if isinstance(event, Snapshot):
            if event.through_seq >= seq:
                return report(
                    Problem(
                        seq, f"snapshot covers record {event.through_seq}, not earlier than itself"
                    )
                )
            if raw.stream != snapshot_stream(event.projection):
                return report(
                    Problem(seq, f"snapshot of {event.projection!r} in stream {raw.stream!r}")
                )
            projection = projections.get(event.projection)
            if projection is None:
                warnings.append(
                    f"record {seq}: snapshot of unknown projection {event.projection!r} not re-folded"
                )
            else:
                key = (event.projection, event.through_seq)
                expected_state = (
                    folded_at[key]
                    if key in folded_at
                    else projection.encode_state(projection.initial)
                    if event.through_seq == 0
                    else None
                )
                try:
                    snapshot_state = projection.encode_state(
                        projection.decode_state(bytes(event.state))
                    )
                except msgspec.MsgspecError as exc:
                    return report(Problem(seq, f"snapshot state does not decode: {exc}"))
                if expected_state != snapshot_state:
                    return report(
                        Problem(
                            seq,
                            f"snapshot of {event.projection!r} through record {event.through_seq} "
                            "differs from the fold of the records it covers",
                        )
                    )
                snapshots_checked += 1
        for fold in folds:
            fold[2] = state = fold[1](fold[2], event)
            if fold[3] is not None and seq in fold[3]:
                folded_at[(fold[0], seq)] = projections[fold[0]].encode_state(state)

    if head.seq != count or (count and head.hash != previous):
        return report(
            Problem(
                count + 1 if head.seq > count else head.seq,
                f"the log's head says record {head.seq} is the newest but the records end at "
                f"{count}: records were removed from the end, or the head was edited",
            )
        )
    return report(None)


#: Records decoded per call while verifying: large enough to amortise the call, small enough that a
#: chunk holding a bad body (decoded again one by one) costs little.
_VERIFY_CHUNK = 512


def _with_bodies_decoded(
    records: Iterable[RawRecord], catalogue: Catalogue
) -> Iterator[tuple[RawRecord, tuple[str, Event] | None]]:
    """Each record with (stored tag, event) decoded in batches; ``None`` where a batch failed, so the
    caller decodes that record alone and names what is wrong with it."""
    iterator = iter(records)
    while chunk := list(islice(iterator, _VERIFY_CHUNK)):
        decoded = catalogue.decode_stored_batch([raw.body for raw in chunk])
        if decoded is None:
            for raw in chunk:
                yield raw, None
        else:
            yield from zip(chunk, decoded, strict=True)


class _TagOnly(msgspec.Struct):
    type: str = ""


_tag_decoder = msgspec.json.Decoder(_TagOnly)


def _stored_tag(body: bytes) -> str:
    return _tag_decoder.decode(body).type
