"""Modbus TCP client over an anyio TCP stream (trio or asyncio), one transaction at a time.

Framing is ``transport.modbus`` (sans-IO); this actor-side class owns the socket, the deadlines and
the reconnection. After a timeout, a protocol error or a disconnect the stream is closed (its bytes
can no longer be trusted to line up with requests); the next transaction reconnects with bounded
exponential back-off.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import anyio
import anyio.abc
from pymodbus.pdu import ModbusPDU

from transport.modbus import (
    MAX_READ_REGISTERS,
    MAX_WRITE_REGISTERS,
    MbapReader,
    ModbusDisconnected,
    ModbusError,
    ModbusProtocolError,
    ModbusTimeout,
    ModbusUnavailable,
    decode_response,
    encode_adu,
    read_holding_pdu,
    registers_of,
    write_multiple_pdu,
)

__all__ = ["ClientStatistics", "ModbusTcpClient"]

_RECEIVE_BYTES = 4096


class ClientStatistics(tuple[int, int, int]):
    """``(transactions, connects, failures)`` so far."""

    __slots__ = ()

    @property
    def transactions(self) -> int:
        return self[0]

    @property
    def connects(self) -> int:
        return self[1]

    @property
    def failures(self) -> int:
        return self[2]


class ModbusTcpClient:
    """A Modbus TCP master for one device (``unit_id``)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        unit_id: int = 1,
        timeout_s: float = 1.0,
        connect_attempts: int = 4,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 5.0,
        connector: Callable[[], Awaitable[anyio.abc.ByteStream]] | None = None,
    ) -> None:
        """``connector`` replaces the TCP connect (simulations use in-memory pipes)."""
        if connect_attempts < 1:
            raise ValueError("connect_attempts must be ≥ 1")
        self.host = host
        self.port = port
        self.unit_id = unit_id
        self.timeout_s = timeout_s
        self.connect_attempts = connect_attempts
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._connector = connector
        self._stream: anyio.abc.ByteStream | None = None
        self._reader = MbapReader()
        self._tid = 0
        self._lock = anyio.Lock()
        self._transactions = 0
        self._connects = 0
        self._failures = 0

    def statistics(self) -> ClientStatistics:
        return ClientStatistics((self._transactions, self._connects, self._failures))

    @property
    def connected(self) -> bool:
        return self._stream is not None

    async def __aenter__(self) -> ModbusTcpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        stream, self._stream = self._stream, None
        self._reader = MbapReader()
        if stream is not None:
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def connect(self) -> None:
        """Connect, retrying with bounded exponential back-off; :class:`ModbusUnavailable` at the end."""
        if self._stream is not None:
            return
        delay = self.backoff_initial_s
        last = ""
        for attempt in range(1, self.connect_attempts + 1):
            try:
                with anyio.fail_after(self.timeout_s):
                    self._stream = await (
                        self._connector()
                        if self._connector
                        else anyio.connect_tcp(self.host, self.port)
                    )
            except TimeoutError:
                last = f"connect timed out after {self.timeout_s:g} s"
            except OSError as exc:
                last = str(exc) or type(exc).__name__
            else:
                self._connects += 1
                self._reader = MbapReader()
                return
            if attempt < self.connect_attempts:
                await anyio.sleep(delay)
                delay = min(delay * 2, self.backoff_max_s)
        raise ModbusUnavailable(self.host, self.port, self.connect_attempts, last)

    async def read_holding(self, address: int, count: int) -> list[int]:
        """Read ``count`` holding registers (split into ≤125-register requests)."""
        out: list[int] = []
        while count > 0:
            chunk = min(count, MAX_READ_REGISTERS)
            response = await self._transact(read_holding_pdu(address, chunk), 3, address)
            registers = registers_of(response)
            if len(registers) != chunk:
                await self._drop()
                raise ModbusProtocolError(
                    f"asked for {chunk} registers at {address}, got {len(registers)}"
                )
            out += registers
            address += chunk
            count -= chunk
        return out

    async def write_registers(self, address: int, registers: Sequence[int]) -> None:
        """Write Multiple Registers; the echo of address and count is checked."""
        start = 0
        while start < len(registers):
            chunk = list(registers[start : start + MAX_WRITE_REGISTERS])
            response = await self._transact(
                write_multiple_pdu(address + start, chunk), 16, address + start
            )
            if (response.address, response.count) != (address + start, len(chunk)):
                await self._drop()
                raise ModbusProtocolError(
                    f"write echo ({response.address}, {response.count}) != ({address + start}, {len(chunk)})"
                )
            start += len(chunk)

    async def _drop(self) -> None:
        self._failures += 1
        await self.aclose()

    async def _transact(self, pdu: bytes, function_code: int, address: int) -> ModbusPDU:
        async with self._lock:
            await self.connect()
            stream = self._stream
            assert stream is not None
            self._tid = (self._tid + 1) & 0xFFFF
            tid = self._tid
            what = f"function {function_code} at {address}"
            try:
                with anyio.fail_after(self.timeout_s):
                    await stream.send(encode_adu(tid, self.unit_id, pdu))
                    while True:
                        frame = self._reader.next_frame()
                        if frame is not None:
                            break
                        self._reader.feed(await stream.receive(_RECEIVE_BYTES))
            except TimeoutError:
                await self._drop()
                raise ModbusTimeout(what, self.timeout_s) from None
            except (
                anyio.EndOfStream,
                anyio.BrokenResourceError,
                anyio.ClosedResourceError,
                OSError,
            ):
                await self._drop()
                raise ModbusDisconnected(what) from None
            except ModbusError:
                await self._drop()
                raise
            except anyio.get_cancelled_exc_class():
                # Cancelled mid-transaction: the answer may still arrive and would be taken for
                # the next request's; only a fresh connection is in step again.
                await self._drop()
                raise
            self._transactions += 1
            if frame.transaction_id != tid or frame.unit_id != self.unit_id:
                await self._drop()
                raise ModbusProtocolError(
                    f"answer to transaction {frame.transaction_id} unit {frame.unit_id}, "
                    f"expected {tid} unit {self.unit_id}"
                )
            if self._reader.pending:
                await self._drop()
                raise ModbusProtocolError(
                    f"{self._reader.pending} unexpected bytes after the answer"
                )
            try:
                return decode_response(frame.pdu, function_code, address=address)
            except ModbusProtocolError:
                await self._drop()
                raise
