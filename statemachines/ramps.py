"""Ramps: a change of limit becomes a straight-line trajectory with deadlines (PROTOCOL.md §4 rule 11).

``setGradW`` is in hundredths of a percent of ``setMaxW`` per second (so 100 = 1 %/s); a control's
``rampTms`` (already converted to ``ControlSettings.ramp_time_s``) overrides it with a fixed duration.
Only power-valued modes ramp; switches, curves and power factors apply at once.

A ramp towards a tighter *limit* starts from where the DER is, not from the old limit
(:func:`start_from`, :meth:`Ramp.rebased`): the controls core plans the trajectory from the old
limit, and the hardware actor, which measures the DER, moves its start to the measured output at
the same slope, so curtailment arrives within the time the gradient implies.
"""

from __future__ import annotations

import math
from typing import Any, Final

import msgspec

from events.der_model import Mode

__all__ = [
    "LIMIT_MODES",
    "RAMPED_MODES",
    "Ramp",
    "RampError",
    "measured_for",
    "plan_ramp",
    "ramp_rate_per_s",
    "start_from",
]

#: Modes whose value is a power in watts, or a percent of setMaxW (``max_limit_pct``, ``fixed_w_pct``).
RAMPED_MODES: Final = frozenset(
    {
        Mode.EXPORT_LIMIT_W,
        Mode.IMPORT_LIMIT_W,
        Mode.GENERATION_LIMIT_W,
        Mode.LOAD_LIMIT_W,
        Mode.TARGET_W,
        Mode.STORAGE_TARGET_W,
        Mode.MAX_LIMIT_PCT,
        Mode.FIXED_W_PCT,
    }
)
_PERCENT_MODES: Final = frozenset({Mode.MAX_LIMIT_PCT, Mode.FIXED_W_PCT})
#: Ramped modes that cap what the DER (or the site) does, with the measurement they cap: a
#: (``site`` or ``der``, sign) pair, measured = sign × watts; ``None`` for ``max_limit_pct``, the
#: DER's output as a percent of setMaxW. Targets and setpoints are not limits: they ramp as planned.
LIMIT_MODES: Final[dict[Mode, tuple[str, float] | None]] = {
    Mode.EXPORT_LIMIT_W: ("site", 1.0),
    Mode.IMPORT_LIMIT_W: ("site", -1.0),
    Mode.GENERATION_LIMIT_W: ("der", 1.0),
    Mode.LOAD_LIMIT_W: ("der", -1.0),
    Mode.MAX_LIMIT_PCT: None,
}


class RampError(ValueError):
    """A ramp was asked for with impossible parameters (named in the message)."""


class Ramp(msgspec.Struct, frozen=True, kw_only=True):
    """Move ``mode`` from ``from_value`` at ``start_s`` to ``to_value`` at ``end_s`` in a straight line."""

    mode: Mode
    from_value: float
    to_value: float
    start_s: float
    end_s: float

    def value_at(self, now: float) -> float:
        if now <= self.start_s:
            return self.from_value
        if now >= self.end_s:
            return self.to_value
        fraction = (now - self.start_s) / (self.end_s - self.start_s)
        return self.from_value + (self.to_value - self.from_value) * fraction

    def rebased(self, start_value: float, now: float) -> Ramp | None:
        """The same slope from ``start_value`` at ``now`` to the same target (``None``: already
        there, a step). The slope is the planned one, so neither ``setGradW`` nor ``rampTms`` is
        exceeded, and from a start no further from the target than the plan is at ``now`` the
        target is reached no later than planned."""
        if start_value == self.to_value:
            return None
        span = self.end_s - self.start_s
        if span <= 0:
            return None
        slope = abs(self.to_value - self.from_value) / span
        if slope == 0:
            return None
        duration = abs(self.to_value - start_value) / slope
        return Ramp(
            mode=self.mode,
            from_value=start_value,
            to_value=self.to_value,
            start_s=now,
            end_s=now + duration,
        )

    def next_deadline(self, now: float, step_s: float) -> float | None:
        """When the trajectory next needs a write: every ``step_s``, then exactly at ``end_s``."""
        if now >= self.end_s:
            return None
        if step_s <= 0:
            raise RampError(f"step_s must be positive, got {step_s}")
        base = max(now, self.start_s)
        steps = math.floor((base - self.start_s) / step_s) + 1
        return min(self.start_s + steps * step_s, self.end_s)


def ramp_rate_per_s(mode: Mode, set_grad_w: int, set_max_w: float) -> float:
    """§4 rule 11: the ramp rate in the mode's unit per second.

    ``set_grad_w`` hundredths of a percent of ``set_max_w`` per second: watts for power modes, percent
    for percent-of-setMaxW modes.
    """
    if set_grad_w <= 0:
        raise RampError(f"setGradW must be positive, got {set_grad_w}")
    percent_per_s = set_grad_w / 100.0
    if mode in _PERCENT_MODES:
        return percent_per_s
    if set_max_w <= 0:
        raise RampError(f"setMaxW must be positive to ramp in watts, got {set_max_w}")
    return percent_per_s / 100.0 * set_max_w


def plan_ramp(
    mode: Mode,
    from_value: Any,
    to_value: Any,
    now: float,
    *,
    set_max_w: float | None,
    set_grad_w: int | None,
    ramp_time_s: float | None,
) -> Ramp | None:
    """§4 rule 11: the trajectory for one mode's change, or ``None`` when it applies at once.

    ``rampTms`` (``ramp_time_s``) wins over ``setGradW``; no ramp for a mode outside
    :data:`RAMPED_MODES`, for an appearing or vanishing value, without a rate, or at a ``setGradW``
    of 0, which the schema defines as "no limit".
    """
    if mode not in RAMPED_MODES or from_value is None or to_value is None:
        return None
    start, target = float(from_value), float(to_value)
    if start == target:
        return None
    if ramp_time_s is not None:
        if ramp_time_s < 0:
            raise RampError(f"rampTms must not be negative, got {ramp_time_s} s")
        duration = ramp_time_s
    elif set_grad_w == 0:
        return None  # sep.xsd DefaultDERControl/DERSettings setGradW: "0 means there is no limit"
    elif set_grad_w is not None and set_max_w is not None:
        duration = abs(target - start) / ramp_rate_per_s(mode, set_grad_w, set_max_w)
    else:
        return None
    if duration == 0:
        return None
    return Ramp(mode=mode, from_value=start, to_value=target, start_s=now, end_s=now + duration)


def start_from(
    planned: Ramp,
    now: float,
    *,
    applied: float | None,
    measured: float | None,
    rating: float | None,
) -> float:
    """§4 rule 11 (issue 14): where a limit's ramp starts — from where the DER is.

    ``applied`` is the value the device holds now (``None``: nothing applied yet), ``measured`` what
    the limited quantity measures now in the mode's unit, ``rating`` the most the DER can do in it.
    The old limit is the lesser of what is applied and where the plan is at ``now`` (never looser
    than the plan). Towards a tighter target the ramp starts at the measured output (or, unmeasured,
    at the rating), never above the old limit nor below the target: a limit far above what the DER
    does would otherwise spend the ramp constraining nothing. Towards a looser target it starts
    from the old limit: starting lower would tighten it.
    """
    old = planned.value_at(now)
    if applied is not None:
        old = min(old, applied)
    target = planned.to_value
    if target >= old:
        return old
    where = measured if measured is not None else rating
    if where is None:
        return old
    return max(target, min(old, where))


def measured_for(
    mode: Mode, *, site_w: float | None, der_w: float | None, max_w: float | None
) -> float | None:
    """What a limit mode caps, in its unit, from one reading (``None``: not measured).

    Signs as in ``events.telemetry``: site W positive = export, DER W positive = discharge; the
    percent mode is the DER's output as a percent of ``max_w`` (setMaxW)."""
    if mode not in LIMIT_MODES:
        return None
    what = LIMIT_MODES[mode]
    if what is None:
        if der_w is None or max_w is None or max_w <= 0:
            return None
        return der_w / max_w * 100.0
    point, sign = what
    value = site_w if point == "site" else der_w
    return None if value is None else sign * value
