"""The one adapter to trio's private scheduler internals: a seeded, repeatable schedule for worlds.

trio has no public API for this. What is used — ``trio._core._run.Deadlines`` (its ``add``, ``_heap``
and ``_active``), ``_ALLOW_DETERMINISTIC_SCHEDULING`` and the module generator ``_r`` — is checked by
``tests/sep2gw/test_trio_determinism.py``, which fails with a plain message on a trio release that
changed them (constraints.txt pins the release the simulation was tested with), and "same seed ⇒
byte-identical log" is tested on whole worlds.
"""

from __future__ import annotations

import heapq
import inspect
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import trio

__all__ = ["deterministic_trio", "private_api_problems"]


def private_api_problems() -> list[str]:
    """What :func:`deterministic_trio` needs from trio's internals and the installed trio lacks."""
    problems = []
    run_module: Any = getattr(getattr(trio, "_core", None), "_run", None)
    if run_module is None:
        return ["trio._core._run is gone"]
    deadlines = getattr(run_module, "Deadlines", None)
    if deadlines is None or not callable(getattr(deadlines, "add", None)):
        problems.append("trio._core._run.Deadlines.add is gone")
    elif list(inspect.signature(deadlines.add).parameters) != ["self", "deadline", "cancel_scope"]:
        problems.append("trio._core._run.Deadlines.add(self, deadline, cancel_scope) changed")
    else:
        fields = getattr(deadlines, "__attrs_attrs__", None) or ()
        names = {f.name for f in fields} or set(getattr(deadlines, "__annotations__", {}))
        for name in ("_heap", "_active"):
            if name not in names:
                problems.append(f"trio._core._run.Deadlines has no {name}")
    if not isinstance(getattr(run_module, "_ALLOW_DETERMINISTIC_SCHEDULING", None), bool):
        problems.append("trio._core._run._ALLOW_DETERMINISTIC_SCHEDULING is gone")
    if not callable(getattr(getattr(run_module, "_r", None), "seed", None)):
        problems.append("trio._core._run._r (the scheduler's generator) is gone")
    return problems


@contextmanager
def deterministic_trio(seed: int) -> Iterator[None]:
    """Make trio's scheduling a function of the seed alone.

    trio orders the tasks that wake together as they were woken, which follows iteration over sets
    of tasks (cancel delivery), i.e. memory addresses; with its deterministic mode on (the one its
    Hypothesis plugin uses) it sorts them by creation order and shuffles them with a module-level
    generator, which is seeded here. It also breaks
    ties between equal deadlines by ``id()`` of the cancel scope, i.e. by memory address — under a
    virtual clock many tasks sleep until the very same instant, so that alone reorders a run. For
    the simulation the tie is broken by registration order instead (deterministic, because
    everything before it is).
    """
    run_module: Any = trio._core._run
    original = run_module.Deadlines.add
    order = itertools.count()

    def add(self: Any, deadline: float, cancel_scope: Any) -> None:
        heapq.heappush(self._heap, (deadline, next(order), cancel_scope))
        self._active += 1

    run_module.Deadlines.add = add
    shuffle_by_seed = run_module._ALLOW_DETERMINISTIC_SCHEDULING
    run_module._ALLOW_DETERMINISTIC_SCHEDULING = True
    run_module._r.seed(seed)
    try:
        yield
    finally:
        run_module.Deadlines.add = original
        run_module._ALLOW_DETERMINISTIC_SCHEDULING = shuffle_by_seed
