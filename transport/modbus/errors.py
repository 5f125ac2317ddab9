"""Typed Modbus errors. *Remote* errors say the device (or the wire) did something wrong; the
timeout/disconnect ones are raised by the actor that owns the socket but live here so every layer
above can catch them without importing ``actors``."""

from __future__ import annotations

__all__ = [
    "EXCEPTION_NAMES",
    "ModbusDisconnected",
    "ModbusError",
    "ModbusExceptionResponse",
    "ModbusProtocolError",
    "ModbusTimeout",
    "ModbusUnavailable",
]

#: Modbus Application Protocol v1.1b3 §7: exception codes.
EXCEPTION_NAMES = {
    1: "ILLEGAL FUNCTION",
    2: "ILLEGAL DATA ADDRESS",
    3: "ILLEGAL DATA VALUE",
    4: "SERVER DEVICE FAILURE",
    5: "ACKNOWLEDGE",
    6: "SERVER DEVICE BUSY",
    8: "MEMORY PARITY ERROR",
    10: "GATEWAY PATH UNAVAILABLE",
    11: "GATEWAY TARGET DEVICE FAILED TO RESPOND",
}


class ModbusError(Exception):
    """Base of every Modbus error."""


class ModbusProtocolError(ModbusError):
    """The peer sent bytes that are not a valid answer (bad MBAP header, wrong transaction id,
    wrong function, truncated PDU). The stream can no longer be trusted: the owner closes it."""

    def __init__(self, why: str) -> None:
        super().__init__(f"Modbus protocol error: {why}")
        self.why = why


class ModbusExceptionResponse(ModbusError):
    """The device answered with a Modbus exception (function code | 0x80)."""

    def __init__(
        self, function_code: int, exception_code: int, *, address: int | None = None
    ) -> None:
        name = EXCEPTION_NAMES.get(exception_code, "unknown exception")
        where = f" at register {address}" if address is not None else ""
        super().__init__(
            f"Modbus exception {exception_code} ({name}) to function {function_code}{where}"
        )
        self.function_code = function_code
        self.exception_code = exception_code
        self.address = address


class ModbusTimeout(ModbusError):
    def __init__(self, what: str, timeout_s: float) -> None:
        super().__init__(f"Modbus {what}: no answer within {timeout_s:g} s")
        self.what = what
        self.timeout_s = timeout_s


class ModbusDisconnected(ModbusError):
    def __init__(self, what: str) -> None:
        super().__init__(f"Modbus {what}: the device closed the connection")
        self.what = what


class ModbusUnavailable(ModbusError):
    """Connecting failed on every attempt of the bounded back-off."""

    def __init__(self, host: str, port: int, attempts: int, last: str) -> None:
        super().__init__(
            f"Modbus device {host}:{port} unreachable after {attempts} attempts: {last}"
        )
        self.host = host
        self.port = port
        self.attempts = attempts
        self.last = last
