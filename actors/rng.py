"""The one owner of randomness. Every draw a decision uses is recorded as an event by the caller, so
replay never needs the generator: the log holds the numbers, not the seed's consequences."""

from __future__ import annotations

import os
import random

__all__ = ["RandomSource"]


class RandomSource:
    """A seeded generator. ``seed=None`` takes one from the OS; ``seed`` says which was used.

    The generator's state (~2.5 kB) is made at the first draw: most sources of a site never draw
    (a link's jitter after failures, pricing's), and a fleet holds a thousand sites' sources. The
    draws are the same whenever the first one comes."""

    __slots__ = ("_random", "seed")

    def __init__(self, seed: int | None = None) -> None:
        self.seed = int.from_bytes(os.urandom(8), "big") if seed is None else seed
        self._random: random.Random | None = None

    def _generator(self) -> random.Random:
        if self._random is None:
            self._random = random.Random(self.seed)
        return self._random

    def uniform(self, low: float, high: float) -> float:
        """A draw from [low, high] (either order: a negative randomisation bound is allowed)."""
        return self._generator().uniform(low, high)

    def integer(self, low: int, high: int) -> int:
        """A draw from the integers in [min(low, high), max(low, high)]."""
        return self._generator().randint(min(low, high), max(low, high))

    def fork(self, label: str) -> RandomSource:
        """An independent, reproducible generator for one consumer (e.g. one simulated component)."""
        derived = random.Random(f"{self.seed}:{label}").getrandbits(64)
        return RandomSource(derived)
