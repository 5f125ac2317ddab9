"""A catalogue of event types: one reusable Encoder and Decoder over their tagged union, plus upcasters.

A log outlives the code that wrote it. When an event's meaning changes, the old class keeps its old tag
(``x.v1``), the new class takes the next tag (``x.v2``), and an upcaster turns a decoded v1 into a v2, so
every consumer only ever sees current types. Upcasters may chain (v1 → v2 → v3).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Union

import msgspec

from events.base import TAG_FIELD, Event, InvalidEventTag, tag_of
from events.errors import UnknownEventTag

__all__ = ["Catalogue", "Upcaster"]

Upcaster = Callable[[Any], Event]


class _TagOnly(msgspec.Struct):
    type: str = ""


_tag_only_decoder = msgspec.json.Decoder(_TagOnly)


class Catalogue:
    """The closed set of event types one log may hold, with their codec."""

    __slots__ = ("_by_tag", "_current", "_decoder", "_encoder", "_upcasters", "_tags_of")

    def __init__(
        self,
        current: Iterable[type[Event]],
        upcasters: Mapping[type[Event], Upcaster] | None = None,
    ) -> None:
        self._current = tuple(current)
        self._upcasters = dict(upcasters or {})
        every = self._current + tuple(t for t in self._upcasters if t not in self._current)
        self._by_tag: dict[str, type[Event]] = {}
        self._tags_of: dict[type[Event], str] = {}
        for event_type in every:
            tag = tag_of(event_type)
            if tag in self._by_tag and self._by_tag[tag] is not event_type:
                raise InvalidEventTag(
                    f"tag {tag!r} is used by both {self._by_tag[tag].__qualname__} and "
                    f"{event_type.__qualname__}"
                )
            self._by_tag[tag] = event_type
            self._tags_of[event_type] = tag
        for legacy in self._upcasters:
            if legacy in self._current:
                raise InvalidEventTag(
                    f"{legacy.__qualname__} is current and cannot have an upcaster"
                )
        if not every:
            raise InvalidEventTag("a catalogue needs at least one event type")
        union: Any = Union[every]  # noqa: UP007 - a runtime union over a tuple of classes
        self._encoder = msgspec.json.Encoder()
        self._decoder: msgspec.json.Decoder[Event] = msgspec.json.Decoder(union)

    @property
    def tags(self) -> frozenset[str]:
        """Every tag this catalogue can read, current and legacy."""
        return frozenset(self._by_tag)

    @property
    def current_types(self) -> tuple[type[Event], ...]:
        return self._current

    def tag(self, event: Event) -> str:
        """The tag stored for ``event``; refuses a type outside the catalogue (it could not be read back)."""
        try:
            return self._tags_of[type(event)]
        except KeyError:
            raise InvalidEventTag(
                f"{type(event).__qualname__} is not in this log's catalogue; add it to events.catalogue"
            ) from None

    def encode(self, event: Event) -> bytes:
        return self._encoder.encode(event)

    def decode(self, data: bytes | str, *, where: str = "") -> Event:
        """Decode one body, upcast to the current type. Raises UnknownEventTag or msgspec errors."""
        try:
            event = self._decoder.decode(data)
        except msgspec.ValidationError:
            tag = _read_tag(data)
            if tag not in self._by_tag:
                raise UnknownEventTag(tag, where=where) from None
            raise
        upcast = self._upcasters.get(type(event))
        while upcast is not None:
            event = upcast(event)
            upcast = self._upcasters.get(type(event))
        return event

    def decode_batch(self, bodies: list[str]) -> list[Event] | None:
        """Decode many bodies in one call (faster than one by one), or ``None`` if any of them fails:
        the caller then decodes them singly so the error names the exact record."""
        try:
            events = self._decoder.decode_lines("\n".join(bodies))
        except msgspec.MsgspecError:
            return None
        if len(events) != len(bodies):
            return None
        self._upcast_all(events)
        return events

    def decode_stored_batch(self, bodies: list[bytes]) -> tuple[list[str], list[Event]] | None:
        """Decode many stored bodies in one call: the tag each was stored under, and the events
        upcast to their current types; ``None`` if any of them fails, as :meth:`decode_batch`.

        The stored tag is the tag of the class the body decoded as, before upcasting: a tagged union
        decodes a body only into the class its ``type`` field names, so this is the body's own tag
        without a second parse (what verification compares with the row's type column)."""
        try:
            events = self._decoder.decode_lines(b"\n".join(bodies))
        except msgspec.MsgspecError:
            return None
        if len(events) != len(bodies):
            return None
        tags_of = self._tags_of
        tags = [tags_of[type(event)] for event in events]
        self._upcast_all(events)
        return tags, events

    def _upcast_all(self, events: list[Event]) -> None:
        """Upcast each event in place to its current type (nothing to do without upcasters)."""
        upcasters = self._upcasters
        if upcasters:
            for index, event in enumerate(events):
                upcast = upcasters.get(type(event))
                while upcast is not None:
                    event = upcast(event)
                    upcast = upcasters.get(type(event))
                events[index] = event

    def with_types(
        self, more: Iterable[type[Event]], upcasters: Mapping[type[Event], Upcaster] | None = None
    ) -> Catalogue:
        """A new catalogue that also knows ``more`` (used to compose the application's catalogue)."""
        return Catalogue(self._current + tuple(more), {**self._upcasters, **(upcasters or {})})


def _read_tag(data: bytes | str) -> str:
    try:
        return _tag_only_decoder.decode(data).type
    except msgspec.DecodeError:
        return f"<undecodable, no {TAG_FIELD!r} field>"
