"""SunSpec layouts and point codecs, checked against pysunspec2's own reading of the same registers."""

from __future__ import annotations

import math

import pytest
import sunspec2.device as ss_device
from hypothesis import given, settings
from hypothesis import strategies as st

from transport.sunspec import (
    ModelBlock,
    SunSpecValueError,
    UnknownModel,
    UnknownPoint,
    decode_point,
    encode_point,
    is_suns_marker,
    model_def,
    parse_header,
)

MODELS = (1, 701, 702, 704, 713, 802, 203)


def _pysunspec(block: ModelBlock) -> ss_device.Model:
    data = b"".join(word.to_bytes(2, "big") for word in block.registers)
    model = ss_device.Model(
        model_id=block.model.model_id,
        model_addr=block.base,
        model_len=block.registers[1],
        data=data,
    )
    assert model.error_info == ""
    return model


@pytest.mark.parametrize("model_id", MODELS)
def test_model_length_matches_pysunspec2_layout(model_id: int) -> None:
    block = ModelBlock.blank(model_id, 40000)
    assert _pysunspec(block).len == len(block.registers) == model_def(model_id).length + 2


@pytest.mark.parametrize("model_id", MODELS)
def test_point_offsets_match_pysunspec2(model_id: int) -> None:
    block = ModelBlock.blank(model_id, 40000)
    theirs = _pysunspec(block)
    for point in block.model.points.values():
        group: ss_device.Group = theirs
        *groups, name = point.name.split(".")
        for g in groups:
            group = group.groups[g]
        assert group.points[name].offset == point.offset, point.name


@pytest.mark.parametrize("model_id", MODELS)
def test_blank_model_is_all_not_implemented_for_pysunspec2(model_id: int) -> None:
    block = ModelBlock.blank(model_id, 40000)
    theirs = _pysunspec(block)
    for name, point in block.model.points.items():
        if "." in name or name in ("ID", "L") or point.type == "pad":
            continue
        assert theirs.points[name].value is None, name
        assert block.raw(name) is None, name


def test_scaled_values_decode_like_pysunspec2() -> None:
    block = ModelBlock.blank(701, 40070)
    for sf_name, sf in (("W_SF", -1), ("V_SF", -2), ("Hz_SF", -3), ("A_SF", 1), ("TotWh_SF", 0)):
        block.set_raw(sf_name, sf)
    block.set_raw("W", -12345)
    block.set_raw("LNV", 23012)
    block.set_raw("Hz", 50012)
    block.set_raw("A", 7)
    block.set_raw("ConnSt", block.model.symbol("ConnSt", "CONNECTED"))
    block.set_raw("TotWhInj", 2**40 + 3)
    theirs = _pysunspec(block)
    for name in ("W", "LNV", "Hz", "A", "TotWhInj"):
        assert block.value(name) == pytest.approx(theirs.points[name].cvalue, rel=1e-12), name
    assert block.value("W") == -1234.5
    assert block.value("LNV") == 230.12
    assert block.raw("ConnSt") == theirs.points["ConnSt"].value == 1


def test_encode_value_applies_the_scale_factor_and_round_trips() -> None:
    block = ModelBlock.blank(704, 0)
    block.set_raw("WSet_SF", -1)
    address, words = block.encode_value("WSet", -1234.5)
    assert address == block.model.point("WSet").offset
    block.registers[address : address + 2] = words
    assert block.value("WSet") == -1234.5
    assert _pysunspec(block).points["WSet"].cvalue == pytest.approx(-1234.5)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_encode_value_refuses_non_finite(value: float) -> None:
    block = ModelBlock.blank(704, 0)
    block.set_raw("WSet_SF", 0)
    with pytest.raises(SunSpecValueError, match="non-finite"):
        block.encode_value("WSet", value)


def test_encode_value_refuses_out_of_type_range() -> None:
    block = ModelBlock.blank(704, 0)
    block.set_raw("WMaxLimPct_SF", -2)
    with pytest.raises(SunSpecValueError, match="outside uint16 range"):
        block.encode_value("WMaxLimPct", 1000.0)  # 100000 does not fit a uint16


def test_encode_value_refuses_when_scale_factor_not_implemented() -> None:
    block = ModelBlock.blank(704, 0)  # WSet_SF left "not implemented"
    with pytest.raises(SunSpecValueError, match="scale factor"):
        block.encode_value("WSet", 10.0)


def test_encoding_a_sentinel_is_refused() -> None:
    point = model_def(701).point("W")  # int16: -32768 means "not implemented"
    with pytest.raises(SunSpecValueError, match="not implemented"):
        encode_point(point, -32768)


def test_unknown_model_and_point_are_typed_errors() -> None:
    with pytest.raises(UnknownModel):
        model_def(9999)
    with pytest.raises(UnknownPoint, match="Nope"):
        model_def(701).point("Nope")
    with pytest.raises(SunSpecValueError, match="no symbol"):
        model_def(701).symbol("ConnSt", "MAYBE")


def test_strings_round_trip_and_refuse_overflow() -> None:
    point = model_def(1).point("Mn")
    assert decode_point(point, encode_point(point, "sep2gw")) == "sep2gw"
    with pytest.raises(SunSpecValueError, match="longer than 32 bytes"):
        encode_point(point, "x" * 33)


def test_suns_marker_and_end_model() -> None:
    assert is_suns_marker([0x5375, 0x6E53])
    assert not is_suns_marker([0x5375, 0x6E54])
    assert parse_header([0xFFFF, 0], 40100) is None
    header = parse_header([701, 153], 40070)
    assert header is not None and (header.model_id, header.base, header.length) == (701, 40070, 153)


_INT_TYPES = {"int16": 16, "uint16": 16, "int32": 32, "uint32": 32, "int64": 64, "uint64": 64}


@settings(max_examples=60)
@given(data=st.data())
def test_integer_points_round_trip_like_pysunspec2(data: st.DataObject) -> None:
    definition = model_def(701)
    name = data.draw(st.sampled_from(["W", "LNV", "Hz", "TotWhInj", "Alrm"]))
    point = definition.point(name)
    bits = 16 * point.size
    signed = point.type.startswith("int")
    low, high = (-(1 << (bits - 1)) + 1, (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 2)
    raw = data.draw(st.integers(low, high))
    words = encode_point(point, raw)
    assert decode_point(point, words) == raw
    block = ModelBlock.blank(701, 0)
    block.registers[point.offset : point.offset + point.size] = words
    assert _pysunspec(block).points[name].value == raw


def _short_block(model_id: int, length: int) -> ModelBlock:
    """A model as a device of an older, shorter version exposes it (L = ``length``)."""
    full = ModelBlock.blank(model_id, 40000)
    registers = full.registers[: 2 + length]
    registers[1] = length
    return ModelBlock(model=full.model, base=40000, registers=registers)


def test_point_missing_from_a_shorter_device_model_reads_as_not_implemented() -> None:
    block = _short_block(802, 20)  # W (offset 47) and Evt1 (offset 26) are not there
    assert block.raw("Evt1") is None and block.value("W") is None


def test_writing_a_point_missing_from_the_device_model_is_refused() -> None:
    block = _short_block(704, 20)  # WSet at offset 24 is past this device's model
    with pytest.raises(SunSpecValueError, match="not in the device's model"):
        block.encode_value("WSet", 100.0)
