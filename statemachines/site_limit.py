"""The DER active-power setpoint for the limits in force, with closed-loop connection-point limits.

Pure: every input (the limits, the DER rating, the latest site-meter and DER readings, ``now``) is an
argument, and the only memory is :class:`LoopState`. The hardware actor (through a driver) calls
:func:`step` once per control period and writes the setpoint it returns.

Sign conventions (``events.telemetry``): DER power is positive when the DER injects (a battery
discharges); site power is positive when the site exports at the connection point.

How the modes combine (CSIP-AUS §2.3 dynamic operating envelopes; IEEE 2030.5 §10.10 DERControl):

1. The *requested* power is ``fixed_w_pct`` (percent of the maximum discharge rate when positive, of
   the maximum charge rate when negative, per ``opModFixedW``), else ``target_w``, else
   ``storage_target_w`` (a storage target beside a target of the whole DER is recorded as held by
   it). With none of these but some limit in force the DER's own logic runs as
   long as its output keeps within the bounds; when it does not, the loop takes over holding the
   output the DER had then (not its latest output, which the limits themselves moved: that would
   ratchet), moves off it only as far as a bound needs, and releases the DER again once that held
   output is inside the bounds by the deadband;
   with no power mode in force at all the setpoint is released (``None``) to the device's own logic.
2. DER bounds always hold: nameplate/settings discharge and charge rates, ``setMaxW``,
   ``max_limit_pct`` of ``setMaxW`` and ``generation_limit_w`` on the injecting side,
   ``load_limit_w`` on the absorbing side.
3. Connection-point bounds (``export_limit_w``, ``import_limit_w``) close the loop on the site meter:
   the rest of the site (load and PV) is ``site_w - der_w``, so the DER power that keeps the meter at
   the limit is ``limit - (site_w - der_w)``, less a safety ``margin_w``. Where they conflict with
   the DER bounds, the DER bounds win and the decision says the site limit cannot be met.
4. Moves are rate limited (``rate_w_per_s``, or a straight ramp over the control's ``ramp_time_s``
   when it has one) and small moves inside ``deadband_w`` are not written,
   but neither may ever hold the DER outside a bound: moves towards compliance are immediate.
"""

from __future__ import annotations

import math
from typing import Final

import msgspec

from events.der_model import ControlSettings, Mode
from events.hardware_events import Clamp

__all__ = [
    "POWER_MODES",
    "Clamp",
    "DerRating",
    "InvalidLimit",
    "LoopConfig",
    "LoopDecision",
    "LoopState",
    "SOC_EDGE_PCT",
    "rating_at_charge",
    "step",
    "validate_limits",
]

#: The modes that shape the DER's active power; the setpoint is released when none is in force.
POWER_MODES = frozenset(
    {
        Mode.EXPORT_LIMIT_W,
        Mode.IMPORT_LIMIT_W,
        Mode.GENERATION_LIMIT_W,
        Mode.LOAD_LIMIT_W,
        Mode.FIXED_W_PCT,
        Mode.MAX_LIMIT_PCT,
        Mode.TARGET_W,
        Mode.STORAGE_TARGET_W,
    }
)


class InvalidLimit(ValueError):
    """A limit that no DER could apply: NaN, infinite, or outside the mode's range."""

    def __init__(self, mode: str, value: object, why: str) -> None:
        super().__init__(f"{mode}={value!r} refused: {why}")
        self.mode = mode
        self.value = value
        self.why = why


class DerRating(msgspec.Struct, frozen=True, kw_only=True):
    """What the DER can do now: the lesser of nameplate and current settings, in W (all ≥ 0)."""

    max_discharge_w: float
    max_charge_w: float
    max_w: float  # setMaxW: the reference of max_limit_pct and of percent modes

    def __post_init__(self) -> None:
        for name in ("max_discharge_w", "max_charge_w", "max_w"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise InvalidLimit(name, value, "a rating is a finite number ≥ 0")


class LoopConfig(msgspec.Struct, frozen=True, kw_only=True):
    deadband_w: float = 50.0
    rate_w_per_s: float = 1000.0
    margin_w: float = 50.0


class LoopState(msgspec.Struct, frozen=True, kw_only=True):
    setpoint_w: float | None = None
    at_s: float | None = None
    ramp_to_w: float | None = None  # the target of the ramp in progress (``ramp_time_s``)
    ramp_w_per_s: float | None = None
    hold_w: float | None = None  # the output held while no power target is in force


class LoopDecision(msgspec.Struct, frozen=True, kw_only=True):
    setpoint_w: float | None  # None: released to the device's own logic
    write: bool  # False inside the deadband: the previous setpoint stays
    clamps: tuple[Clamp, ...] = ()
    site_limit_met: bool | None = None  # None: no connection-point limit in force (or no meter)


_PCT_MODES = ("max_limit_pct",)
_NON_NEGATIVE_W = ("export_limit_w", "import_limit_w", "generation_limit_w", "load_limit_w")
_SIGNED_W = ("target_w", "storage_target_w")


def validate_limits(limits: ControlSettings) -> None:
    """Refuse values no DER can apply (NaN, infinities, negative limits, percentages beyond 100)."""
    for name in (*_NON_NEGATIVE_W, *_SIGNED_W, *_PCT_MODES, "fixed_w_pct", "ramp_time_s"):
        value = getattr(limits, name)
        if value is None:
            continue
        if not math.isfinite(value):
            raise InvalidLimit(name, value, "not a finite number")
        if name in _NON_NEGATIVE_W and value < 0:
            raise InvalidLimit(name, value, "a limit is ≥ 0 W")
        if name in _PCT_MODES and not 0 <= value <= 100:
            raise InvalidLimit(name, value, "a percentage of setMaxW is within 0..100")
        if name == "fixed_w_pct" and not -100 <= value <= 100:
            raise InvalidLimit(name, value, "opModFixedW is within -100..100 percent")
        if name == "ramp_time_s" and value < 0:
            raise InvalidLimit(name, value, "a ramp time is ≥ 0 s")


def _requested(limits: ControlSettings, rating: DerRating) -> tuple[str, float] | None:
    if limits.fixed_w_pct is not None:
        pct = limits.fixed_w_pct
        base = rating.max_discharge_w if pct >= 0 else rating.max_charge_w
        return "fixed_w_pct", pct / 100.0 * base
    if limits.target_w is not None:
        return "target_w", limits.target_w
    if limits.storage_target_w is not None:
        return "storage_target_w", limits.storage_target_w
    return None


def _overridden_storage_target(limits: ControlSettings, mode: str, power: float) -> Clamp | None:
    """A storage target in force beside a target of the whole DER: the DER's target wins.

    CSIP-AUS v1.3 storage: ``opModStorageTargetW`` is the target output of the storage components
    within the EndDevice; ``opModFixedW`` and ``opModTargetW`` set the output of the whole DER,
    which for a battery DER includes them. The two come from different programs (they are
    different modes, so neither supersedes the other, PROTOCOL.md §4 rule 7); the whole DER's target
    is the one followed, and the storage target is recorded as held at that output by it, so the
    log shows it was not followed and why."""
    storage = limits.storage_target_w
    if storage is None or mode not in ("fixed_w_pct", "target_w") or storage == power:
        return None
    return Clamp(mode="storage_target_w", requested=storage, applied=power, bound=mode)


#: How near a state-of-charge bound a battery counts as at it (DERs report SoC rounded).
SOC_EDGE_PCT: Final = 0.5


def rating_at_charge(
    rating: DerRating,
    soc_pct: float | None,
    *,
    soc_min_pct: float | None = None,
    soc_max_pct: float | None = None,
) -> DerRating:
    """A battery at a bound of its state of charge can only move away from it: full, it cannot
    charge; at its floor, it cannot discharge. Without a reading the rating stands; bounds the DER
    does not report, or reports as no usable range, are 0 % and 100 %. (The swarm's 72 h world showed the loop planning a charge
    of a full battery under a morning export envelope and logging the limit as met.)"""
    if soc_pct is None:
        return rating
    if (
        soc_min_pct is None
        or soc_max_pct is None
        or not 0.0 <= soc_min_pct < soc_max_pct - 2 * SOC_EDGE_PCT
        or soc_max_pct > 100.0
    ):
        # bounds a device cannot mean (or reports only in part): the whole range instead of
        # never charging or never discharging again
        soc_min_pct, soc_max_pct = 0.0, 100.0
    full = soc_pct >= soc_max_pct - SOC_EDGE_PCT
    empty = soc_pct <= soc_min_pct + SOC_EDGE_PCT
    if not full and not empty:
        return rating
    return msgspec.structs.replace(
        rating,
        max_charge_w=0.0 if full else rating.max_charge_w,
        max_discharge_w=0.0 if empty else rating.max_discharge_w,
    )


def _der_bounds(limits: ControlSettings, rating: DerRating) -> tuple[float, str, float, str]:
    """The DER powers the limits and the rating allow: none but 0 W while it is told to cease to
    energize or to disconnect (opModEnergize / opModConnect false), so a site limit that needs the
    DER is then honestly not met by its range."""
    for mode in ("energize", "connect"):
        if getattr(limits, mode) is False:
            return 0.0, mode, 0.0, mode
    high, high_by = rating.max_discharge_w, "max_discharge_w"
    for value, name in (
        (rating.max_w, "max_w"),
        (limits.generation_limit_w, "generation_limit_w"),
        (
            None if limits.max_limit_pct is None else limits.max_limit_pct / 100 * rating.max_w,
            "max_limit_pct",
        ),
    ):
        if value is not None and value < high:
            high, high_by = value, name
    low, low_by = -rating.max_charge_w, "max_charge_w"
    if limits.load_limit_w is not None and -limits.load_limit_w > low:
        low, low_by = -limits.load_limit_w, "load_limit_w"
    return low, low_by, high, high_by


def _site_bounds(
    limits: ControlSettings, config: LoopConfig, *, site_w: float | None, der_w: float | None
) -> tuple[float, float] | None:
    """The DER powers keeping the meter within the connection-point limits (less the margin);
    ``None`` without such a limit or without both readings."""
    if limits.export_limit_w is None and limits.import_limit_w is None:
        return None
    if site_w is None or der_w is None:
        return None
    rest_w = site_w - der_w  # load and PV: what the meter would read with the DER at 0 W
    margin = config.margin_w
    if limits.export_limit_w is not None and limits.import_limit_w is not None:
        # Limits closer than two margins (zero exchange: both 0 W): a full margin on each side
        # would push the meter across the opposite limit, so the margin is half the window.
        margin = min(margin, (limits.export_limit_w + limits.import_limit_w) / 2)
    site_high = (
        math.inf if limits.export_limit_w is None else limits.export_limit_w - margin - rest_w
    )
    site_low = (
        -math.inf if limits.import_limit_w is None else -(limits.import_limit_w - margin) - rest_w
    )
    return site_low, site_high


def step(
    state: LoopState,
    config: LoopConfig,
    *,
    now: float,
    limits: ControlSettings,
    rating: DerRating,
    site_w: float | None,
    der_w: float | None,
) -> tuple[LoopState, LoopDecision]:
    """One control period: the setpoint to write for ``limits`` given the latest readings."""
    validate_limits(limits)
    if not limits.modes() & POWER_MODES:
        return LoopState(), LoopDecision(setpoint_w=None, write=state.setpoint_w is not None)
    clamps: list[Clamp] = []
    low, low_by, high, high_by = _der_bounds(limits, rating)
    site = _site_bounds(limits, config, site_w=site_w, der_w=der_w)
    feasible_low, feasible_high = low, high
    site_met: bool | None = None
    if site is not None:
        site_low, site_high = site
        site_met = site_low <= high and site_high >= low
        feasible_low = min(max(low, site_low), high)
        feasible_high = max(min(high, site_high), low)
    requested = _requested(limits, rating)
    hold: float | None = None
    if requested is None:
        # Limits but no target (CSIP-AUS envelopes are in force all the time): the DER's own logic
        # runs while it keeps within them; we take over only when it does not, holding what it did
        # then and moving off that only as far as a bound needs; once that held output is inside
        # the bounds again (by the deadband), the DER is released back to its own logic.
        if state.setpoint_w is None:
            if der_w is not None and feasible_low <= der_w <= feasible_high:
                return LoopState(), LoopDecision(
                    setpoint_w=None, write=False, site_limit_met=site_met
                )
            hold = 0.0 if der_w is None else der_w
        else:
            hold = state.hold_w
            if hold is None:  # a target just ended: what the DER does now is what to hold
                hold = der_w if der_w is not None else state.setpoint_w
            band = config.deadband_w
            # Without a DER reading nothing shows its own logic would comply: keep holding.
            if der_w is not None and feasible_low + band <= hold <= feasible_high - band:
                return LoopState(), LoopDecision(
                    setpoint_w=None, write=True, site_limit_met=site_met
                )
        requested = ("hold", hold)
    mode, power = requested
    if power > high:
        clamps.append(Clamp(mode=mode, requested=power, applied=high, bound=high_by))
        power = high
    elif power < low:
        clamps.append(Clamp(mode=mode, requested=power, applied=low, bound=low_by))
        power = low
    if site is not None:
        site_low, site_high = site
        if power > site_high:
            clamps.append(
                Clamp(
                    mode=mode, requested=power, applied=max(site_high, low), bound="export_limit_w"
                )
            )
        elif power < site_low:
            clamps.append(
                Clamp(
                    mode=mode, requested=power, applied=min(site_low, high), bound="import_limit_w"
                )
            )
        power = min(max(power, feasible_low), feasible_high)
    overridden = _overridden_storage_target(limits, mode, power)
    if overridden is not None:
        clamps.append(overridden)
    previous = state.setpoint_w
    ramp_to, ramp_rate = None, None
    if previous is not None and state.at_s is not None:
        rate = config.rate_w_per_s
        if limits.ramp_time_s is not None:
            # IEEE 2030.5 §10.10 rampTms: reach the new value in ramp_time_s, i.e. a straight ramp
            # whose slope is fixed when the target changes (not re-derived every period).
            ramp_to = power
            if state.ramp_to_w is not None and abs(state.ramp_to_w - power) < config.deadband_w:
                ramp_to, ramp_rate = state.ramp_to_w, state.ramp_w_per_s
            else:
                distance = abs(power - previous)
                ramp_rate = math.inf if limits.ramp_time_s == 0 else distance / limits.ramp_time_s
            rate = math.inf if ramp_rate is None else ramp_rate
        allowed = rate * max(0.0, now - state.at_s)
        power = min(max(power, previous - allowed), previous + allowed)
        # The rate limit never keeps the DER outside a bound.
        power = min(max(power, feasible_low), feasible_high)
        if abs(power - previous) < config.deadband_w and feasible_low <= previous <= feasible_high:
            if state.hold_w != hold:
                state = msgspec.structs.replace(state, hold_w=hold)
            return state, LoopDecision(
                setpoint_w=previous, write=False, clamps=tuple(clamps), site_limit_met=site_met
            )
    return (
        LoopState(
            setpoint_w=power, at_s=now, ramp_to_w=ramp_to, ramp_w_per_s=ramp_rate, hold_w=hold
        ),
        LoopDecision(setpoint_w=power, write=True, clamps=tuple(clamps), site_limit_met=site_met),
    )
