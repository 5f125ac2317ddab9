"""The decision core's domain events are registered, frozen, keyword-only and explicitly tagged."""

from __future__ import annotations

import inspect

import msgspec
import pytest

from events.base import TAG_PATTERN, tag_of
from events.control_events import CONTROL_EVENT_TYPES, LimitsInForceChanged, ResponseIntended
from events.der_model import ControlSettings, Mode, ResponseStatus
from events.registration_events import REGISTRATION_EVENT_TYPES, BackoffDrawn, RegistrationStep
from events.registry import CATALOGUE

_ALL = CONTROL_EVENT_TYPES + REGISTRATION_EVENT_TYPES


@pytest.mark.parametrize("event_type", _ALL, ids=lambda t: t.__name__)
def test_event_type_is_registered_frozen_kw_only_with_versioned_tag(event_type: type) -> None:
    assert event_type in CATALOGUE.current_types
    tag = tag_of(event_type)
    assert TAG_PATTERN.fullmatch(tag) and tag != event_type.__name__
    assert event_type.__struct_config__.frozen
    parameters = inspect.signature(event_type).parameters.values()
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters)


def test_tags_are_unique() -> None:
    tags = [tag_of(t) for t in _ALL]
    assert len(tags) == len(set(tags))


@pytest.mark.parametrize(
    "event",
    [
        LimitsInForceChanged(
            settings=ControlSettings(export_limit_w=1500.0, energize=True),
            sources={Mode.EXPORT_LIMIT_W: "control:A1", Mode.ENERGIZE: "default:P1"},
            next_change_s=1_700_000_060,
            ramps_ended=(),
            at_s=1_700_000_000.5,
        ),
        ResponseIntended(
            mrid="A1",
            status=ResponseStatus.SUPERSEDED,
            lfdi="AB" * 20,
            reply_to="/rsp",
            created_s=5,
            at_s=5,
        ),
        BackoffDrawn(
            step=RegistrationStep.TIME,
            attempt=3,
            base_delay_s=8.0,
            jitter_s=0.25,
            retry_at_s=18.25,
            at_s=10,
        ),
    ],
    ids=lambda e: type(e).__name__,
)
def test_round_trip_through_the_catalogue(event: msgspec.Struct) -> None:
    body = CATALOGUE.encode(event)  # type: ignore[arg-type]
    assert CATALOGUE.decode(body) == event
    assert body.startswith(b'{"type":"')
