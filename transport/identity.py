"""Device identity of IEEE 2030.5: LFDI, SFDI, registration PIN check digit and PEN-suffixed mRIDs.

These are pure functions over bytes and integers: the certificate's DER bytes come in, identifiers
come out. Nothing here reads a file (a PEM file is *not* what the LFDI is hashed from).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "CORE_2030_5",
    "CSIP",
    "CSIP_AUS",
    "IdentityError",
    "IdentityProfile",
    "LfdiCase",
    "check_digit",
    "site_lfdi",
    "lfdi_from_der",
    "make_mrid",
    "mrid_pen",
    "pin_with_check_digit",
    "same_lfdi",
    "sfdi_from_lfdi",
    "verify_pin",
]

_LFDI_HEX_CHARS = 40
_SFDI_BITS = 36
_MRID_HEX_CHARS = 32
_PEN_HEX_CHARS = 8
_HEX = re.compile(r"[0-9A-Fa-f]+")


class IdentityError(ValueError):
    """An identifier or its input is malformed; the message names the value and the rule."""


class LfdiCase(Enum):
    UPPER = "upper"
    LOWER = "lower"


@dataclass(frozen=True, slots=True)
class IdentityProfile:
    """What differs between profiles in how identities are written.

    ``pen_decimal``: CSIP-AUS writes the PEN into the last 8 hex characters of an mRID as *decimal
    digits* (PEN 37244 -> ``...00037244``); 2030.5 core and CSIP write it as a 32-bit binary number.
    """

    name: str
    lfdi_case: LfdiCase
    pen_decimal: bool


# 2030.5 hexBinary is case-insensitive and its canonical (XSD) form is uppercase; CSIP-AUS mandates
# uppercase LFDIs. All three therefore default to uppercase; the field exists so a deployment whose
# server insists on lowercase can say so in one place.
CORE_2030_5 = IdentityProfile("2030.5", LfdiCase.UPPER, pen_decimal=False)
CSIP = IdentityProfile("csip", LfdiCase.UPPER, pen_decimal=False)
CSIP_AUS = IdentityProfile("csip-aus", LfdiCase.UPPER, pen_decimal=True)


def lfdi_from_der(certificate_der: bytes, profile: IdentityProfile = CORE_2030_5) -> str:
    """IEEE 2030.5 §6.3.4: the LFDI is the SHA-256 hash of the device certificate (its DER
    encoding), truncated to the left-most 160 bits, i.e. the first 40 hex characters."""
    if not certificate_der or certificate_der[0] != 0x30:
        raise IdentityError(
            "LFDI input must be a certificate's DER bytes (an ASN.1 SEQUENCE, first byte 0x30); "
            "hashing the PEM file gives a wrong LFDI"
        )
    digest = hashlib.sha256(certificate_der).hexdigest()[:_LFDI_HEX_CHARS]
    return digest.upper() if profile.lfdi_case is LfdiCase.UPPER else digest.lower()


def _check_lfdi(lfdi: str) -> str:
    if len(lfdi) != _LFDI_HEX_CHARS or not _HEX.fullmatch(lfdi):
        raise IdentityError(f"LFDI {lfdi!r} is not {_LFDI_HEX_CHARS} hexadecimal characters")
    return lfdi


def same_lfdi(a: str, b: str) -> bool:
    """hexBinary is case-insensitive: two LFDIs are the same device whatever case each is in."""
    return _check_lfdi(a).upper() == _check_lfdi(b).upper()


def check_digit(digits: str) -> int:
    """IEEE 2030.5 §6.3.3: the check digit makes the sum of all digits a multiple of 10 (a plain
    digit sum, not Luhn)."""
    if not digits.isdigit() or not digits.isascii():
        raise IdentityError(f"check digit input {digits!r} must be decimal digits")
    return (10 - sum(int(d) for d in digits) % 10) % 10


def sfdi_from_lfdi(lfdi: str) -> int:
    """IEEE 2030.5 §6.3.3: the SFDI is the left-most 36 bits of the LFDI as a decimal number with
    the sum-of-digits check digit appended; no zero padding (it may have fewer than 12 digits)."""
    top = int(_check_lfdi(lfdi), 16) >> (4 * _LFDI_HEX_CHARS - _SFDI_BITS)
    decimal = str(top)
    return int(decimal + str(check_digit(decimal)))


def pin_with_check_digit(pin5: int | str) -> int:
    """IEEE 2030.5 §6.3.3 / Registration.pIN: a 5-digit PIN followed by its check digit
    (11111 -> 111115)."""
    text = str(pin5)
    if not text.isdigit() or len(text) > 5:
        raise IdentityError(f"PIN {pin5!r} must be at most 5 decimal digits")
    text = text.zfill(5)
    return int(text + str(check_digit(text)))


def verify_pin(pin6: int) -> bool:
    """True when the last digit of a 6-digit Registration.pIN is the check digit of the first
    five."""
    if not 0 <= pin6 <= 999_999:
        raise IdentityError(f"PIN {pin6} must be 6 decimal digits (5 digits and a check digit)")
    text = f"{pin6:06d}"
    return check_digit(text[:5]) == int(text[5])


def make_mrid(body: int, pen: int, profile: IdentityProfile = CORE_2030_5) -> str:
    """IEEE 2030.5 §6.3.6 (mRID): 128 bits whose last 32 are the issuer's IANA Private Enterprise
    Number. Core/CSIP write the PEN as binary; CSIP-AUS as 8 decimal digits. ``body`` fills the
    other 96 bits (the caller supplies it: a hash or a draw from the seeded RNG)."""
    if not 0 <= body < 1 << 96:
        raise IdentityError(f"mRID body {body} does not fit in 96 bits")
    if profile.pen_decimal:
        if not 0 <= pen <= 99_999_999:
            raise IdentityError(f"PEN {pen} does not fit in 8 decimal digits ({profile.name})")
        suffix = f"{pen:08d}"
    else:
        if not 0 <= pen < 1 << 32:
            raise IdentityError(f"PEN {pen} does not fit in 32 bits ({profile.name})")
        suffix = f"{pen:08X}"
    return f"{body:024X}{suffix}"


def site_lfdi(
    aggregator_lfdi: str, site: str, pen: int, profile: IdentityProfile = CORE_2030_5
) -> str:
    """The LFDI of a site an aggregator certificate runs without a device certificate of its own
    (decision 0022a): the SHA-256 of the aggregator's LFDI (upper case) and the site's name,
    left-most 128 bits, then the PEN in the last 32 bits as the profile writes it in an mRID
    (IEEE 2030.5 §6.3.6; CSIP-AUS 8 decimal digits, core/CSIP binary). Stable for a name, unique
    per site and per aggregator; its SFDI (§6.3.3) comes from the hashed part."""
    digest = hashlib.sha256(f"{_check_lfdi(aggregator_lfdi).upper()}\0{site}".encode()).digest()
    # 32 bits, then an mRID's 96-bit body and PEN: the digest's first 128 bits in order, 160 in all
    lfdi = f"{int.from_bytes(digest[:4]):08X}{make_mrid(int.from_bytes(digest[4:16]), pen, profile)}"
    return lfdi.upper() if profile.lfdi_case is LfdiCase.UPPER else lfdi.lower()


def mrid_pen(mrid: str, profile: IdentityProfile = CORE_2030_5) -> int:
    """The PEN written in an mRID's last 8 hex characters, read per ``profile``."""
    if len(mrid) != _MRID_HEX_CHARS or not _HEX.fullmatch(mrid):
        raise IdentityError(f"mRID {mrid!r} is not {_MRID_HEX_CHARS} hexadecimal characters")
    suffix = mrid[-_PEN_HEX_CHARS:]
    if profile.pen_decimal:
        if not suffix.isdigit():
            raise IdentityError(
                f"mRID {mrid!r}: last 8 characters {suffix!r} are not decimal digits, "
                f"as {profile.name} requires for the PEN"
            )
        return int(suffix)
    return int(suffix, 16)
