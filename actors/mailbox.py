"""A latest-value mailbox: for state (the limits in force), where only the newest value matters.

``put`` never blocks, so two actors that command each other (controls → hardware limits, hardware →
controls write verdicts) can never deadlock on full buffers; ``get`` waits for a value newer than the
last one taken.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

import anyio

__all__ = ["Latest", "Watch"]

T = TypeVar("T")


class Latest(Generic[T]):
    __slots__ = ("_changed", "_fresh", "_value", "_wakes", "puts", "overwritten")

    def __init__(self) -> None:
        self._value: T | None = None
        self._fresh = False
        self._changed = anyio.Event()
        self._wakes: Callable[[T], bool] | None = None
        self.puts = 0
        self.overwritten = 0

    def wake_only_if(self, wakes: Callable[[T], bool]) -> None:
        """The taker's filter: a value put wakes a taker waiting in :meth:`take` only if
        ``wakes(value)``; any other is kept as the newest (``peek``, and the next ``take``) without
        a wake. For a taker that would look at most values only to go back to sleep (the DER status
        reporter, once a second per site); ``wakes`` runs in the putter's task and must only read."""
        self._wakes = wakes

    def put(self, value: T) -> None:
        if self._fresh:
            self.overwritten += 1
        self._value = value
        self._fresh = True
        self.puts += 1
        if self._wakes is None or self._asks_to_wake(value):
            self._changed.set()

    def _asks_to_wake(self, value: T) -> bool:
        """The taker's filter, run in the putter's task: a filter that fails wakes the taker, which
        meets the same value in its own task (the putter, the hardware actor's loop, never fails
        for another actor's reading of what it put)."""
        assert self._wakes is not None
        try:
            return self._wakes(value)
        except Exception:
            return True

    def put_merged(self, value: T, merge: Callable[[T, T], T]) -> None:
        """Put ``value``, merged into the value not yet taken (``merge(untaken, value)``), if any:
        for news where each item counts, not only the newest."""
        self.put(merge(self._value, value) if self._fresh and self._value is not None else value)

    def take_nowait(self) -> T:
        """The newest value not yet taken; raises ``anyio.WouldBlock`` if there is none."""
        if not self._fresh:
            raise anyio.WouldBlock
        self._fresh = False
        self._changed = anyio.Event()
        assert self._value is not None
        return self._value

    async def take(self) -> T:
        await self.wait()
        return self.take_nowait()

    @property
    def fresh(self) -> bool:
        """Whether a value is waiting to be taken."""
        return self._fresh

    async def wait(self) -> None:
        """Return once a value is waiting to be taken (at once if one is), without taking it: for
        an actor that sleeps until a deadline *or* news in one of several mailboxes."""
        while not self._fresh:
            await self._changed.wait()

    def peek(self) -> T | None:
        """The newest value put, taken or not (``None`` before the first): for a reader that must
        act on the latest news without consuming it."""
        return self._value


class Watch(Generic[T]):
    """A value that any number of readers follow (the gateway's status: issue 20 point 2).

    Latest-value semantics for every reader at once: ``put`` never blocks and keeps nothing but
    the newest value, so a slow reader (an embedding application, a metrics scrape) costs the
    writer nothing and skips the values it was too slow to see; memory is one value whatever the
    number of readers or their speed.
    """

    __slots__ = ("_changed", "_closed", "_value", "_version")

    def __init__(self, value: T) -> None:
        self._value = value
        self._version = 0
        self._closed = False
        self._changed: anyio.Event | None = None  # made by the first waiting reader

    def put(self, value: T) -> None:
        self._value = value
        self._version += 1
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    def close(self) -> None:
        """No more values: readers end once they have the last one."""
        self._closed = True
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    def peek(self) -> T:
        return self._value

    @property
    def version(self) -> int:
        """How many values were put: a reader compares it with the one it saw last."""
        return self._version

    async def wait_changed(self, seen: int) -> tuple[int, T] | None:
        """The newest value and its version, once the version is past ``seen`` (at once if it is);
        ``None`` if the watch was closed with nothing newer."""
        while self._version <= seen:
            if self._closed:
                return None
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()
        return self._version, self._value

    async def follow(self) -> AsyncIterator[T]:
        """The current value, then each newer one as it comes (only the newest if several came
        while the reader was busy); ends after the last value once the watch is closed."""
        seen = self._version
        yield self._value
        while (newer := await self.wait_changed(seen)) is not None:
            seen, value = newer
            yield value
