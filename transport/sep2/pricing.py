"""The pricing function set between the wire and the log (IEEE 2030.5-2018 Pricing).

Incoming: a TariffProfile with one of its RateComponents (and the rate's ReadingType, when the server
serves it) → :class:`~events.pricing_events.RateDetails`; a TimeTariffInterval with its
ConsumptionTariffIntervals → :class:`~events.pricing_events.PriceInterval`. Outgoing: a PriceResponse
``{createdDateTime, endDeviceLFDI, status, subject}`` (PROTOCOL.md §4 rule 16). Values stay the
server's integers; mRIDs are canonical upper-case hex as everywhere else."""

from __future__ import annotations

from collections.abc import Iterable

from events.pricing_events import PriceBlock, PriceInterval, PriceResponseIntended, RateDetails
from transport.sep2 import resources as r
from transport.sep2.hexbinary import HexBinary128, HexBinary160
from transport.sep2.mapping import mrid_text

__all__ = ["interval_from_wire", "price_response_to_wire", "rate_from_wire"]


def rate_from_wire(
    tariff: r.TariffProfile, rate: r.RateComponent, reading: r.ReadingType | None
) -> RateDetails:
    return RateDetails(
        tariff_mrid=mrid_text(tariff.mRID),
        tariff_href=tariff.href or "",
        tariff_description=tariff.description or "",
        tariff_primacy=tariff.primacy,
        rate_code=tariff.rateCode or "",
        currency=tariff.currency,
        price_power_of_ten=tariff.pricePowerOfTenMultiplier or 0,
        rate_mrid=mrid_text(rate.mRID),
        rate_href=rate.href or "",
        rate_description=rate.description or "",
        role_flags=int(rate.roleFlags),
        uom=None if reading is None else reading.uom,
        reading_power_of_ten=0 if reading is None else reading.powerOfTenMultiplier or 0,
        flow_direction=None if reading is None else reading.flowDirection,
    )


def interval_from_wire(
    interval: r.TimeTariffInterval,
    rate_mrid: str,
    blocks: Iterable[r.ConsumptionTariffInterval],
) -> PriceInterval:
    return PriceInterval(
        mrid=mrid_text(interval.mRID),
        href=interval.href or "",
        rate_mrid=rate_mrid,
        description=interval.description or "",
        start=interval.interval.start,
        duration=interval.interval.duration,
        randomize_start=interval.randomizeStart or 0,
        randomize_duration=interval.randomizeDuration or 0,
        creation_time=interval.creationTime,
        response_required=int(interval.responseRequired or 0),
        reply_to=interval.replyTo,
        server_status=interval.EventStatus.currentStatus,
        tou_tier=interval.touTier,
        blocks=tuple(
            sorted(
                (
                    PriceBlock(
                        consumption_block=b.consumptionBlock,
                        start_value=b.startValue,
                        price=b.price,
                    )
                    for b in blocks
                ),
                key=lambda b: (b.start_value, b.consumption_block),
            )
        ),
    )


def price_response_to_wire(response: PriceResponseIntended) -> r.PriceResponse:
    return r.PriceResponse(
        createdDateTime=response.created_s,
        endDeviceLFDI=HexBinary160(int(response.lfdi, 16)),
        status=int(response.status),
        subject=HexBinary128(int(response.mrid, 16)),
    )
