"""Several DER behind one connection point: the site's rating, and its setpoint shared among them.

CSIP-AUS (v1.2 §2.3, dynamic operating envelopes) puts ``opModExpLimW``, ``opModImpLimW``,
``opModGenLimW`` and ``opModLoadLimW`` at the connection point: they limit the whole site, not each
DER. So one closed loop (``statemachines.site_limit.step``) runs for the site, over the *site's*
rating — the sum of the ratings of the DER that can take a command now — and the one setpoint it
chooses is shared among those DER here. Pure: the members' ratings and availability are arguments.

The split rule: each available DER carries the setpoint in proportion to its rating in the
direction of the setpoint (its discharge rating when the site injects, its charge rating when it
absorbs). Proportional shares never exceed a member's own rating while the setpoint is within the
site's rating (share = setpoint × rating / Σ ratings ≤ rating), so no redistribution pass is
needed; the site loop has already clamped the setpoint to the site's rating. A DER that is not
available (its driver failed, it reports itself disconnected or faulted) is excluded: its rating
leaves the sum, so the others carry the limit as far as they can, and it is given no share.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from statemachines.site_limit import DerRating

__all__ = ["MemberRating", "site_rating", "split_setpoint"]


class MemberRating(msgspec.Struct, frozen=True, kw_only=True):
    """One DER of the site as the split sees it: its name, what it can do now, whether it can
    take a command now."""

    der: str
    rating: DerRating
    available: bool


def site_rating(members: Sequence[MemberRating]) -> DerRating:
    """The site's rating: the sum of its available DER's ratings (CSIP-AUS §2.3: the limits are
    the connection point's, which every available DER contributes to). No available DER: 0 W."""
    available = [m.rating for m in members if m.available]
    return DerRating(
        max_discharge_w=sum(r.max_discharge_w for r in available),
        max_charge_w=sum(r.max_charge_w for r in available),
        max_w=sum(r.max_w for r in available),
    )


def split_setpoint(
    setpoint_w: float | None, members: Sequence[MemberRating]
) -> dict[str, float | None]:
    """Each member's share of the site's setpoint (positive = inject), by the rule in the module
    docstring. ``None`` (the site released to the devices' own logic) releases every available
    member. An unavailable member is given ``0.0`` where a share is set (it is commanded to carry
    nothing should it come back before the next period), ``None`` when the site is released.

    A setpoint beyond the available members' rating (the site loop was given a larger rating) is
    shared at each member's full rating: no member is ever asked for more than it can do."""
    if setpoint_w is None:
        return {m.der: None for m in members}
    injecting = setpoint_w >= 0
    weights = {
        m.der: (m.rating.max_discharge_w if injecting else m.rating.max_charge_w)
        for m in members
        if m.available
    }
    total = sum(weights.values())
    shares: dict[str, float | None] = {}
    for member in members:
        weight = weights.get(member.der)
        if weight is None or total <= 0:
            shares[member.der] = 0.0
            continue
        share = setpoint_w * weight / total
        shares[member.der] = max(-weight, min(weight, share))
    return shares
