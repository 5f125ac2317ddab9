"""The base of every recorded event and the rules its tag must follow.

Every event is a frozen, keyword-only msgspec Struct with an explicit, versioned tag stored in the
``type`` field. The tag, never the class name, is what a log remembers, so a class can be renamed or
moved without breaking old logs; a changed meaning gets a new tag version and an upcaster.
"""

from __future__ import annotations

import inspect
import re
from typing import Final

import msgspec

__all__ = ["TAG_FIELD", "TAG_PATTERN", "Event", "InvalidEventTag", "tag_of"]

TAG_FIELD: Final = "type"
#: ``area.name.vN``: lower-case dotted words ending in an explicit version, e.g. ``log.snapshot.v1``.
TAG_PATTERN: Final = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+\.v[1-9][0-9]*")


class InvalidEventTag(TypeError):
    """An event class was declared without an explicit, versioned tag (a programming error)."""


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field=TAG_FIELD):
    """Base class of every event written to the log.

    Declare subclasses as ``class X(Event, frozen=True, kw_only=True, tag="area.name.vN")``: msgspec
    applies ``kw_only`` only to the fields of the class that says it, and mypy needs ``frozen`` repeated;
    the catalogue refuses a type that is not both.
    """


#: Event classes whose tag was checked (a class's tag and fields never change once defined). The
#: check inspects the signature, ~0.25 ms a class: every replay asks for the whole catalogue's tags,
#: so a fleet of 300 sites starting spent a third of its CPU here.
_CHECKED: dict[type[Event], str] = {}


def tag_of(event_type: type[Event]) -> str:
    """The explicit tag of an event class; refuses the implicit class-name tag msgspec would invent."""
    checked = _CHECKED.get(event_type)
    if checked is not None:
        return checked
    tag = _checked_tag(event_type)
    _CHECKED[event_type] = tag
    return tag


def _checked_tag(event_type: type[Event]) -> str:
    tag = event_type.__struct_config__.tag
    if not isinstance(tag, str) or tag == event_type.__name__ or not TAG_PATTERN.fullmatch(tag):
        raise InvalidEventTag(
            f"{event_type.__module__}.{event_type.__qualname__} must declare an explicit versioned tag "
            f"like tag='area.name.v1' (got {tag!r})"
        )
    if not event_type.__struct_config__.frozen:
        raise InvalidEventTag(f"{event_type.__qualname__} must be declared frozen=True")
    positional = [
        name
        for name, parameter in inspect.signature(event_type).parameters.items()
        if parameter.kind is not inspect.Parameter.KEYWORD_ONLY
    ]
    if positional:
        raise InvalidEventTag(
            f"{event_type.__qualname__} must be declared kw_only=True (positional fields: {positional})"
        )
    return tag
