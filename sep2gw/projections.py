"""The projections (named folds) of the application, by name: ``log verify`` re-folds every snapshot of
these and checks it equals what the log says. An issue that adds a snapshotted fold registers it here."""

from __future__ import annotations

from typing import Any

from events.replay import Projection

__all__ = ["PROJECTIONS"]

PROJECTIONS: dict[str, Projection[Any]] = {}
