"""Replay: state is a pure fold over events; a snapshot plus the tail after it gives the same state."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

import msgspec

from events.base import Event, tag_of
from events.log_events import Snapshot, snapshot_stream

if TYPE_CHECKING:
    from events.store import EventStore

__all__ = ["Projection", "fold", "replay", "snapshot_of"]

S = TypeVar("S")


def fold(events: Iterable[Event], evolve: Callable[[S, Event], S], initial: S) -> S:
    """``evolve`` applied to each event in order, starting from ``initial``."""
    state = initial
    for event in events:
        state = evolve(state, event)
    return state


@dataclass(frozen=True, slots=True)
class Projection(Generic[S]):
    """A named fold whose state can be snapshotted: ``state_type`` must be msgspec-encodable.

    ``types``: the event types ``evolve`` changes the state on (it must leave every other type's
    state as it is); ``None``: any. :func:`replay` then reads only those records, through the
    log's index of types, instead of every record of a log that may hold millions.
    """

    name: str
    initial: S
    evolve: Callable[[S, Event], S]
    state_type: type[S]
    types: tuple[type[Event], ...] | None = None
    #: The transient form of a pure ``evolve`` (optional, both or neither): ``owned_copy(state)``
    #: is a copy nothing else holds, which ``evolve_in_place(copy, event)`` changes and returns,
    #: with the result ``evolve`` would give. A long fold pays one copy instead of one per record.
    owned_copy: Callable[[S], S] | None = None
    evolve_in_place: Callable[[S, Event], S] | None = None

    def __post_init__(self) -> None:
        if (self.owned_copy is None) != (self.evolve_in_place is None):
            raise ValueError(
                f"projection {self.name!r}: owned_copy and evolve_in_place go together "
                "(a transient needs both)"
            )

    def transient(self, state: S) -> tuple[S, Callable[[S, Event], S]]:
        """A state the caller alone may fold into, starting as ``state`` (left untouched), and the
        function folding one event into it (``state = step(state, event)``)."""
        if self.owned_copy is not None and self.evolve_in_place is not None:
            return self.owned_copy(state), self.evolve_in_place
        return state, self.evolve

    def encode_state(self, state: S) -> bytes:
        return msgspec.json.encode(state)

    def decode_state(self, data: bytes) -> S:
        return msgspec.json.decode(data, type=self.state_type)


def snapshot_of(projection: Projection[S], state: S, through_seq: int) -> tuple[str, Snapshot]:
    """The stream and Snapshot event recording ``state`` as of ``through_seq``."""
    return snapshot_stream(projection.name), Snapshot(
        projection=projection.name,
        through_seq=through_seq,
        state=msgspec.Raw(projection.encode_state(state)),
    )


def replay(
    store: EventStore, projection: Projection[S], *, to_seq: int | None = None
) -> tuple[S, int]:
    """The projection's state after record ``to_seq`` (default: the head), and the last seq folded.

    Starts from the newest snapshot taken at or before ``to_seq`` and folds only the tail after it.
    """
    state = projection.initial
    start = 1
    snapshot = store.latest_snapshot(projection.name, at_or_before=to_seq)
    if snapshot is not None:
        body = snapshot.event
        assert isinstance(body, Snapshot)
        state = projection.decode_state(bytes(body.state))
        start = body.through_seq + 1
    last = start - 1
    state, evolve = projection.transient(state)
    tags: list[str] | None = None
    if projection.types is not None:
        catalogue = store.catalogue
        # Legacy tags too: an old record upcasts to a current type this fold may need.
        legacy = catalogue.tags - {tag_of(t) for t in catalogue.current_types}
        tags = sorted({tag_of(t) for t in projection.types} | legacy)
    for record in store.read(start, to_seq, types=tags):
        state = evolve(state, record.event)
        last = record.seq
    if tags is not None:
        # every record up to the end was considered, the skipped ones leave the state as it is
        last = max(last, store.head().seq if to_seq is None else min(to_seq, store.head().seq))
    return state, last
