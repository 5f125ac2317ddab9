"""The one owner of randomness (actors.rng.RandomSource)."""

from __future__ import annotations


def test_a_source_makes_its_generator_at_the_first_draw_and_draws_the_same() -> None:
    """A fleet holds a thousand sites' sources, most never drawing: the ~2.5 kB of generator
    state waits for the first draw, and the draws are what an eager generator gives."""
    import random

    from actors.rng import RandomSource

    lazy = RandomSource(42)
    assert lazy._random is None
    eager = random.Random(42)
    assert [lazy.uniform(0, 1) for _ in range(3)] == [eager.uniform(0, 1) for _ in range(3)]
    assert lazy._random is not None
    assert lazy.fork("link").seed == RandomSource(42).fork("link").seed
