"""Verifying a log: every check on every record, and the first record that fails one.

The checks fall in two independent halves, each a tight loop over a batch of rows:

* :class:`ChainCheck`, the checks that need no decoding: the sequence is gapless from 1, each
  stream's versions are gapless from 1, every hash link recomputes, the stored head is the last
  record;
* :class:`BodyCheck`, the checks that need the body decoded: it decodes with the catalogue, it
  carries the tag its row says, every snapshot covers an earlier record and equals the fold of the
  records it covers; and the projections asked for are folded along the way.

On one record the checks are made in a fixed order (:class:`Check`), so "the first bad record" is
the pair (row, check) that sorts first: whichever half finds it, the verdict is the one a single
pass checking each record in turn would give (:func:`merge`). :func:`verify_records` is that single
pass: it feeds each batch to the chain first and lets the bodies stop exactly where the chain did,
so projections never fold a record that did not verify.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, NamedTuple

import msgspec

from events.catalogue import Catalogue
from events.errors import LogDamaged, UnknownEventTag, shorten
from events.hashchain import GENESIS, Row, first_broken_link
from events.log_events import Snapshot, snapshot_stream
from events.replay import Projection

__all__ = [
    "BodyCheck",
    "ChainCheck",
    "Check",
    "Finding",
    "Head",
    "Problem",
    "VerifyReport",
    "merge",
    "verify_records",
    "verify_records_after",
]


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


class Check(enum.IntEnum):
    """The checks on one record, in the order a single pass makes them."""

    UNREADABLE = 0  # the row could not be read from the file at all
    SEQUENCE = 1
    VERSION = 2
    DECODE = 3
    TAG = 4
    LINK = 5
    SNAPSHOT = 6
    HEAD = 7  # after the last row: the stored head is that row


class Finding(NamedTuple):
    """A failed check: ``row`` records passed every check before it (the report's ``records``)."""

    row: int
    check: Check
    problem: Problem


def first_of(*findings: Finding | None) -> Finding | None:
    """The finding a single pass would have stopped at: the earliest row, then the earliest check."""
    found = [f for f in findings if f is not None]
    return min(found, key=lambda f: (f.row, f.check)) if found else None


def _unreadable(exc: LogDamaged) -> Finding:
    return Finding(
        exc.after_seq,
        Check.UNREADABLE,
        Problem(exc.after_seq + 1, f"unreadable, the file is damaged ({exc.why})"),
    )


_LINK_BROKEN: Final = (
    "hash chain broken: the record was altered, or a record before it was removed, inserted or "
    "reordered"
)


class ChainCheck:
    """Gapless sequence, gapless stream versions, hash links and the head: no body is decoded."""

    __slots__ = ("_expected", "_previous", "_versions", "finding")

    def __init__(self) -> None:
        self._expected = 1
        self._previous = GENESIS
        self._versions: dict[str, int] = {}
        self.finding: Finding | None = None

    def feed(self, rows: Sequence[Row]) -> Finding | None:
        """Check the next rows; the first finding (this or an earlier batch's), else ``None``."""
        if self.finding is not None:
            return self.finding
        expected = self._expected
        versions = self._versions
        bad: Finding | None = None
        for row in rows:
            seq = row[0]
            if seq != expected:
                if seq > expected:
                    why = (
                        f"sequence gap: expected record {expected}, found {seq} "
                        f"({seq - expected} record(s) missing or reordered)"
                    )
                    bad = Finding(expected - 1, Check.SEQUENCE, Problem(expected, why))
                else:
                    why = f"sequence out of order: record {seq} follows {expected - 1}"
                    bad = Finding(expected - 1, Check.SEQUENCE, Problem(seq, why))
                break
            stream = row[1]
            version = versions.get(stream, 0) + 1
            if row[2] != version:
                why = f"stream {shorten(stream)!r} version {row[2]}, expected {version}"
                bad = Finding(expected - 1, Check.VERSION, Problem(seq, why))
                break
            versions[stream] = version
            expected += 1
        start = self._expected - 1
        checked = rows if bad is None else rows[: bad.row - start]
        broken, self._previous = first_broken_link(self._previous, checked)
        if broken is not None:
            bad = Finding(start + broken, Check.LINK, Problem(start + broken + 1, _LINK_BROKEN))
        self._expected = expected
        self.finding = bad
        return bad

    def finish(self, head: Head) -> Finding | None:
        """After the last row: the stored head must be that row, with its hash."""
        if self.finding is not None:
            return self.finding
        count = self._expected - 1
        if head.seq != count or (count and head.hash != self._previous):
            self.finding = Finding(
                count,
                Check.HEAD,
                Problem(
                    count + 1 if head.seq > count else head.seq,
                    f"the log's head says record {head.seq} is the newest but the records end at "
                    f"{count}: records were removed from the end, or the head was edited",
                ),
            )
        return self.finding

    @property
    def records(self) -> int:
        return self._expected - 1


class BodyCheck:
    """Each body decodes and carries its row's tag; snapshots equal the fold; projections folded.

    ``snapshot_through`` gives, per projection, the records its snapshots cover (the fold's state is
    kept as of those records, to compare with the snapshot when it comes).
    """

    def __init__(
        self,
        catalogue: Catalogue,
        projections: Mapping[str, Projection[Any]],
        snapshot_through: Mapping[str, set[int]],
    ) -> None:
        self._catalogue = catalogue
        self._projections = projections
        # One entry per projection: [name, evolve, state, the seqs its snapshots cover] (a list per
        # fold and no dict look-ups: the loop runs once per record of a log that may hold millions).
        # Each folds through its transient when it has one (one copy, then in place).
        self._folds: list[list[Any]] = []
        for name, p in projections.items():
            state, step = p.transient(p.initial)
            self._folds.append([name, step, state, snapshot_through.get(name) or None])
        self._watching = any(fold[3] for fold in self._folds)
        self._folded_at: dict[tuple[str, int], bytes] = {}
        self.rows = 0
        self.finding: Finding | None = None
        #: (row, text): so that a finding of the other half can cut what came after it
        self.warnings: list[tuple[int, str]] = []
        #: the rows whose snapshot was re-folded and found equal
        self.snapshots_checked: list[int] = []

    def feed(self, rows: Sequence[Row], *, stop: Finding | None = None) -> Finding | None:
        """Check and fold the next rows; the first finding (this batch's or an earlier one), else
        ``None``. ``stop`` is the chain's finding: the rows from its row on are not folded, and on
        its row only the checks that come before its own are made."""
        if self.finding is not None:
            return self.finding
        base = self.rows
        end = len(rows)
        if stop is not None and stop.row < base + end:
            end = stop.row - base
            if stop.check > Check.TAG:
                end += 1  # that row's body is still decoded and its tag compared
        else:
            stop = None
        if end <= 0:
            self.finding = stop
            return stop
        window = rows if end == len(rows) else rows[:end]
        decoded = self._catalogue.decode_stored_batch([row[6] for row in window])
        undecodable: Finding | None = None
        if decoded is None:
            decoded, undecodable = self._decode_singly(window, base)
        tags, events = decoded
        folds = self._folds
        watching = self._watching
        stop_row = -1 if stop is None else stop.row - base
        index = 0
        try:
            for row, tag, event in zip(window, tags, events, strict=False):
                if tag != row[3]:
                    self.finding = Finding(
                        base + index,
                        Check.TAG,
                        Problem(
                            row[0],
                            f"row says type {shorten(row[3])!r} but the body is {shorten(tag)!r}",
                        ),
                    )
                    return self.finding
                if index == stop_row:
                    break  # the chain's record: checked up to its own check, never folded
                if type(event) is Snapshot:
                    problem = self._snapshot(row, event, base + index)
                    if problem is not None:
                        self.finding = Finding(base + index, Check.SNAPSHOT, problem)
                        return self.finding
                for fold in folds:
                    fold[2] = state = fold[1](fold[2], event)
                    if watching and fold[3] is not None and row[0] in fold[3]:
                        self._folded_at[(fold[0], row[0])] = self._projections[
                            fold[0]
                        ].encode_state(state)
                index += 1
        finally:
            self.rows = base + index
        self.finding = first_of(undecodable, stop)
        return self.finding

    def _decode_singly(
        self, rows: Sequence[Row], base: int
    ) -> tuple[tuple[list[str], list[Any]], Finding | None]:
        """Decode one by one up to the first body that does not decode, and say what is wrong."""
        catalogue = self._catalogue
        tags: list[str] = []
        events: list[Any] = []
        for index, row in enumerate(rows):
            try:
                event = catalogue.decode(row[6])
            except UnknownEventTag as exc:
                why = f"unknown event type {shorten(exc.tag)!r}"
            except msgspec.MsgspecError as exc:
                why = f"body does not decode as {shorten(row[3])!r}: {shorten(str(exc), 200)}"
            else:
                tags.append(_stored_tag(row[6]))
                events.append(event)
                continue
            return (tags, events), Finding(base + index, Check.DECODE, Problem(row[0], why))
        return (tags, events), None

    def _snapshot(self, row: Row, event: Snapshot, at_row: int) -> Problem | None:
        seq = row[0]
        if event.through_seq >= seq:
            return Problem(
                seq, f"snapshot covers record {event.through_seq}, not earlier than itself"
            )
        if row[1] != snapshot_stream(event.projection):
            return Problem(seq, f"snapshot of {event.projection!r} in stream {row[1]!r}")
        projection = self._projections.get(event.projection)
        if projection is None:
            self.warnings.append(
                (
                    at_row,
                    f"record {seq}: snapshot of unknown projection {event.projection!r} not re-folded",
                )
            )
            return None
        key = (event.projection, event.through_seq)
        expected_state = (
            self._folded_at[key]
            if key in self._folded_at
            else projection.encode_state(projection.initial)
            if event.through_seq == 0
            else None
        )
        try:
            snapshot_state = projection.encode_state(projection.decode_state(bytes(event.state)))
        except msgspec.MsgspecError as exc:
            return Problem(seq, f"snapshot state does not decode: {exc}")
        if expected_state != snapshot_state:
            return Problem(
                seq,
                f"snapshot of {event.projection!r} through record {event.through_seq} "
                "differs from the fold of the records it covers",
            )
        self.snapshots_checked.append(at_row)
        return None


def merge(chain: ChainCheck, bodies: BodyCheck, *, head: Head, where: str) -> VerifyReport:
    """The report of the two halves, as one pass would give it: the first finding of either, the
    record count before it, and only the warnings and snapshot checks of the records before it."""
    finding = first_of(chain.finish(head), bodies.finding)
    if finding is None:
        return VerifyReport(
            where=where,
            records=chain.records,
            head=head,
            warnings=tuple(text for _, text in bodies.warnings),
            snapshots_checked=len(bodies.snapshots_checked),
        )
    return VerifyReport(
        where=where,
        records=finding.row,
        head=head,
        problem=finding.problem,
        warnings=tuple(text for row, text in bodies.warnings if row < finding.row),
        snapshots_checked=sum(1 for row in bodies.snapshots_checked if row < finding.row),
    )


def verify_records(
    batches: Iterable[Sequence[Row]],
    catalogue: Catalogue,
    *,
    head: Head,
    where: str,
    projections: Mapping[str, Projection[Any]],
    snapshot_through: Mapping[str, set[int]],
) -> VerifyReport:
    """Check a log end to end in one pass and name the first bad record.

    Each batch goes through the chain first, then through the bodies, which stop where the chain
    did: the projections fold exactly the records before the first bad one (the forensic fold
    relies on that).
    """
    chain = ChainCheck()
    bodies = BodyCheck(catalogue, projections, snapshot_through)
    try:
        for rows in batches:
            if bodies.feed(rows, stop=chain.feed(rows)) is not None:
                break
    except LogDamaged as exc:
        damaged = _unreadable(exc)
        chain.finding = first_of(chain.finding, damaged)
        bodies.finding = first_of(bodies.finding, damaged)
    return merge(chain, bodies, head=head, where=where)


def verify_records_after(
    batches: Iterable[Sequence[Row]],
    catalogue: Catalogue,
    *,
    next_seq: int,
    previous: bytes,
    versions: Mapping[str, int],
    head: Head,
    where: str,
) -> VerifyReport:
    """:func:`verify_records` for the records from ``next_seq`` on, the record before them having
    the link ``previous`` and each stream the version ``versions`` gives (0 if absent); no
    projection is folded. ``records`` counts from the log's first record, as a whole pass would."""
    chain = ChainCheck()
    chain._expected = next_seq
    chain._previous = previous
    chain._versions = dict(versions)
    bodies = BodyCheck(catalogue, {}, {})
    bodies.rows = next_seq - 1
    try:
        for rows in batches:
            if bodies.feed(rows, stop=chain.feed(rows)) is not None:
                break
    except LogDamaged as exc:
        damaged = _unreadable(exc)
        chain.finding = first_of(chain.finding, damaged)
        bodies.finding = first_of(bodies.finding, damaged)
    return merge(chain, bodies, head=head, where=where)


class _TagOnly(msgspec.Struct):
    type: str = ""


_tag_decoder = msgspec.json.Decoder(_TagOnly)


def _stored_tag(body: bytes) -> str:
    return _tag_decoder.decode(body).type
