"""Actors: the only code that awaits, sleeps, reads clocks, opens sockets or files."""

__all__: list[str] = []
