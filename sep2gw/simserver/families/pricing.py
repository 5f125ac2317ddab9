"""Pricing (IEEE 2030.5-2018 Pricing function set): TariffProfileList → TariffProfile → one
RateComponent (with its ReadingType) → TimeTariffIntervalList → ConsumptionTariffIntervalList, and the
PriceResponses the devices POST to an interval's replyTo.

Every FSA references the TariffProfileList when the scenario has tariffs. Each tariff has one rate
(``/tp/{t}/rc/1``) measured in Wh × 10^``reading_power_of_ten`` in the tariff's flow direction. An
interval's EventStatus follows the event rules as the DERControls' does: 0 before its start, 1 within
its period, 2/3 once cancelled (3: with randomisation); superseded intervals are left for the client
to work out (§4 rule 7), as a 2023 server does.
"""

from __future__ import annotations

from dataclasses import dataclass

from sep2gw.simserver.families.base import ServedState
from sep2gw.simserver.records import (
    _SUBSCRIBABLE_NONE,
    SimReply,
    _Ctx,
    _decode_any,
    _NotFound,
)
from sep2gw.simserver.scenario import TariffSpec
from transport.sep2 import resources as r
from transport.sep2.hexbinary import HexBinary8, HexBinary16, HexBinary128

__all__ = ["PRICE_REPLY_TO", "PriceIntervalRecord", "PricingResources", "TariffRecord"]

TARIFF_MRID = 0x7A000000_00000000_00000000_00000000
RATE_MRID = 0x7C000000_00000000_00000000_00000000
INTERVAL_MRID = 0x71000000_00000000_00000000_00000000
#: Where every PriceResponse goes.
PRICE_REPLY_TO = "/rsps/price/rsp"
#: UomType 72: Wh (IEEE 2030.5 ReadingType.uom).
_WH = 72


@dataclass(slots=True)
class TariffRecord:
    index: int
    spec: TariffSpec
    mrid: int
    rate_mrid: int
    intervals: list[PriceIntervalRecord]


@dataclass(slots=True)
class PriceIntervalRecord:
    index: int
    tariff: int
    mrid: int
    creation_time: int
    start: int
    duration: int
    blocks: tuple[tuple[int, int], ...]  # (start value, price)
    tou_tier: int
    response_required: int
    randomize_start: int | None
    randomize_duration: int | None
    description: str | None
    cancelled_at: int | None = None
    cancel_status: int = 2

    def status(self, now: float) -> r.EventStatus:
        if self.cancelled_at is not None and now >= self.cancelled_at:
            status, since = self.cancel_status, self.cancelled_at
        elif now >= self.start:
            status, since = 1, self.start
        else:
            status, since = 0, self.creation_time
        return r.EventStatus(currentStatus=status, dateTime=since, potentiallySuperseded=False)


class PricingResources(ServedState):
    """The pricing function set's resources (module docstring)."""

    def _tariff_param(self, ctx: _Ctx) -> TariffRecord:
        text = ctx.params["t"]
        if not (text.isdigit() and 1 <= int(text) <= len(self.tariffs)):
            raise _NotFound(f"no TariffProfile {text!r}")
        return self.tariffs[int(text) - 1]

    def _rate_param(self, ctx: _Ctx) -> TariffRecord:
        tariff = self._tariff_param(ctx)
        if ctx.params["rc"] != "1":
            raise _NotFound(
                f"no RateComponent {ctx.params['rc']!r} in TariffProfile {tariff.index}"
            )
        return tariff

    def _interval_param(self, ctx: _Ctx) -> tuple[TariffRecord, PriceIntervalRecord]:
        tariff = self._rate_param(ctx)
        text = ctx.params["i"]
        if not (text.isdigit() and 1 <= int(text) <= len(tariff.intervals)):
            raise _NotFound(f"no TimeTariffInterval {text!r} in TariffProfile {tariff.index}")
        return tariff, tariff.intervals[int(text) - 1]

    def _tariff(self, tariff: TariffRecord) -> r.TariffProfile:
        spec = tariff.spec
        return r.TariffProfile(
            href=f"/tp/{tariff.index}",
            mRID=HexBinary128(tariff.mrid),
            description=spec.description,
            currency=spec.currency,
            pricePowerOfTenMultiplier=spec.price_power_of_ten,
            primacy=spec.primacy,
            rateCode=spec.rate_code,
            RateComponentListLink=r.RateComponentListLink(href=f"/tp/{tariff.index}/rc", all=1),
            serviceCategoryKind=0,  # electricity
        )

    def _rate(self, tariff: TariffRecord) -> r.RateComponent:
        base = f"/tp/{tariff.index}/rc/1"
        return r.RateComponent(
            href=base,
            mRID=HexBinary128(tariff.rate_mrid),
            description=f"{tariff.spec.id} energy",
            ReadingTypeLink=r.ReadingTypeLink(href=f"{base}/rt"),
            roleFlags=HexBinary16(0),
            TimeTariffIntervalListLink=r.TimeTariffIntervalListLink(
                href=f"{base}/tti", all=len(tariff.intervals)
            ),
        )

    def _interval(
        self, tariff: TariffRecord, interval: PriceIntervalRecord, now: float
    ) -> r.TimeTariffInterval:
        href = f"/tp/{tariff.index}/rc/1/tti/{interval.index}"
        return r.TimeTariffInterval(
            href=href,
            replyTo=PRICE_REPLY_TO,
            responseRequired=HexBinary8(interval.response_required),
            mRID=HexBinary128(interval.mrid),
            subscribable=_SUBSCRIBABLE_NONE,
            description=interval.description,
            creationTime=interval.creation_time,
            EventStatus=interval.status(now),
            interval=r.DateTimeInterval(duration=interval.duration, start=interval.start),
            randomizeDuration=interval.randomize_duration,
            randomizeStart=interval.randomize_start,
            touTier=interval.tou_tier,
            ConsumptionTariffIntervalListLink=r.ConsumptionTariffIntervalListLink(
                href=f"{href}/cti", all=len(interval.blocks)
            ),
        )

    def _get_tariff_list(self, ctx: _Ctx) -> SimReply:
        page = self._page_of(ctx, self.tariffs)
        return self._doc(
            r.TariffProfileList(
                href="/tp",
                subscribable=_SUBSCRIBABLE_NONE,
                all=len(self.tariffs),
                results=len(page),
                pollRate=self.poll_rates["fsa"],
                TariffProfile=tuple(self._tariff(t) for t in page),
            )
        )

    def _get_tariff(self, ctx: _Ctx) -> SimReply:
        return self._doc(self._tariff(self._tariff_param(ctx)))

    def _get_rate_list(self, ctx: _Ctx) -> SimReply:
        tariff = self._tariff_param(ctx)
        page = self._page_of(ctx, [tariff])
        return self._doc(
            r.RateComponentList(
                href=f"/tp/{tariff.index}/rc",
                all=1,
                results=len(page),
                RateComponent=tuple(self._rate(t) for t in page),
            )
        )

    def _get_rate(self, ctx: _Ctx) -> SimReply:
        return self._doc(self._rate(self._rate_param(ctx)))

    def _get_reading_type(self, ctx: _Ctx) -> SimReply:
        tariff = self._rate_param(ctx)
        return self._doc(
            r.ReadingType(
                href=f"/tp/{tariff.index}/rc/1/rt",
                accumulationBehaviour=4,  # delta data
                commodity=1,  # electricity secondary metered
                flowDirection=tariff.spec.flow_direction,
                kind=12,  # energy
                powerOfTenMultiplier=tariff.spec.reading_power_of_ten,
                uom=_WH,
            )
        )

    def _get_interval_list(self, ctx: _Ctx) -> SimReply:
        tariff = self._rate_param(ctx)
        # List order of events (§10.10.3.1 as for DERControls): start ascending, then creationTime
        # descending, then mRID descending.
        ordered = sorted(tariff.intervals, key=lambda i: (i.start, -i.creation_time, -i.mrid))
        page = self._page_of(ctx, ordered)
        return self._doc(
            r.TimeTariffIntervalList(
                href=f"/tp/{tariff.index}/rc/1/tti",
                subscribable=_SUBSCRIBABLE_NONE,
                all=len(ordered),
                results=len(page),
                TimeTariffInterval=tuple(self._interval(tariff, i, ctx.now) for i in page),
            )
        )

    def _get_interval(self, ctx: _Ctx) -> SimReply:
        tariff, interval = self._interval_param(ctx)
        return self._doc(self._interval(tariff, interval, ctx.now))

    def _get_block_list(self, ctx: _Ctx) -> SimReply:
        tariff, interval = self._interval_param(ctx)
        href = f"/tp/{tariff.index}/rc/1/tti/{interval.index}/cti"
        blocks = [
            r.ConsumptionTariffInterval(
                href=f"{href}/{n}", consumptionBlock=n, startValue=start, price=price
            )
            for n, (start, price) in enumerate(interval.blocks, start=1)
        ]
        page = self._page_of(ctx, blocks)
        return self._doc(
            r.ConsumptionTariffIntervalList(
                href=href, all=len(blocks), results=len(page), ConsumptionTariffInterval=tuple(page)
            )
        )

    def _post_price_response(self, ctx: _Ctx) -> SimReply:
        """PriceResponses (IEEE 2030.5 §12.1.3 as for every event): the subject must be one of the
        server's intervals and endDeviceLFDI the poster's own LFDI."""
        parsed = _decode_any(ctx.body, (r.PriceResponse, r.Response))
        if isinstance(parsed, SimReply):
            return parsed
        known = {i.mrid for t in self.tariffs for i in t.intervals}
        if int(parsed.subject) not in known:
            return SimReply(
                400,
                reason=f"/{type(parsed).__name__}/subject: {int(parsed.subject):032X} is not a "
                "TimeTariffInterval of this server",
                parsed=parsed,
            )
        if int(parsed.endDeviceLFDI) != ctx.lfdi:
            return SimReply(
                400,
                reason=f"/{type(parsed).__name__}/endDeviceLFDI: not the client certificate's LFDI",
                parsed=parsed,
            )
        self.price_responses.append((int(ctx.now), parsed))
        return SimReply(
            201, location=f"{PRICE_REPLY_TO}/{len(self.price_responses)}", parsed=parsed
        )
