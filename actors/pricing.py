"""The pricing actor: follows the utility's prices and tells the gateway which price is in force.

IEEE 2030.5-2018 Pricing: the registration walk hands over the TariffProfileList links of our
FunctionSetAssignments (:class:`~actors.messages.TariffLinks`); this actor walks each list → its
TariffProfiles → RateComponentList → each RateComponent (with its ReadingType, read once) →
TimeTariffIntervalList → each new interval's ConsumptionTariffIntervalList, at the lists' pollRate
(§4 rule 15; a rate outside [10 s, 1 day] is replaced by 900 s as for every other resource). The
decisions are :class:`statemachines.pricing.PricingCore`'s: every one is recorded before it is acted
on (decide → persist → act), the PriceResponses it owes are POSTed to each interval's ``replyTo``
(retried on 5xx and network failures with a bounded back-off, never on 4xx), and after every change
the prices in force go to the ``prices`` mailbox (the embedding runtime and the tag driver read it).
The gateway invents no charging strategy.

A known interval's ConsumptionTariffIntervals are read once, on first sight: its content must not
change under its mRID (§4 rule 1), and re-reading every block of every interval on every poll would
multiply the requests by the intervals listed. A change of the interval's own fields is still seen
(and logged as a server fault).
"""

from __future__ import annotations

from typing import Final

import anyio
import msgspec
from anyio.abc import TaskStatus

from actors.clock import Clock
from actors.link import HttpFailure, Link, LinkHalted
from actors.log_writer import LogWriter
from actors.mailbox import Latest
from actors.messages import PricesInForce, RatePrice, TariffLinks
from actors.rng import RandomSource
from events.base import Event
from events.envelope import Append
from events.pricing_events import (
    PRICING_STREAM,
    PriceInterval,
    PriceResponseIntended,
    PricingCapped,
)
from events.replay import replay
from events.store import EventStore
from statemachines.polling import FAULT_POLL_S, MAX_POLL_S, MIN_POLL_S
from statemachines.pricing import PRICING_PROJECTION, PricingConfig, PricingCore
from statemachines.responses import ResponseProfile
from transport.errors import LinkError
from transport.sep2 import resources as r
from transport.sep2.mapping import mrid_text
from transport.sep2.pricing import interval_from_wire, price_response_to_wire, rate_from_wire

__all__ = ["PricingActor", "PricingStatistics"]

#: Bounded work per walk (issue 15): a server listing more is cut, and the cut is a recorded fault.
MAX_TARIFFS: Final = 16
MAX_RATES_PER_TARIFF: Final = 8
#: New intervals whose ConsumptionTariffIntervals are read in one walk; the rest wait for the next.
MAX_NEW_INTERVALS: Final = 100
#: A walk that failed (server unreachable, a list refused) is tried again after this long.
RETRY_WALK_S: Final = 60.0
#: PriceResponse retries: doubling from the base to the cap.
RESPONSE_RETRY_BASE_S: Final = 2.0
RESPONSE_RETRY_CAP_S: Final = 300.0


class PricingStatistics(msgspec.Struct, frozen=True):
    walks: int
    intervals_known: int
    responses_posted: int


def _poll_rate(rate: int | None) -> int:
    if not rate:
        return FAULT_POLL_S
    return rate if MIN_POLL_S <= rate <= MAX_POLL_S else FAULT_POLL_S


class PricingActor:
    def __init__(
        self,
        *,
        link: Link,
        log: LogWriter,
        clock: Clock,
        rng: RandomSource,
        store: EventStore,
        lfdi: str,
        profile: ResponseProfile,
        targets: Latest[TariffLinks],
        prices: Latest[PricesInForce] | None = None,
    ) -> None:
        self._link = link
        self._log = log
        self._clock = clock
        self._rng = rng
        self._store = store
        self._targets = targets
        self._prices = prices
        self.core = PricingCore(PricingConfig(lfdi=lfdi, profile=profile))
        self._links: TariffLinks | None = None
        self._next_walk_s: float | None = None
        #: ReadingTypes read once per href. Kept for the rates of the last walk only, so a
        #: server inventing new hrefs each walk cannot grow it (a walk reads at most
        #: MAX_TARIFFS x MAX_RATES_PER_TARIFF of them).
        self._reading_types: dict[str, r.ReadingType | None] = {}
        self._reading_types_used: set[str] = set()
        self._retry_at: dict[str, tuple[float, int]] = {}  # "mrid/status" -> (when, failures)
        self._wake = anyio.Event()
        self._walks = 0
        self._posted = 0
        self._published: PricesInForce | None = None
        self._cuts: list[str] = []
        self._cut_told = ""
        self._new_budget = MAX_NEW_INTERVALS

    def statistics(self) -> PricingStatistics:
        return PricingStatistics(self._walks, len(self.core.state.intervals), self._posted)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        # A restart follows what the log holds (§4 rule 13): the draws, the states, the Responses owed.
        self.core.state, _seq = replay(self._store, PRICING_PROJECTION)
        self._publish(self._clock.server_time())
        async with anyio.create_task_group() as group:
            group.start_soon(self._follow_targets)
            task_status.started()
            await self._serve()

    async def _follow_targets(self) -> None:
        while True:
            links = await self._targets.take()
            if links != self._links:
                self._links = links
                self._next_walk_s = self._clock.server_time()
                self._wake.set()

    async def _serve(self) -> None:
        while True:
            now = self._clock.server_time()
            if self._link.halted:
                await anyio.sleep_forever()
            if (
                self._links is not None
                and self._next_walk_s is not None
                and self._next_walk_s <= now
            ):
                await self._walk()
                continue
            await self._record(self.core.handle_timer(now))
            await self._send_responses()
            deadlines = [
                t
                for t in (
                    self._next_walk_s,
                    self.core.next_deadline(),
                    min((at for at, _n in self._retry_at.values()), default=None),
                )
                if t is not None
            ]
            now = self._clock.server_time()
            wait = max(min(deadlines) - now, 0.0) if deadlines else float("inf")
            if wait > 0:
                with anyio.move_on_after(wait):
                    await self._wake.wait()
                self._wake = anyio.Event()

    # ---------------------------------------------------------------------------------- walk

    async def _walk(self) -> None:
        assert self._links is not None
        self._walks += 1
        self._cuts = []
        self._new_budget = MAX_NEW_INTERVALS
        self._reading_types_used = set()
        rate_s = FAULT_POLL_S
        offered: set[str] = set()
        complete = True
        try:
            for href in self._links.hrefs:
                tariffs, profiles = await self._link.get_list(
                    href, r.TariffProfileList, "TariffProfile"
                )
                rate_s = min(rate_s, _poll_rate(tariffs.pollRate))
                if len(profiles) > MAX_TARIFFS:
                    self._cuts.append(
                        f"{href}: {len(profiles)} tariffs, the first {MAX_TARIFFS} read"
                    )
                    profiles = profiles[:MAX_TARIFFS]
                for tariff in profiles:
                    complete &= await self._read_tariff(tariff, offered)
        except LinkHalted:
            return
        except HttpFailure:
            complete = False
        except LinkError:
            complete = False  # offline: the link reports it; try again soon
        now = self._clock.server_time()
        cut = "; ".join(self._cuts)
        if cut != self._cut_told:
            self._cut_told = cut
            if cut:
                await self._record([PricingCapped(what=cut, at_s=now)])
        for href in set(self._reading_types) - self._reading_types_used:
            del self._reading_types[href]  # not asked for this walk: read again if it comes back
        if complete:
            await self._record(self.core.retire_rates(offered, now))
            self._next_walk_s = now + rate_s
        else:
            self._next_walk_s = now + min(RETRY_WALK_S, rate_s)

    async def _read_tariff(self, tariff: r.TariffProfile, offered: set[str]) -> bool:
        """One TariffProfile's rates; False if part of it could not be read this cycle (nothing
        is then claimed about what could not be read: §4 rule 4)."""
        if tariff.RateComponentListLink is None:
            return True
        try:
            _list, rates = await self._link.get_list(
                tariff.RateComponentListLink.href, r.RateComponentList, "RateComponent"
            )
        except HttpFailure:
            return False
        complete = True
        if len(rates) > MAX_RATES_PER_TARIFF:
            self._cuts.append(
                f"{tariff.RateComponentListLink.href}: {len(rates)} rates, the first "
                f"{MAX_RATES_PER_TARIFF} read"
            )
            rates = rates[:MAX_RATES_PER_TARIFF]
        for rate in rates:
            reading = await self._reading_type(rate.ReadingTypeLink.href)
            details = rate_from_wire(tariff, rate, reading)
            offered.add(details.rate_mrid)
            await self._record(self.core.receive_rate(details, self._clock.server_time()))
            try:
                _tl, wire = await self._link.get_list(
                    rate.TimeTariffIntervalListLink.href,
                    r.TimeTariffIntervalList,
                    "TimeTariffInterval",
                )
            except HttpFailure:
                complete = False
                continue
            intervals: list[PriceInterval] = []
            for interval in wire:
                known = self.core.state.intervals.get(mrid_text(interval.mRID))
                if known is not None:
                    iv = interval_from_wire(interval, details.rate_mrid, ())
                    intervals.append(msgspec.structs.replace(iv, blocks=known.interval.blocks))
                    continue
                if self._new_budget <= 0:
                    complete = False  # read at the next walk, never claimed about before
                    many = f"more than {MAX_NEW_INTERVALS} new intervals in one walk"
                    if many not in self._cuts:
                        self._cuts.append(many)
                    continue
                self._new_budget -= 1
                blocks_wire: list[r.ConsumptionTariffInterval] = []
                if interval.ConsumptionTariffIntervalListLink is not None:
                    try:
                        _cl, blocks_wire = await self._link.get_list(
                            interval.ConsumptionTariffIntervalListLink.href,
                            r.ConsumptionTariffIntervalList,
                            "ConsumptionTariffInterval",
                        )
                    except HttpFailure:
                        complete = False
                        continue  # not received until its prices can be read
                intervals.append(interval_from_wire(interval, details.rate_mrid, blocks_wire))
            now = self._clock.server_time()
            await self._record(self.core.receive_intervals(intervals, now, self._rng.integer))
        return complete

    async def _reading_type(self, href: str) -> r.ReadingType | None:
        self._reading_types_used.add(href)
        if href not in self._reading_types:
            try:
                self._reading_types[href] = await self._link.get(href, r.ReadingType)
            except HttpFailure:
                return None  # asked again next walk
        return self._reading_types[href]

    # ------------------------------------------------------------------------------ Responses

    async def _send_responses(self) -> None:
        now = self._clock.server_time()
        owed_now = self.core.responses_to_send()
        keys = {f"{o.mrid}/{int(o.status)}" for o in owed_now}
        for key in [k for k in self._retry_at if k not in keys]:
            del self._retry_at[key]  # acknowledged, or refused for good (4xx)
        for owed in owed_now:
            key = f"{owed.mrid}/{int(owed.status)}"
            retry = self._retry_at.get(key)
            if retry is not None and retry[0] > now:
                continue
            if not await self._post(owed, key, retry[1] if retry else 0):
                return  # offline or halted: the rest wait too

    async def _post(self, owed: PriceResponseIntended, key: str, failures: int) -> bool:
        self._posted += 1
        try:
            status, _location = await self._link.post_answered(
                owed.reply_to, price_response_to_wire(owed)
            )
        except LinkHalted:
            return False
        except HttpFailure as failure:
            now = self._clock.server_time()
            events = self.core.response_failed(
                owed.mrid, owed.status, failure.status, str(failure), now
            )
            self._schedule_retry(key, failures, now, failure.retry_after_s)
            await self._record(events)
            return True
        except LinkError as failure:
            now = self._clock.server_time()
            events = self.core.response_failed(owed.mrid, owed.status, None, str(failure), now)
            self._schedule_retry(key, failures, now, None)
            await self._record(events)
            return False
        self._retry_at.pop(key, None)
        await self._record(
            self.core.response_acked(owed.mrid, owed.status, status, self._clock.server_time())
        )
        return True

    def _schedule_retry(
        self, key: str, failures: int, now: float, retry_after_s: float | None
    ) -> None:
        delay = min(RESPONSE_RETRY_BASE_S * 2**failures, RESPONSE_RETRY_CAP_S)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, RESPONSE_RETRY_CAP_S))
        self._retry_at[key] = (now + delay, failures + 1)

    # --------------------------------------------------------------------------------- record

    async def _record(self, events: list[Event]) -> None:
        """Decide → persist → act: the decisions are durable before anyone hears of them."""
        if not events:
            return
        reading = self._clock.read()
        await self._log.append(
            [
                Append(
                    stream=PRICING_STREAM,
                    events=tuple(events),
                    server_time=reading.server_time,
                    monotonic=reading.monotonic,
                )
            ]
        )
        self._publish(reading.server_time)
        self._wake.set()

    def _publish(self, now: float) -> None:
        if self._prices is None:
            return
        state = self.core.state
        prices = tuple(
            RatePrice(
                rate=rate,
                interval_mrid=state.in_force.get(mrid),
                tou_tier=None
                if (rec := state.intervals.get(state.in_force.get(mrid) or "")) is None
                else rec.interval.tou_tier,
                blocks=() if rec is None else rec.interval.blocks,
            )
            for mrid, rate in sorted(state.rates.items())
        )
        if self._published is not None and self._published.prices == prices:
            return
        self._published = PricesInForce(at_s=now, prices=prices)
        self._prices.put(self._published)
