"""MBAP framing and PDU decoding (Modbus Messaging on TCP/IP Implementation Guide §3.1.3)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transport.modbus import (
    MbapReader,
    ModbusExceptionResponse,
    ModbusProtocolError,
    decode_request,
    decode_response,
    encode_adu,
    exception_pdu,
    read_holding_pdu,
    read_response_pdu,
    write_multiple_pdu,
)


def test_read_request_is_encoded_with_mbap_header() -> None:
    adu = encode_adu(0x1234, 1, read_holding_pdu(40000, 2))
    assert adu == bytes.fromhex("1234 0000 0006 01 03 9c40 0002")


@settings(max_examples=40)
@given(chunks=st.lists(st.integers(1, 7), min_size=1, max_size=20), tid=st.integers(0, 0xFFFF))
def test_reader_reassembles_frames_split_anywhere(chunks: list[int], tid: int) -> None:
    adu = encode_adu(tid, 7, write_multiple_pdu(100, [1, 2, 3])) * 2
    reader = MbapReader()
    frames = []
    position = 0
    for size in itertools.cycle(chunks):
        reader.feed(adu[position : position + size])
        position += size
        while (frame := reader.next_frame()) is not None:
            frames.append(frame)
        if position >= len(adu):
            break
    assert [(f.transaction_id, f.unit_id) for f in frames] == [(tid, 7), (tid, 7)]
    assert frames[0].pdu == write_multiple_pdu(100, [1, 2, 3])


def test_nonzero_protocol_id_is_garbage_not_a_partial_frame() -> None:
    reader = MbapReader()
    reader.feed(bytes.fromhex("0001 0001 0006 01"))
    with pytest.raises(ModbusProtocolError, match="protocol id 1"):
        reader.next_frame()


@pytest.mark.parametrize("length", [0, 1, 255, 0xFFFF])
def test_impossible_mbap_length_is_refused(length: int) -> None:
    reader = MbapReader()
    reader.feed(b"\x00\x01\x00\x00" + length.to_bytes(2, "big") + b"\x01")
    with pytest.raises(ModbusProtocolError, match="MBAP length"):
        reader.next_frame()


def test_exception_response_is_a_typed_error_naming_the_code() -> None:
    with pytest.raises(ModbusExceptionResponse, match="ILLEGAL DATA ADDRESS") as info:
        decode_response(exception_pdu(3, 2), 3, address=40000)
    assert (info.value.function_code, info.value.exception_code, info.value.address) == (
        3,
        2,
        40000,
    )


def test_answer_for_another_function_is_a_protocol_error() -> None:
    with pytest.raises(ModbusProtocolError, match="function 16"):
        decode_response(bytes.fromhex("10 0064 0003"), 3)


@pytest.mark.parametrize(
    "pdu",
    [
        bytes.fromhex("03 04 0001"),  # byte count says 4, two bytes follow
        bytes.fromhex("03 03 000100"),  # odd byte count
        bytes.fromhex("03"),  # no byte count at all
        bytes.fromhex("83"),  # exception without its code
    ],
)
def test_truncated_or_inconsistent_read_answer_is_a_protocol_error(pdu: bytes) -> None:
    with pytest.raises(ModbusProtocolError):
        decode_response(pdu, 3)


def test_write_answer_of_wrong_size_is_a_protocol_error() -> None:
    with pytest.raises(ModbusProtocolError, match="write response of 2 bytes"):
        decode_response(bytes.fromhex("10 0064"), 16)


def test_read_answer_decodes_registers() -> None:
    response = decode_response(bytes.fromhex("03 04 5375 6e53"), 3)
    assert list(response.registers) == [0x5375, 0x6E53]


def test_server_side_decoding_answers_unknown_functions_with_illegal_function() -> None:
    assert decode_request(bytes.fromhex("2b 0e 01 00")) == 1
    assert decode_request(b"") == 1


def test_server_side_decoding_refuses_inconsistent_write_byte_count() -> None:
    assert decode_request(bytes.fromhex("10 0064 0002 06 0001 0002")) == 3


def test_server_side_decoding_reads_requests() -> None:
    request = decode_request(read_holding_pdu(40000, 50))
    assert not isinstance(request, int)
    assert (request.function_code, request.address, request.count) == (3, 40000, 50)


@pytest.mark.parametrize(("address", "count"), [(0, 0), (0, 126), (65535, 2), (-1, 1)])
def test_request_builders_refuse_impossible_reads(address: int, count: int) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        read_holding_pdu(address, count)


def test_request_builders_refuse_out_of_range_register_values() -> None:
    with pytest.raises(ValueError, match="0..65535"):
        write_multiple_pdu(0, [70000])


@settings(max_examples=30)
@given(registers=st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=125))
def test_read_answer_round_trips_through_pymodbus_response(registers: list[int]) -> None:
    from pymodbus.pdu.register_message import ReadHoldingRegistersResponse

    pdu = read_response_pdu(registers)
    assert (
        pdu[1:] == ReadHoldingRegistersResponse(registers=registers).encode()
    )  # same bytes as pymodbus
    assert list(decode_response(pdu, 3).registers) == registers


@settings(max_examples=200)
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_only_ever_raise_typed_modbus_errors(data: bytes) -> None:
    reader = MbapReader()
    reader.feed(data)
    try:
        while (frame := reader.next_frame()) is not None:
            for function in (3, 16):
                try:
                    decode_response(frame.pdu, function)
                except (ModbusProtocolError, ModbusExceptionResponse):
                    pass
            request = decode_request(frame.pdu)
            assert isinstance(request, int) or request.function_code in (3, 6, 16)
    except ModbusProtocolError:
        pass
