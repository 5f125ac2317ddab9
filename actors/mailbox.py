"""A latest-value mailbox: for state (the limits in force), where only the newest value matters.

``put`` never blocks, so two actors that command each other (controls → hardware limits, hardware →
controls write verdicts) can never deadlock on full buffers; ``get`` waits for a value newer than the
last one taken.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import anyio

__all__ = ["Latest"]

T = TypeVar("T")


class Latest(Generic[T]):
    __slots__ = ("_changed", "_fresh", "_value", "puts", "overwritten")

    def __init__(self) -> None:
        self._value: T | None = None
        self._fresh = False
        self._changed = anyio.Event()
        self.puts = 0
        self.overwritten = 0

    def put(self, value: T) -> None:
        if self._fresh:
            self.overwritten += 1
        self._value = value
        self._fresh = True
        self.puts += 1
        self._changed.set()

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
