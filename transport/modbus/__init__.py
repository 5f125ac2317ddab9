"""Modbus TCP, sans-IO: MBAP framing (ours, strict) around pymodbus's PDU classes."""

from transport.modbus.errors import (
    ModbusDisconnected,
    ModbusError,
    ModbusExceptionResponse,
    ModbusProtocolError,
    ModbusTimeout,
    ModbusUnavailable,
)
from transport.modbus.framing import (
    MAX_READ_REGISTERS,
    MAX_WRITE_REGISTERS,
    Frame,
    MbapReader,
    decode_request,
    decode_response,
    encode_adu,
    encode_pdu,
    exception_pdu,
    read_holding_pdu,
    read_response_pdu,
    registers_of,
    write_multiple_pdu,
)

__all__ = [
    "MAX_READ_REGISTERS",
    "MAX_WRITE_REGISTERS",
    "Frame",
    "MbapReader",
    "ModbusDisconnected",
    "ModbusError",
    "ModbusExceptionResponse",
    "ModbusProtocolError",
    "ModbusTimeout",
    "ModbusUnavailable",
    "decode_request",
    "decode_response",
    "encode_adu",
    "encode_pdu",
    "exception_pdu",
    "read_holding_pdu",
    "read_response_pdu",
    "registers_of",
    "write_multiple_pdu",
]
