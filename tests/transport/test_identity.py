"""IEEE 2030.5 §6.3: LFDI, SFDI, PIN check digit, PEN in mRIDs."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transport.identity import (
    CORE_2030_5,
    CSIP_AUS,
    IdentityError,
    IdentityProfile,
    LfdiCase,
    check_digit,
    lfdi_from_der,
    make_mrid,
    mrid_pen,
    pin_with_check_digit,
    same_lfdi,
    sfdi_from_lfdi,
    verify_pin,
)
from transport.pki import certificate_der, chain_pem, mint_demo_pki

SPEC_LFDI = "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"


def _digit_sum_check(number_text: str) -> int:
    # Independent formulation: the smallest d in 0..9 making the digit sum divisible by 10.
    return next(d for d in range(10) if (sum(map(int, number_text)) + d) % 10 == 0)


def test_sfdi_of_the_spec_example_lfdi() -> None:
    top36 = int.from_bytes(bytes.fromhex(SPEC_LFDI[:10]), "big") >> 4
    expected = int(f"{top36}{_digit_sum_check(str(top36))}")
    assert expected == 167261211391  # the value printed in 2030.5 and our PROTOCOL.md
    assert sfdi_from_lfdi(SPEC_LFDI) == expected


def test_sfdi_ignores_lfdi_case() -> None:
    assert sfdi_from_lfdi(SPEC_LFDI.lower()) == sfdi_from_lfdi(SPEC_LFDI)


@given(st.binary(min_size=20, max_size=20))
def test_sfdi_is_top_36_bits_and_digit_sum_check(raw: bytes) -> None:
    lfdi = raw.hex()
    sfdi = sfdi_from_lfdi(lfdi)
    top36 = int.from_bytes(raw, "big") >> (160 - 36)
    assert sfdi // 10 == top36
    assert sum(int(c) for c in str(sfdi)) % 10 == 0
    assert not str(sfdi).startswith("0") or sfdi == 0


def test_sfdi_has_no_zero_padding() -> None:
    lfdi = "000000001" + "0" * 31  # top 36 bits = 1
    assert sfdi_from_lfdi(lfdi) == 19


def test_pin_check_digit_of_spec_example() -> None:
    assert pin_with_check_digit(11111) == 111115
    assert verify_pin(111115)
    assert not verify_pin(111116)


@given(st.integers(min_value=0, max_value=99_999))
def test_pin_check_digit_makes_digit_sum_multiple_of_ten(pin: int) -> None:
    full = pin_with_check_digit(pin)
    assert sum(int(c) for c in f"{full:06d}") % 10 == 0
    assert full // 10 == pin
    assert verify_pin(full)


def test_check_digit_is_not_luhn() -> None:
    # Luhn would give 7 for "11111"... the 2030.5 rule is a plain digit sum.
    assert check_digit("11111") == 5
    assert check_digit("0") == 0


def test_lfdi_is_sha256_of_der_not_pem() -> None:
    pki = mint_demo_pki(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    der = certificate_der(pki.device.certificate)
    assert lfdi_from_der(der) == hashlib.sha256(der).hexdigest()[:40].upper()
    pem = chain_pem([pki.device.certificate])
    with pytest.raises(IdentityError, match="DER"):
        lfdi_from_der(pem)


def test_lfdi_case_follows_profile() -> None:
    der = certificate_der(mint_demo_pki(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)).device.certificate)
    lower = IdentityProfile("lower-test", LfdiCase.LOWER, pen_decimal=False)
    assert lfdi_from_der(der, CSIP_AUS) == lfdi_from_der(der, CSIP_AUS).upper()
    assert lfdi_from_der(der, lower) == lfdi_from_der(der, CSIP_AUS).lower()
    assert same_lfdi(lfdi_from_der(der, lower), lfdi_from_der(der, CSIP_AUS))


def test_malformed_lfdi_is_rejected_with_reason() -> None:
    with pytest.raises(IdentityError, match="40 hexadecimal"):
        sfdi_from_lfdi("XYZ")
    with pytest.raises(IdentityError, match="40 hexadecimal"):
        sfdi_from_lfdi(SPEC_LFDI + "0")


def test_pen_is_binary_in_core_and_decimal_digits_in_csip_aus() -> None:
    assert make_mrid(0xABC, 37244, CORE_2030_5).endswith(f"{37244:08X}")
    assert make_mrid(0xABC, 37244, CSIP_AUS).endswith("00037244")
    assert len(make_mrid(0xABC, 37244, CSIP_AUS)) == 32


@given(
    st.integers(min_value=0, max_value=(1 << 96) - 1),
    st.integers(min_value=0, max_value=99_999_999),
)
def test_pen_round_trips_through_mrid_per_profile(body: int, pen: int) -> None:
    for profile in (CORE_2030_5, CSIP_AUS):
        mrid = make_mrid(body, pen, profile)
        assert mrid_pen(mrid, profile) == pen
        assert int(mrid[:24], 16) == body


def test_pen_out_of_range_for_decimal_profile_is_rejected() -> None:
    with pytest.raises(IdentityError, match="8 decimal digits"):
        make_mrid(1, 100_000_000, CSIP_AUS)
    with pytest.raises(IdentityError, match="not decimal digits"):
        mrid_pen("0" * 24 + "0000ABCD", CSIP_AUS)
