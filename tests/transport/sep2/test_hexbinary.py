"""hexBinary values: numeric identity, schema width enforced at construction."""

from __future__ import annotations

import pytest

from transport.sep2.hexbinary import HEX_TYPES, HexBinary8, HexBinary128, HexBinary160


def test_hex_values_compare_as_numbers_whatever_their_width_type() -> None:
    assert HexBinary128(0xABC) == 0xABC == HexBinary160(0xABC)
    assert hash(HexBinary8(3)) == hash(3)


@pytest.mark.parametrize("name", sorted(HEX_TYPES))
def test_construction_refuses_values_outside_the_schema_width(name: str) -> None:
    cls = HEX_TYPES[name]
    assert cls((1 << (8 * cls.BYTES)) - 1) == (1 << (8 * cls.BYTES)) - 1
    with pytest.raises(ValueError):
        cls(1 << (8 * cls.BYTES))
    with pytest.raises(ValueError):
        cls(-1)


def test_identifiers_are_full_width_and_bitmaps_are_not() -> None:
    assert HexBinary128.FULL_WIDTH and HexBinary160.FULL_WIDTH
    assert not HexBinary8.FULL_WIDTH
    assert repr(HexBinary8(3)) == "HexBinary8(0x3)"
