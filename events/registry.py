"""The application's catalogue: every event type a sep2gw log may hold, and the upcasters of old tags.

Each issue that adds domain events adds its module's type tuple here (and nowhere else), so the live
gateway, replay and ``sep2gw log verify`` all read logs with the same closed set of types.
"""

from __future__ import annotations

from events.base import Event, tag_of
from events.catalogue import Catalogue, Upcaster
from events.control_events import CONTROL_EVENT_TYPES, CONTROL_UPCASTERS
from events.der_events import DER_EVENT_TYPES
from events.der_status_events import DER_STATUS_EVENT_TYPES
from events.fleet_events import FLEET_EVENT_TYPES
from events.hardware_events import (
    HARDWARE_EVENT_TYPES,
    LimitsAppliedV1,
    upcast_limits_applied_v1,
)
from events.link_events import LINK_EVENT_TYPES
from events.log_events import LOG_EVENT_TYPES
from events.mirror_events import MIRROR_EVENT_TYPES
from events.pricing_events import PRICING_EVENT_TYPES
from events.registration_events import REGISTRATION_EVENT_TYPES
from events.runtime_events import RUNTIME_EVENT_TYPES
from events.subscription_events import (
    SUBSCRIPTION_EVENT_TYPES,
    SubscriptionLostV1,
    upcast_subscription_lost_v1,
)

__all__ = ["ALL_EVENT_TYPES", "CATALOGUE", "UPCASTERS", "every_version"]

ALL_EVENT_TYPES: tuple[type[Event], ...] = (
    *LOG_EVENT_TYPES,
    *RUNTIME_EVENT_TYPES,
    *HARDWARE_EVENT_TYPES,
    *MIRROR_EVENT_TYPES,
    *CONTROL_EVENT_TYPES,
    *REGISTRATION_EVENT_TYPES,
    *DER_STATUS_EVENT_TYPES,
    *LINK_EVENT_TYPES,
    *PRICING_EVENT_TYPES,
    *SUBSCRIPTION_EVENT_TYPES,
    *DER_EVENT_TYPES,
    *FLEET_EVENT_TYPES,
)
UPCASTERS: dict[type[Event], Upcaster] = {
    **CONTROL_UPCASTERS,
    # issue 20: clamps became structured (v1 held their Python repr as text)
    LimitsAppliedV1: upcast_limits_applied_v1,
    # review of issue 19: a lost subscription is backed off after repeated losses
    SubscriptionLostV1: upcast_subscription_lost_v1,
}

CATALOGUE = Catalogue(ALL_EVENT_TYPES, UPCASTERS)


def every_version(*event_types: type[Event]) -> frozenset[str]:
    """The tags a log may hold each of ``event_types`` under: its own and every older version of
    the same name that the catalogue reads (``area.name.v1`` for ``area.name.v2``; upcast to the
    current type when read). What a reader asks the store's type index for, so a new version of an
    event is never missed by a list of tag strings."""
    wanted = {tag_of(t).rpartition(".")[0] for t in event_types}
    return frozenset(tag for tag in CATALOGUE.tags if tag.rpartition(".")[0] in wanted)
