from __future__ import annotations

import msgspec
import pytest

from events.base import Event, InvalidEventTag, tag_of
from events.catalogue import Catalogue
from events.errors import UnknownEventTag
from tests.events.eventtypes import TEST_CATALOGUE, Deposited, Withdrawn


def test_tag_is_the_explicit_versioned_tag() -> None:
    assert tag_of(Deposited) == "test.deposited.v1"


def test_class_name_tag_is_refused() -> None:
    class Implicit(Event, frozen=True, kw_only=True, tag=True):
        x: int

    with pytest.raises(InvalidEventTag, match="explicit versioned tag"):
        tag_of(Implicit)


@pytest.mark.parametrize("tag", ["deposited", "test.deposited", "Test.deposited.v1", "test.x.v0"])
def test_unversioned_or_malformed_tags_are_refused(tag: str) -> None:
    class Bad(Event, frozen=True, kw_only=True, tag=tag):
        x: int

    with pytest.raises(InvalidEventTag):
        Catalogue([Bad])


def test_two_types_with_one_tag_are_refused() -> None:
    class Twin(Event, frozen=True, kw_only=True, tag="test.deposited.v1"):
        x: int

    with pytest.raises(InvalidEventTag, match="used by both"):
        Catalogue([Deposited, Twin])


def test_events_are_frozen_and_keyword_only() -> None:
    event = Deposited(account="a", amount=1)
    with pytest.raises(AttributeError):
        event.amount = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        Deposited("a", 1)  # type: ignore[misc]


def test_body_carries_the_tag_in_the_type_field() -> None:
    body = TEST_CATALOGUE.encode(Withdrawn(account="a", amount=3))
    assert msgspec.json.decode(body) == {
        "type": "test.withdrawn.v1",
        "account": "a",
        "amount": 3,
        "note": "",
    }
    assert TEST_CATALOGUE.decode(body) == Withdrawn(account="a", amount=3)


def test_unknown_tag_names_the_tag_and_the_place() -> None:
    with pytest.raises(UnknownEventTag, match="'test.refunded.v1'") as info:
        TEST_CATALOGUE.decode(b'{"type":"test.refunded.v1","amount":1}', where="x.log: record 7")
    assert info.value.tag == "test.refunded.v1"
    assert "record 7" in str(info.value)


def test_a_type_outside_the_catalogue_cannot_be_written() -> None:
    class Stray(Event, frozen=True, kw_only=True, tag="test.stray.v1"):
        x: int

    with pytest.raises(InvalidEventTag, match="not in this log's catalogue"):
        TEST_CATALOGUE.tag(Stray(x=1))


def test_wrong_field_type_is_a_validation_error_not_unknown_tag() -> None:
    with pytest.raises(msgspec.ValidationError, match="amount"):
        TEST_CATALOGUE.decode(b'{"type":"test.deposited.v1","account":"a","amount":"x"}')


def test_positional_fields_are_refused() -> None:
    class Positional(Event, frozen=True, tag="test.positional.v1"):
        x: int

    with pytest.raises(InvalidEventTag, match="kw_only=True"):
        Catalogue([Positional])
