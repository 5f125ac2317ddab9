"""Ramps: a change of limit becomes a straight-line trajectory with deadlines (PROTOCOL.md §4 rule 11).

``setGradW`` is in hundredths of a percent of ``setMaxW`` per second (so 100 = 1 %/s); a control's
``rampTms`` (already converted to ``ControlSettings.ramp_time_s``) overrides it with a fixed duration.
Only power-valued modes ramp; switches, curves and power factors apply at once.
"""

from __future__ import annotations

import math
from typing import Any, Final

import msgspec

from events.der_model import Mode

__all__ = ["RAMPED_MODES", "Ramp", "RampError", "plan_ramp", "ramp_rate_per_s"]

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
