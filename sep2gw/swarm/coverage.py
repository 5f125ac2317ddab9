"""Coverage guidance (issue 21): which scenario families and fault families a swarm has explored,
and how often, kept as JSON in the swarm's output folder so the next run sends its seeds where
coverage is thin.

A fault family explored ``n`` times is drawn with weight ``1 / (1 + n / mean)`` (the mean over all
families): a family explored half as often as the rest is drawn about a third more often, one never
explored twice as often as an average one, and no family is ever starved (every weight stays > 0).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import msgspec

__all__ = ["COVERAGE_FILE", "COVERAGE_SCHEMA", "Coverage", "CoverageError"]

COVERAGE_FILE: Final = "coverage.json"
#: The file's schema tag; a file with another one is refused, not misread.
COVERAGE_SCHEMA: Final = "sep2gw.swarm.coverage.v1"


class CoverageError(ValueError):
    """A coverage file that cannot be used (not JSON, another schema): bad input."""


class Coverage(msgspec.Struct, kw_only=True):
    """Counts of worlds run: per scenario family (``random`` or a library family), per scenario,
    per fault family (a world counts once for each family it exercised), and the violations."""

    schema: str = COVERAGE_SCHEMA
    worlds: int = 0
    violations: int = 0
    families: dict[str, int] = msgspec.field(default_factory=dict)
    scenarios: dict[str, int] = msgspec.field(default_factory=dict)
    faults: dict[str, int] = msgspec.field(default_factory=dict)

    def add(self, family: str, scenario: str, faults: Iterable[str], violated: bool) -> None:
        self.worlds += 1
        self.violations += violated
        self.families[family] = self.families.get(family, 0) + 1
        self.scenarios[scenario] = self.scenarios.get(scenario, 0) + 1
        for fault in faults:
            self.faults[fault] = self.faults.get(fault, 0) + 1

    def fault_weights(self, families: Iterable[str]) -> dict[str, float]:
        """The draw weight of each fault family: thinly explored families weigh more."""
        names = list(families)
        counts = [self.faults.get(name, 0) for name in names]
        mean = sum(counts) / len(counts) if counts else 0.0
        if mean == 0:
            return dict.fromkeys(names, 1.0)
        return {name: 1.0 / (1.0 + n / mean) for name, n in zip(names, counts, strict=True)}

    def thinnest(self, names: Iterable[str]) -> list[str]:
        """``names`` ordered from least to most explored (stable among equals)."""
        return sorted(names, key=lambda name: self.scenarios.get(name, 0))

    def lines(self, faults: Iterable[str]) -> list[str]:
        """The coverage summary: fault families, least explored first, then scenario families."""
        out = [f"coverage: {self.worlds} worlds, {self.violations} with violations"]
        ranked = sorted(faults, key=lambda f: self.faults.get(f, 0))
        out.append(
            "  fault families (least explored first): "
            + ", ".join(f"{f} {self.faults.get(f, 0)}" for f in ranked)
        )
        out.append(
            "  scenario families: "
            + ", ".join(f"{f} {n}" for f, n in sorted(self.families.items()))
        )
        return out

    @classmethod
    def load(cls, folder: Path) -> Coverage:
        """The coverage kept in ``folder`` (none yet: empty)."""
        path = folder / COVERAGE_FILE
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return cls()
        except OSError as exc:
            raise CoverageError(f"{path}: cannot read it: {exc.strerror or exc}") from None
        try:
            coverage = msgspec.json.decode(data, type=cls)
        except msgspec.DecodeError as exc:
            raise CoverageError(f"{path}: not a swarm coverage file: {exc}") from None
        if coverage.schema != COVERAGE_SCHEMA:
            raise CoverageError(
                f"{path}: schema {coverage.schema!r}, this version reads {COVERAGE_SCHEMA!r}"
            )
        return coverage

    def save(self, folder: Path) -> Path:
        """Write the coverage into ``folder`` (aside, then renamed: never a torn file)."""
        path = folder / COVERAGE_FILE
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(msgspec.to_builtins(self), indent=2, sort_keys=True) + "\n")
        os.replace(partial, path)
        return path
