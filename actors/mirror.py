"""The mirror actor: the site's and the DER's MirrorUsagePoints and their readings (PROTOCOL.md §2.8).

It creates (or finds) two MUPs — the site (roleFlags 0x03: premises aggregation point, is PEV… as the
CSIP-AUS test procedures use) and the DER (0x49) — each with one MirrorMeterReading per quantity
carrying only its ReadingType, then posts the interval *averages* the hardware actor summarises as
MirrorReadingSets at the server's postRate, on whole minutes, one POST at a time. A 404 from a MUP
means the server lost it: it is created again.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from typing import Final

import anyio
import msgspec
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream

from actors.clock import Clock
from actors.drivers.base import Telemetry
from actors.hardware import member_telemetry
from actors.link import HttpFailure, Link
from actors.log_writer import LogWriter
from actors.mailbox import Latest
from actors.registration import MirrorTargets
from events.base import Event
from events.der_events import DerMemberSampled, DerReadingPosted
from events.envelope import Append
from events.hardware_events import TelemetrySampled
from events.mirror_events import MIRROR_STREAM, ReadingPosted
from events.registration_events import registration_event_stream
from events.store import EventStore
from events.telemetry import IntervalSummary, MeasurementPoint, Quantity
from statemachines.polling import PollSchedule
from statemachines.telemetry import IntervalAggregator, LateSample
from transport.errors import LinkError
from transport.identity import IdentityProfile, make_mrid
from transport.sep2 import resources as r
from transport.sep2.hexbinary import HexBinary16, HexBinary128, HexBinary160
from transport.sep2.mapping import reading_set_to_wire, reading_type_for

__all__ = [
    "DerMirrorActor",
    "MirrorActor",
    "MirrorStatistics",
    "BACKLOG_PACE_S",
    "MAX_SETS_PER_POST",
    "POST_GRACE_S",
    "ROLE_FLAGS",
    "due_interval",
    "merge_summaries",
    "unposted_intervals",
]

TELEMETRY_TAG: Final = "hardware.telemetry.v1"
POSTED_TAG: Final = "mirror.reading_posted.v1"

ROLE_FLAGS: Final = {MeasurementPoint.SITE: 0x03, MeasurementPoint.DER: 0x49}
POSTED: Final = {
    MeasurementPoint.SITE: (
        Quantity.ACTIVE_POWER_W,
        Quantity.REACTIVE_POWER_VAR,
        Quantity.VOLTAGE_V,
        Quantity.FREQUENCY_HZ,
    ),
    MeasurementPoint.DER: (
        Quantity.ACTIVE_POWER_W,
        Quantity.REACTIVE_POWER_VAR,
        Quantity.STORED_ENERGY_WH,
    ),
}
#: Intervals kept while the server cannot take them (a day of 5-minute posts per quantity).
MAX_BACKLOG: Final = 288
#: How long a post instant waits for the hardware actor to summarise the interval that has just
#: ended (its first sample at or after the boundary, one device read under its I/O deadline):
#: a few seconds, never a whole cycle.
POST_GRACE_S: Final = 10.0
#: A backlog (after an outage) goes as batches of MirrorReadingSets, at most this many per POST
#: (an hour of 5-minute readings) ...
MAX_SETS_PER_POST: Final = 12
#: ... and at most one such POST per this many seconds.
BACKLOG_PACE_S: Final = 1.0


class MirrorStatistics(msgspec.Struct, frozen=True):
    mups_created: int
    sets_posted: int
    post_failures: int
    dropped: int


class MirrorActor:
    def __init__(
        self,
        *,
        link: Link,
        log: LogWriter,
        clock: Clock,
        lfdi: str,
        pen: int,
        profile: IdentityProfile,
        summaries: MemoryObjectReceiveStream[list[IntervalSummary]],
        targets: Latest[MirrorTargets],
        store: EventStore | None = None,
        interval_s: int | None = None,
    ) -> None:
        """``store``/``interval_s``: rebuild, on start, the backlog of intervals the log has samples
        for but no ``mirror.reading_posted.v1`` (readings of an outage survive a restart)."""
        self._link = link
        self._log = log
        self._clock = clock
        self._lfdi = lfdi
        self._pen = pen
        self._profile = profile
        self._summaries = summaries
        self._targets = targets
        self._store = store
        self._interval_s = interval_s
        self._schedule = PollSchedule()
        self._mups: dict[MeasurementPoint, str] = {}
        #: When each MirrorUsagePoint was found or created (server time): see _forget_lost.
        self._mup_known_s: dict[MeasurementPoint, float] = {}
        self._backlog: dict[MeasurementPoint, dict[Quantity, list[IntervalSummary]]] = defaultdict(
            lambda: defaultdict(list)
        )
        self._created = self._posted = self._failures = self._dropped = 0
        #: The end of the latest interval the hardware actor has summarised (server clock).
        self._closed_until = -math.inf
        #: No POST before this (monotonic): the pace of a backlog.
        self._paced_until = -math.inf
        #: The server refused a batch of MirrorReadingSets: one per POST from then on.
        self._one_set_per_post = False

    def statistics(self) -> MirrorStatistics:
        return MirrorStatistics(self._created, self._posted, self._failures, self._dropped)

    def _mrid(self, *parts: str) -> HexBinary128:
        digest = hashlib.sha256(":".join((self._lfdi, *parts)).encode()).digest()
        return HexBinary128(
            int(make_mrid(int.from_bytes(digest[:12], "big"), self._pen, self._profile), 16)
        )

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with self._summaries:
            if self._store is not None and self._interval_s is not None:
                self._keep(self._unposted(self._store, self._interval_s))
            task_status.started()
            target = self._forget_lost(await self._targets.take())
            await self._record(
                self._schedule.post_rate_seen(
                    "mirror",
                    target.post_rate_s,
                    self._clock.server_time(),
                    sent_s=target.post_rate_sent_s,
                )
            )
            while True:
                try:
                    target = self._forget_lost(self._targets.take_nowait())
                    await self._record(
                        self._schedule.post_rate_seen(
                            "mirror",
                            target.post_rate_s,
                            self._clock.server_time(),
                            sent_s=target.post_rate_sent_s,
                        )
                    )
                except anyio.WouldBlock:
                    pass
                deadline = self._schedule.next_deadline()
                assert deadline is not None
                with anyio.move_on_after(max(deadline - self._clock.server_time(), 0.0)):
                    batch = await self._summaries.receive()
                    self._keep(batch)
                    continue
                await self._await_closing_interval()
                latest = self._targets.peek()
                if latest is not None:
                    self._forget_lost(latest)  # news of lost MirrorUsagePoints since the wait began
                await self._post_due(target)

    async def _await_closing_interval(self) -> None:
        """PROTOCOL.md §2 step 8: each interval is posted at the first post instant after it
        closes. The hardware actor summarises an interval at its first sample at or after the
        boundary, a moment *after* the post instant on the same boundary: wait for that summary (at
        most ``POST_GRACE_S``), or the interval would wait a whole cycle for the next instant."""
        if self._interval_s is None:
            return
        now = self._clock.server_time()
        boundary = now - now % self._interval_s
        with anyio.move_on_after(POST_GRACE_S):
            while self._closed_until < boundary:
                self._keep(await self._summaries.receive())

    def _unposted(self, store: EventStore, interval_s: int) -> list[IntervalSummary]:
        return unposted_intervals(store, interval_s, before_s=self._clock.server_time())

    #: The MirrorUsagePoints this actor keeps, in posting order.
    _POINTS: tuple[MeasurementPoint, ...] = (MeasurementPoint.SITE, MeasurementPoint.DER)

    def _description(self, point: MeasurementPoint) -> str:
        return f"sep2gw {point.value}"

    def _forget_lost(self, target: MirrorTargets) -> MirrorTargets:
        """§2.8: MirrorUsagePoints the server no longer lists (``target.listed``, from the
        registration actor's re-read of the list) are created again before the next post."""
        if target.listed is not None:
            asked_s = target.listed_at_s if target.listed_at_s is not None else float("inf")
            for point, href in list(self._mups.items()):
                # One found or created since that listing was asked for cannot be in it.
                if href not in target.listed and self._mup_known_s.get(point, 0.0) < asked_s:
                    del self._mups[point]
        return target

    def _keep(self, batch: list[IntervalSummary]) -> None:
        for summary in batch:
            self._closed_until = max(self._closed_until, summary.start_s + summary.interval_s)
            if summary.quantity in POSTED.get(summary.point, ()):
                queue = self._backlog[summary.point][summary.quantity]
                queue.append(summary)
                if len(queue) > MAX_BACKLOG:
                    del queue[0]
                    self._dropped += 1

    async def _record(self, events: list[Event]) -> None:
        if events:
            reading = self._clock.read()
            await self._log.append(
                [
                    Append(
                        stream=registration_event_stream(events[0]),
                        events=events,
                        server_time=reading.server_time,
                        monotonic=reading.monotonic,
                    )
                ]
            )

    async def _post_due(self, target: MirrorTargets) -> None:
        """One post instant. The answers' records are held by the log writer as they come
        (``_posted_record``) and written at the end with the instant's bookkeeping, in one
        transaction (a commit per reading was 7 of a site's 18 a minute). Whatever another actor
        appends meanwhile is written after them, so the log's order is unchanged; if the instant
        ends in an error or a cancellation they stay held, written with the next append or by
        the writer on its way out."""
        for point in self._POINTS:
            try:
                await self._post_point(target, point)
            except LinkError:
                self._failures += 1  # offline: all kept in the backlog for the next post instant
                break
            except HttpFailure:
                # This mirror failed this time (kept, tried again at the next post instant); the
                # other one's readings still go out.
                self._failures += 1
        await self._record(self._schedule.posted("mirror", self._clock.server_time()))
        await self._log.flush()

    async def _post_point(self, target: MirrorTargets, point: MeasurementPoint) -> None:
        """PROTOCOL.md §2 step 8: each quantity's due intervals as MirrorReadingSets of one
        MirrorMeterReading, sequentially. A backlog goes as batches of at most
        ``MAX_SETS_PER_POST`` sets, one POST per ``BACKLOG_PACE_S`` (a server back from an outage
        is not sent a day of readings in one second); a server that refuses a batch with a 4xx is
        sent one set per POST from then on (it may not take several)."""
        for quantity, queue in self._backlog[point].items():
            while queue:
                parts = self._next_batch(queue, target.post_rate_s)
                if not parts:
                    break  # the post-rate interval in progress: posted once it is whole
                sets = [merge_summaries(taken, target.post_rate_s) for taken in parts]
                consumed = sum(len(taken) for taken in parts)
                mmr = r.MirrorMeterReading(
                    mRID=self._mrid(point.value, quantity.value),
                    MirrorReadingSet=tuple(
                        reading_set_to_wire(
                            summary,
                            int(self._mrid(point.value, quantity.value, str(summary.start_s))),
                        )
                        for summary in sets
                    ),
                    ReadingType=reading_type_for(quantity, sets[0].interval_s),
                )
                href = await self._mup(target, point)
                if self._clock.monotonic() < self._paced_until:
                    await self._log.flush()  # nothing answered waits through a pause
                    await self._clock.sleep_until_monotonic(self._paced_until)
                try:
                    try:
                        await self._link.post(href, mmr)
                    except HttpFailure as failure:
                        if failure.status != 404:
                            raise
                        self._mups.pop(point, None)  # the server lost our MUP: create it again
                        await self._link.post(await self._mup(target, point), mmr)
                except HttpFailure as failure:
                    if not _refused_for_good(failure.status):
                        raise
                    if len(sets) > 1:
                        self._one_set_per_post = True  # try them again one by one
                        continue
                    # 4xx: this reading will never be accepted; retrying it would hold back
                    # every reading queued behind it (as Responses: PROTOCOL.md §4 rule 16).
                    del queue[:consumed]
                    self._dropped += 1
                    for taken in parts:
                        for part in taken:
                            self._log.hold([self._posted_record(part, refused=True)])
                    continue
                finally:
                    if len(sets) > 1:
                        self._paced_until = self._clock.monotonic() + BACKLOG_PACE_S
                del queue[:consumed]
                self._posted += 1
                # One record per interval the hardware summarised: what a restart's backlog
                # rebuild (unposted_intervals) compares against.
                for taken in parts:
                    for part in taken:
                        self._log.hold([self._posted_record(part, refused=False)])

    def _next_batch(
        self, queue: list[IntervalSummary], post_rate_s: int
    ) -> list[list[IntervalSummary]]:
        """The whole intervals at the head of ``queue`` that go in one POST, each as the summaries
        it merges: up to ``MAX_SETS_PER_POST`` (1 once the server refused a batch), all of one
        length (one ReadingType per MirrorMeterReading)."""
        limit = 1 if self._one_set_per_post else MAX_SETS_PER_POST
        parts: list[list[IntervalSummary]] = []
        at = 0
        length: int | None = None
        while at < len(queue) and len(parts) < limit:
            taken = due_interval(queue[at:], post_rate_s)
            if not taken:
                break
            merged = merge_summaries(taken, post_rate_s).interval_s
            if length is not None and merged != length:
                break
            length = merged
            parts.append(taken)
            at += len(taken)
        return parts

    def _posted_record(self, summary: IntervalSummary, *, refused: bool) -> Append:
        """The record of the server's answer for an interval, made as the answer comes; once
        written (the end of the post instant: ``_post_due``), a restart never posts this interval
        again (one between the answer and the write posts it again, as the same
        MirrorReadingSet mRID)."""
        reading = self._clock.read()
        return Append(
            stream=MIRROR_STREAM,
            events=(self._posted_event(summary, refused=refused, at_s=reading.server_time),),
            server_time=reading.server_time,
            monotonic=reading.monotonic,
        )

    def _posted_event(self, summary: IntervalSummary, *, refused: bool, at_s: float) -> Event:
        return ReadingPosted(
            point=summary.point,
            quantity=summary.quantity,
            start_s=summary.start_s,
            interval_s=summary.interval_s,
            at_s=at_s,
            refused=refused,
        )

    async def _mup(self, target: MirrorTargets, point: MeasurementPoint) -> str:
        href = self._mups.get(point)
        if href is not None:
            return href
        mrid = self._mrid(point.value)
        _, existing = await self._link.get_list(
            target.mup_list, r.MirrorUsagePointList, "MirrorUsagePoint"
        )
        found: r.MirrorUsagePoint | None = next(
            (m for m in existing if int(m.mRID) == int(mrid) and m.href), None
        )
        if found is not None and found.href is not None:
            self._mups[point] = found.href
            self._mup_known_s[point] = self._clock.server_time()
            return str(found.href)
        mup = r.MirrorUsagePoint(
            mRID=mrid,
            description=self._description(point),
            roleFlags=HexBinary16(ROLE_FLAGS[point]),
            serviceCategoryKind=0,
            status=1,
            deviceLFDI=HexBinary160(int(self._lfdi, 16)),
            MirrorMeterReading=tuple(
                r.MirrorMeterReading(
                    mRID=self._mrid(point.value, q.value),
                    description=f"{self._description(point).removeprefix('sep2gw ')} {q.value}",
                    ReadingType=reading_type_for(q, target.post_rate_s),
                )
                for q in POSTED[point]
            ),
        )
        location = await self._link.post(target.mup_list, mup)
        if location is None:
            raise HttpFailure(
                "POST", target.mup_list, 201, why="MirrorUsagePoint created without a Location"
            )
        self._created += 1
        self._mups[point] = location
        self._mup_known_s[point] = self._clock.server_time()
        return location


def due_interval(queue: list[IntervalSummary], post_rate_s: int) -> list[IntervalSummary]:
    """The summaries at the head of ``queue`` that make up the next interval to post.

    Readings are averages over the *server's* post interval (PROTOCOL.md §2 step 8; the
    EndDevice's postRate wins over the local interval the hardware summarises at): when the
    postRate is a whole multiple of the hardware's interval, consecutive summaries within one
    postRate-aligned interval are posted as one average, once that interval is over (a summary of a
    later interval is queued, or the last one reaches its end). Otherwise each summary goes as is.
    """
    first = queue[0]
    step = first.interval_s
    if post_rate_s <= step or post_rate_s % step:
        return [first]
    end = first.start_s - first.start_s % post_rate_s + post_rate_s
    taken: list[IntervalSummary] = []
    for summary in queue:
        if summary.start_s >= end or summary.interval_s != step:
            return taken  # a later interval (or another footing) has begun: this one is whole
        taken.append(summary)
    last = taken[-1]
    return taken if last.start_s + last.interval_s >= end else []


def merge_summaries(parts: list[IntervalSummary], post_rate_s: int) -> IntervalSummary:
    """One average (weighted by samples) over the postRate-aligned interval ``parts`` fall in, from
    the first part's start: after a rate change, a restart or a gap, the first interval may be
    shorter, never overlapping one already posted."""
    first = parts[0]
    step = first.interval_s
    if len(parts) == 1 and (post_rate_s <= step or post_rate_s % step):
        return first
    end = first.start_s - first.start_s % post_rate_s + post_rate_s
    samples = sum(p.samples for p in parts)
    mean = (
        sum(p.mean * p.samples for p in parts) / samples
        if samples
        else sum(p.mean for p in parts) / len(parts)
    )
    return IntervalSummary(
        point=first.point,
        quantity=first.quantity,
        start_s=first.start_s,
        interval_s=end - first.start_s,
        mean=mean,
        minimum=min(p.minimum for p in parts),
        maximum=max(p.maximum for p in parts),
        samples=samples,
    )


def _refused_for_good(status: int) -> bool:
    """4xx other than 404 (handled: the MUP is re-created) and 429 (back off, then retry)."""
    return 400 <= status < 500 and status not in (404, 429)


def unposted_intervals(
    store: EventStore, interval_s: int, *, before_s: float
) -> list[IntervalSummary]:
    """The interval averages the log's samples give for every interval that ended before the
    interval in progress at ``before_s`` and that no ``mirror.reading_posted.v1`` covers, oldest first.

    The interval in progress is left to the hardware actor, which folds its earlier samples back in
    on start (:func:`actors.hardware.samples_of_interval`), so it is summarised once, whole. Only
    the last ``MAX_BACKLOG`` intervals are looked at: the backlog drops older ones anyway."""
    aggregator = IntervalAggregator(interval_s)
    current = aggregator.start_of(before_s)
    posted: set[tuple[MeasurementPoint, Quantity, int]] = set()
    summaries: list[IntervalSummary] = []
    # Only the intervals the backlog can hold are rebuilt (older ones would be dropped as soon as
    # they were kept): a gateway restarted on a year of log reads hours of it, not the year.
    horizon = store.first_seq_since(current - (MAX_BACKLOG + 1) * interval_s)
    for record in store.read(horizon, types=(TELEMETRY_TAG, POSTED_TAG)):
        event = record.event
        if isinstance(event, ReadingPosted):
            posted.add((event.point, event.quantity, event.start_s))
        elif isinstance(event, TelemetrySampled) and aggregator.start_of(event.at_s) < current:
            try:
                summaries += aggregator.add(_telemetry(event).samples())
            except LateSample:
                continue  # a sample from before a backwards clock step: it was a gap live too
    summaries += [s for s in aggregator.close_due(current) if s.start_s < current]
    return [s for s in summaries if (s.point, s.quantity, s.start_s) not in posted]


def _telemetry(event: TelemetrySampled) -> Telemetry:
    return Telemetry(**msgspec.structs.asdict(event))


class DerMirrorActor(MirrorActor):
    """One DER's own MirrorUsagePoint at a site of several (issue 19 point 2): the DER's output,
    reactive power and stored energy (roleFlags 0x49, as the site-wide DER mirror), from the
    hardware actor's summaries of that DER alone. Its mRIDs are derived from the DER's name as
    well, so each DER's mirror is its own; what it posted is recorded as
    ``der.reading_posted.v1`` (the site's mirror, the site-wide DER one included, is unchanged)."""

    _POINTS = (MeasurementPoint.DER,)

    def __init__(
        self,
        *,
        der: str,
        link: Link,
        log: LogWriter,
        clock: Clock,
        lfdi: str,
        pen: int,
        profile: IdentityProfile,
        summaries: MemoryObjectReceiveStream[list[IntervalSummary]],
        targets: Latest[MirrorTargets],
        store: EventStore | None = None,
        interval_s: int | None = None,
    ) -> None:
        """``der``: the DER's name (``ders[].name``); the rest as :class:`MirrorActor`'s."""
        super().__init__(
            link=link,
            log=log,
            clock=clock,
            lfdi=lfdi,
            pen=pen,
            profile=profile,
            summaries=summaries,
            targets=targets,
            store=store,
            interval_s=interval_s,
        )
        self._der = der

    def _mrid(self, *parts: str) -> HexBinary128:
        return super()._mrid(f"der:{self._der}", *parts)

    def _description(self, point: MeasurementPoint) -> str:
        return f"sep2gw der {self._der}"

    def _unposted(self, store: EventStore, interval_s: int) -> list[IntervalSummary]:
        """As :func:`unposted_intervals`, over this DER's ``der.member_sampled.v1`` and
        ``der.reading_posted.v1``."""
        before_s = self._clock.server_time()
        aggregator = IntervalAggregator(interval_s)
        current = aggregator.start_of(before_s)
        posted: set[tuple[Quantity, int]] = set()
        summaries: list[IntervalSummary] = []
        horizon = store.first_seq_since(current - (MAX_BACKLOG + 1) * interval_s)
        types = ("der.member_sampled.v1", "der.reading_posted.v1")
        for record in store.read(horizon, types=types):
            event = record.event
            if isinstance(event, DerReadingPosted) and event.der == self._der:
                posted.add((event.quantity, event.start_s))
            elif (
                isinstance(event, DerMemberSampled)
                and event.der == self._der
                and aggregator.start_of(event.at_s) < current
            ):
                samples = member_telemetry(event).samples()
                try:
                    summaries += aggregator.add(
                        [x for x in samples if x.point is MeasurementPoint.DER]
                    )
                except LateSample:
                    continue
        summaries += [s for s in aggregator.close_due(current) if s.start_s < current]
        return [s for s in summaries if (s.quantity, s.start_s) not in posted]

    def _posted_event(self, summary: IntervalSummary, *, refused: bool, at_s: float) -> Event:
        return DerReadingPosted(
            der=self._der,
            quantity=summary.quantity,
            start_s=summary.start_s,
            interval_s=summary.interval_s,
            at_s=at_s,
            refused=refused,
        )
