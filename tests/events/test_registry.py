"""The application's catalogue holds every event type the application's modules define."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import events
from events.base import Event
from events.registry import ALL_EVENT_TYPES, CATALOGUE, UPCASTERS


def test_every_event_type_of_the_events_package_is_in_the_catalogue() -> None:
    """An event type left out of its module's type tuple cannot be appended: the actor that emits
    it fails (registration.links_changed.v1 did, and a supervisor restart hid it)."""
    defined: set[type[Event]] = set()
    for module in pkgutil.iter_modules(events.__path__, "events."):
        for _, obj in inspect.getmembers(importlib.import_module(module.name), inspect.isclass):
            if issubclass(obj, Event) and obj is not Event and obj.__module__ == module.name:
                defined.add(obj)
    # a legacy type (an old tag) is read through its upcaster and never appended
    missing = sorted(t.__name__ for t in defined - set(ALL_EVENT_TYPES) - set(UPCASTERS))
    assert not missing, f"event types missing from their module's catalogue tuple: {missing}"


def test_every_legacy_type_is_readable_and_upcasts_to_a_current_type() -> None:
    from events.base import tag_of

    for legacy in UPCASTERS:
        assert legacy not in ALL_EVENT_TYPES
        assert tag_of(legacy) in CATALOGUE.tags


def test_every_version_names_an_events_old_tags_too() -> None:
    """A reader asking the type index for a record kind gets its legacy tags as well (a string
    list of ``.v1`` tags is how a status reader lost every ``limits_in_force.v2`` record)."""
    from events.control_events import LimitsInForceChanged
    from events.hardware_events import LimitsApplied, TelemetrySampled
    from events.registry import every_version

    assert every_version(LimitsApplied) == {
        "hardware.limits_applied.v1",
        "hardware.limits_applied.v2",
    }
    assert every_version(LimitsInForceChanged, TelemetrySampled) == {
        "control.limits_in_force.v1",
        "control.limits_in_force.v2",
        "hardware.telemetry.v1",
    }
