"""Several DER behind one connection point: the site rating and the proportional split."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from statemachines.der_split import MemberRating, site_rating, split_setpoint
from statemachines.site_limit import DerRating


def member(der: str, discharge: float, charge: float, *, available: bool = True) -> MemberRating:
    return MemberRating(
        der=der,
        rating=DerRating(max_discharge_w=discharge, max_charge_w=charge, max_w=discharge),
        available=available,
    )


def test_site_rating_is_the_sum_of_the_available_ders() -> None:
    rating = site_rating([member("a", 5000, 4000), member("b", 3000, 2000)])
    assert (rating.max_discharge_w, rating.max_charge_w, rating.max_w) == (8000, 6000, 8000)


def test_an_unavailable_der_leaves_the_site_rating() -> None:
    rating = site_rating([member("a", 5000, 4000), member("b", 3000, 2000, available=False)])
    assert (rating.max_discharge_w, rating.max_charge_w) == (5000, 4000)


def test_injecting_setpoint_is_shared_by_discharge_rating() -> None:
    shares = split_setpoint(4000.0, [member("a", 6000, 1000), member("b", 2000, 3000)])
    assert shares == {"a": 3000.0, "b": 1000.0}


def test_absorbing_setpoint_is_shared_by_charge_rating() -> None:
    shares = split_setpoint(-2000.0, [member("a", 6000, 1000), member("b", 2000, 3000)])
    assert shares == {"a": -500.0, "b": -1500.0}


def test_a_disconnected_der_carries_nothing_and_the_others_carry_the_limit() -> None:
    shares = split_setpoint(
        -3000.0, [member("a", 5000, 5000), member("b", 5000, 5000, available=False)]
    )
    assert shares == {"a": -3000.0, "b": 0.0}


def test_released_site_releases_every_der() -> None:
    assert split_setpoint(None, [member("a", 1, 1), member("b", 1, 1, available=False)]) == {
        "a": None,
        "b": None,
    }


def test_no_available_der_gets_zero_everywhere() -> None:
    assert split_setpoint(500.0, [member("a", 0, 0), member("b", 9, 9, available=False)]) == {
        "a": 0.0,
        "b": 0.0,
    }


@given(
    setpoint=st.floats(-20_000, 20_000),
    ratings=st.lists(
        st.tuples(st.floats(0, 10_000), st.floats(0, 10_000), st.booleans()), min_size=1, max_size=5
    ),
)
def test_shares_sum_to_the_setpoint_within_the_site_rating_and_never_exceed_a_member(
    setpoint: float, ratings: list[tuple[float, float, bool]]
) -> None:
    members = [member(f"d{i}", d, c, available=a) for i, (d, c, a) in enumerate(ratings)]
    shares = split_setpoint(setpoint, members)
    site = site_rating(members)
    for m in members:
        share = shares[m.der]
        assert share is not None
        assert -m.rating.max_charge_w - 1e-6 <= share <= m.rating.max_discharge_w + 1e-6
        if not m.available:
            assert share == 0.0
    if (
        -site.max_charge_w <= setpoint <= site.max_discharge_w
        and (site.max_discharge_w if setpoint >= 0 else site.max_charge_w) > 0
    ):
        assert abs(sum(s for s in shares.values() if s is not None) - setpoint) < 1e-6 * max(
            1.0, abs(setpoint)
        )
