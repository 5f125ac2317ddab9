"""What the gateway learned of the utility's prices, and what it did with each price interval.

IEEE 2030.5-2018 Pricing function set: a TariffProfile (currency, price multiplier, primacy) holds
RateComponents (what is measured: a ReadingType), each with TimeTariffIntervals (events: a start, a
duration, randomisation, a status, a Response request) whose ConsumptionTariffIntervals give the price
per consumption block. The price in force is evidence in a dispute ("the battery charged at the
peak price"), so each interval's lifecycle and every change of the price in force is a record; the
gateway invents no charging strategy — it tells the embedding runtime what the price is.

Prices stay in the server's integers: ``price`` × 10^``price_power_of_ten`` currency units per unit
of the rate's reading type (``uom``, × 10^``reading_power_of_ten``), ISO 4217 numeric ``currency``.
"""

from __future__ import annotations

import msgspec

from events.base import Event
from events.der_model import ResponseStatus

__all__ = [
    "PRICING_EVENT_TYPES",
    "PRICING_STREAM",
    "IntervalCancelDrawn",
    "IntervalCancelled",
    "IntervalCompleted",
    "IntervalContentChanged",
    "IntervalIgnored",
    "IntervalReceived",
    "IntervalRemoved",
    "IntervalStarted",
    "IntervalSuperseded",
    "PriceBlock",
    "PriceInForce",
    "PriceInterval",
    "PriceResponseAcked",
    "PriceResponseFailed",
    "PriceResponseIntended",
    "PricingCapped",
    "PricesInForce",
    "RatePrice",
    "RateDetails",
    "RateSeen",
    "price_per_kwh",
]

PRICING_STREAM = "pricing"


class PriceBlock(msgspec.Struct, frozen=True, kw_only=True):
    """One ConsumptionTariffInterval: the price from ``start_value`` (in the rate's reading units)
    of consumption in the interval on; ``price`` None: the server gave none (the block exists but
    is not priced)."""

    consumption_block: int
    start_value: int
    price: int | None


class RateDetails(msgspec.Struct, frozen=True, kw_only=True):
    """A RateComponent of a TariffProfile, with what its prices mean."""

    tariff_mrid: str
    tariff_href: str
    tariff_description: str = ""
    tariff_primacy: int
    rate_code: str = ""
    currency: int | None = None  # ISO 4217 numeric (36: AUD)
    price_power_of_ten: int = 0
    rate_mrid: str
    rate_href: str
    rate_description: str = ""
    role_flags: int = 0
    #: The rate's ReadingType: unit of measure (72: Wh), its power of ten, flow direction
    #: (1: forward, delivered to the customer; 19: reverse). None: the server did not say.
    uom: int | None = None
    reading_power_of_ten: int = 0
    flow_direction: int | None = None


class PriceInterval(msgspec.Struct, frozen=True, kw_only=True):
    """A TimeTariffInterval as received (an event: PROTOCOL.md §4's terms apply)."""

    mrid: str
    href: str
    rate_mrid: str
    description: str = ""
    start: int
    duration: int
    randomize_start: int = 0
    randomize_duration: int = 0
    creation_time: int
    response_required: int = 0
    reply_to: str | None = None
    server_status: int = 0
    tou_tier: int
    blocks: tuple[PriceBlock, ...] = ()


class RatePrice(msgspec.Struct, frozen=True, kw_only=True):
    """One rate's price in force (a value, not a record): the interval in force (None: none) and
    its blocks."""

    rate: RateDetails
    interval_mrid: str | None
    tou_tier: int | None = None
    blocks: tuple[PriceBlock, ...] = ()


class PricesInForce(msgspec.Struct, frozen=True, kw_only=True):
    """The price in force for every rate the server offers us, as the log records it, at ``at_s``
    (a value, not a record: the pricing actor's message to the embedding runtime and the driver)."""

    at_s: float
    prices: tuple[RatePrice, ...]


class RateSeen(Event, frozen=True, kw_only=True, tag="pricing.rate_seen.v1"):
    """A rate first seen, or seen with changed details."""

    rate: RateDetails
    at_s: float


class IntervalReceived(Event, frozen=True, kw_only=True, tag="pricing.interval_received.v1"):
    """First sight of an interval, with its randomisation drawn once and kept (§4 preamble)."""

    interval: PriceInterval
    rho_start_s: int
    rho_duration_s: int
    at_s: float


class IntervalIgnored(Event, frozen=True, kw_only=True, tag="pricing.interval_ignored.v1"):
    """First sight of an interval that will never be in force (ended before it was received)."""

    interval: PriceInterval
    reason: str
    at_s: float


class IntervalContentChanged(Event, frozen=True, kw_only=True, tag="pricing.interval_changed.v1"):
    """A server fault (§4 rule 1): the content under a known mRID changed; the first content is
    kept and the changed fields are named."""

    mrid: str
    fields: tuple[str, ...]
    at_s: float


class IntervalStarted(Event, frozen=True, kw_only=True, tag="pricing.interval_started.v1"):
    mrid: str
    at_s: float


class IntervalCompleted(Event, frozen=True, kw_only=True, tag="pricing.interval_completed.v1"):
    """The interval's effective end passed; ``started`` False: it was never in force (superseded
    or cancelled intervals end otherwise; this is one whose whole period passed unseen)."""

    mrid: str
    started: bool
    at_s: float


class IntervalCancelDrawn(Event, frozen=True, kw_only=True, tag="pricing.interval_cancel_drawn.v1"):
    """Server status 3 (cancelled with randomisation): the interval stops at ``stop_at_s``."""

    mrid: str
    stop_at_s: float
    at_s: float


class IntervalCancelled(Event, frozen=True, kw_only=True, tag="pricing.interval_cancelled.v1"):
    mrid: str
    server_status: int
    at_s: float


class IntervalSuperseded(Event, frozen=True, kw_only=True, tag="pricing.interval_superseded.v1"):
    """Superseded by a newer interval of the same rate whose period overlaps (``by``), or by the
    server (status 4, ``by`` None)."""

    mrid: str
    by: str | None
    at_s: float


class IntervalRemoved(Event, frozen=True, kw_only=True, tag="pricing.interval_removed.v1"):
    """The interval's rate is no longer offered to us: it stops applying, unanswered (§4 rule 4)."""

    mrid: str
    at_s: float


class PriceInForce(Event, frozen=True, kw_only=True, tag="pricing.price_in_force.v1"):
    """The price in force for a rate changed at ``at_s``: the interval now in force and its prices,
    or none (``interval_mrid`` None: no interval of this rate is in force)."""

    rate_mrid: str
    interval_mrid: str | None
    tou_tier: int | None = None
    blocks: tuple[PriceBlock, ...] = ()
    at_s: float


class PriceResponseIntended(Event, frozen=True, kw_only=True, tag="pricing.response_intended.v1"):
    """We owe the server this PriceResponse (§4 rule 16), keyed (mRID, status)."""

    mrid: str
    status: ResponseStatus
    lfdi: str
    reply_to: str
    created_s: int
    at_s: float


class PriceResponseAcked(Event, frozen=True, kw_only=True, tag="pricing.response_acked.v1"):
    mrid: str
    status: ResponseStatus
    http_status: int
    at_s: float


class PriceResponseFailed(Event, frozen=True, kw_only=True, tag="pricing.response_failed.v1"):
    """A PriceResponse POST failed: ``http_status`` None when no answer came; ``retry`` False for a
    4xx (never retried)."""

    mrid: str
    status: ResponseStatus
    http_status: int | None
    retry: bool
    error: str = ""
    at_s: float


class PricingCapped(Event, frozen=True, kw_only=True, tag="pricing.walk_capped.v1"):
    """A server fault the walk bounded (issue 15: bounded work per poll): more tariffs, rates or new
    intervals than one walk reads; ``what`` names the cut and what was kept. Recorded when the cut
    changes, not on every walk."""

    what: str
    at_s: float


PRICING_EVENT_TYPES: tuple[type[Event], ...] = (
    RateSeen,
    IntervalReceived,
    IntervalIgnored,
    IntervalContentChanged,
    IntervalStarted,
    IntervalCompleted,
    IntervalCancelDrawn,
    IntervalCancelled,
    IntervalSuperseded,
    IntervalRemoved,
    PriceInForce,
    PriceResponseIntended,
    PriceResponseAcked,
    PriceResponseFailed,
    PricingCapped,
)


def price_per_kwh(rate: RateDetails, block: PriceBlock) -> float | None:
    """A block's price in currency units per kWh, or None when the rate does not measure energy
    in Wh (uom 72) or the block has no price: ``price`` × 10^``price_power_of_ten`` per
    10^``reading_power_of_ten`` Wh."""
    if block.price is None or rate.uom != 72:
        return None
    per_unit = block.price * 10.0**rate.price_power_of_ten
    return per_unit * 1000.0 / 10.0**rate.reading_power_of_ten
