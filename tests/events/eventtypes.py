"""Event types used only by the event-log tests."""

from __future__ import annotations

from events.base import Event
from events.catalogue import Catalogue
from events.registry import ALL_EVENT_TYPES


class Deposited(Event, frozen=True, kw_only=True, tag="test.deposited.v1"):
    account: str
    amount: int


class Withdrawn(Event, frozen=True, kw_only=True, tag="test.withdrawn.v1"):
    account: str
    amount: int
    note: str = ""


TEST_TYPES = (Deposited, Withdrawn)
TEST_CATALOGUE = Catalogue((*ALL_EVENT_TYPES, *TEST_TYPES))
