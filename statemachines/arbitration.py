"""Arbitration: which value is in force for each control mode at an instant, and who supplies it.

Pure and stateless: the sticky part of supersession (a mode an event lost never comes back, §4 rule 7)
is carried by each :class:`Candidate`'s ``lost`` set, which the controls core records as events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import msgspec

from events.der_model import ControlSettings, DefaultControl, Mode, Program

__all__ = [
    "MODE_FIELDS",
    "Arbitration",
    "Candidate",
    "DefaultSupply",
    "arbitrate",
    "control_source",
    "default_source",
    "merge_defaults",
    "rank",
    "settings_items",
]


def control_source(mrid: str) -> str:
    return f"control:{mrid}"


def default_source(program_id: str) -> str:
    return f"default:{program_id}"


def rank(primacy: int, creation_time_s: int, mrid: str) -> tuple[int, int, str]:
    """The order of §4 rule 7: the greater rank wins (lower primacy, then later creationTime).

    The mRID only breaks a tie the rule leaves open, so the outcome never depends on input order.
    """
    return (-primacy, creation_time_s, mrid)


class Candidate(msgspec.Struct, frozen=True, gc=False):
    """An event that may be in force: its effective period ``[start_s, end_s)`` (``end_s`` already cut
    short by a pending cancel-with-randomisation), its rank, the modes it sets and those it lost."""

    mrid: str
    rank: tuple[int, int, str]
    start_s: int | float
    end_s: int | float
    items: tuple[tuple[Mode, Any], ...]
    lost: frozenset[Mode] = frozenset()


class DefaultSupply(msgspec.Struct, frozen=True, gc=False):
    """The default value of one mode and the program whose DefaultDERControl supplies it."""

    value: Any
    source: str


class Arbitration(msgspec.Struct, frozen=True, gc=False):
    """The values in force (``values``), their suppliers and the next instant anything changes."""

    values: dict[Mode, Any]
    sources: dict[Mode, str]
    next_change_s: int | float | None

    def settings(self) -> ControlSettings:
        return ControlSettings(**{mode.value: value for mode, value in self.values.items()})


def merge_defaults(
    programs: Iterable[Program], defaults: Mapping[str, DefaultControl]
) -> dict[Mode, DefaultSupply]:
    """§4 rule 10: a mode no event controls follows the DefaultDERControl of the program with the
    lowest primacy value that has one setting that mode (per mode; ties broken by program id)."""
    ordered = sorted(programs, key=lambda p: (p.primacy, p.program_id))
    merged: dict[Mode, DefaultSupply] = {}
    for program in ordered:
        default = defaults.get(program.program_id)
        if default is None:
            continue
        source = default_source(program.program_id)
        for mode, value in settings_items(default.settings):
            if mode not in merged:
                merged[mode] = DefaultSupply(value, source)
    return merged


#: (mode, field name) pairs, so hot loops skip the enum's property lookup.
MODE_FIELDS: Final = tuple((mode, mode.value) for mode in Mode)


def settings_items(settings: ControlSettings) -> tuple[tuple[Mode, Any], ...]:
    """The (mode, value) pairs a settings object sets, in ``Mode`` order."""
    return tuple(
        (mode, value)
        for mode, name in MODE_FIELDS
        if (value := getattr(settings, name)) is not None
    )


def arbitrate(
    candidates: Sequence[Candidate], defaults: Mapping[Mode, DefaultSupply], now: float
) -> Arbitration:
    """The limits in force at ``now`` (§4 rules 7 and 10).

    For each mode, among the candidates in effect at ``now`` (``start_s <= now < end_s``, half-open)
    that set the mode and have not lost it, the one of greatest :func:`rank` supplies it; a mode no
    event supplies follows ``defaults``. ``next_change_s`` is the nearest future start or end.
    """
    best: dict[Mode, tuple[tuple[int, int, str], Any, str]] = {}
    next_change: int | float | None = None
    for c in candidates:
        start = c.start_s
        if now < start:
            if next_change is None or start < next_change:
                next_change = start
            continue
        end = c.end_s
        if now >= end:
            continue
        if next_change is None or end < next_change:
            next_change = end
        key = c.rank
        lost = c.lost
        for mode, value in c.items:
            if lost and mode in lost:
                continue
            held = best.get(mode)
            if held is None or key > held[0]:
                best[mode] = (key, value, c.mrid)
    values: dict[Mode, Any] = {}
    sources: dict[Mode, str] = {}
    for mode, supply in defaults.items():
        if mode not in best:
            values[mode] = supply.value
            sources[mode] = supply.source
    for mode, (_, value, mrid) in best.items():
        values[mode] = value
        sources[mode] = "control:" + mrid
    return Arbitration(values, sources, next_change)
