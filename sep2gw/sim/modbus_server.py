"""The simulated battery as a SunSpec Modbus TCP server, over anyio (trio or asyncio).

Requests are framed by ``transport.modbus`` and decoded with pymodbus's PDU classes; the register
bank is :class:`sep2gw.sim.sunspec_map.SunSpecMap` (pymodbus 3.16's datastore classes are deprecated
shims that answer every request "device busy" unless driven by its asyncio simulator). Before each
request the physics is advanced to ``clock()``: the server is as deterministic as the clock it gets.

:class:`Faults` lets tests make the device misbehave on purpose: stay silent, answer with a Modbus
exception or with garbage, hang up in the middle of an answer, or acknowledge writes it ignores.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream
from pymodbus.pdu import ModbusPDU
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    WriteMultipleRegistersRequest,
    WriteMultipleRegistersResponse,
    WriteSingleRegisterRequest,
    WriteSingleRegisterResponse,
)

from actors.pipe import serve_pipes
from sep2gw.sim.battery import SimBattery
from sep2gw.sim.sunspec_map import SunSpecMap, WriteRefused
from transport.modbus import (
    MbapReader,
    ModbusProtocolError,
    decode_request,
    encode_adu,
    encode_pdu,
    exception_pdu,
    read_response_pdu,
)

__all__ = ["Faults", "SimModbusServer"]


class Faults:
    """One-shot misbehaviours, consumed by the next requests (tests set them)."""

    def __init__(self) -> None:
        self.silent = 0  # swallow this many requests without answering
        self.exception_code: int | None = None  # answer the next request with this exception
        self.garbage: bytes | None = None  # answer the next request with these bytes
        self.hang_up_mid_answer = False  # send half the next answer, then close
        self.ignore_writes = 0  # acknowledge this many writes without storing them
        self.unresponsive = False  # while set, swallow every request (a ``modbus_timeout`` window)


class SimModbusServer:
    """Serve one :class:`SimBattery` on a loopback TCP port."""

    def __init__(self, sim: SimBattery, *, clock: Callable[[], float]) -> None:
        self.sim = sim
        self.clock = clock
        self.map = SunSpecMap(sim)
        self._refreshed_s = sim.now_s  # the physics time the measurement registers show
        self.faults = Faults()
        self.requests = 0

    def _now(self) -> None:
        now = self.clock()
        if now > self.sim.now_s:
            self.sim.advance(now)
        # Also when a simulation advanced the battery itself since the last request.
        if self.sim.now_s != self._refreshed_s:
            self.map.refresh()
            self._refreshed_s = self.sim.now_s

    def handle_pdu(self, pdu: bytes) -> bytes:
        """Answer one request PDU (sans-IO: usable without a socket)."""
        self.requests += 1
        request: ModbusPDU | int = decode_request(pdu)
        if isinstance(request, int):
            return exception_pdu(pdu[0] if pdu else 0, request)
        self._now()
        try:
            if isinstance(request, ReadHoldingRegistersRequest):
                registers = self.map.read(request.address, request.count)
                return read_response_pdu(registers)
            if isinstance(request, WriteMultipleRegistersRequest | WriteSingleRegisterRequest):
                if self.faults.ignore_writes:
                    self.faults.ignore_writes -= 1
                else:
                    self.map.write(request.address, list(request.registers))
                if isinstance(request, WriteSingleRegisterRequest):
                    return encode_pdu(
                        WriteSingleRegisterResponse(
                            address=request.address, registers=request.registers
                        )
                    )
                return encode_pdu(
                    WriteMultipleRegistersResponse(
                        address=request.address, count=len(request.registers)
                    )
                )
        except WriteRefused as refused:
            return exception_pdu(request.function_code, refused.code)
        return exception_pdu(request.function_code, 1)

    async def handle_connection(self, stream: anyio.abc.ByteStream) -> None:
        reader = MbapReader()
        async with stream:
            while True:
                try:
                    data = await stream.receive(4096)
                except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    return
                reader.feed(data)
                while True:
                    try:
                        frame = reader.next_frame()
                    except ModbusProtocolError:
                        return  # a peer that sends garbage is hung up on, as devices do
                    if frame is None:
                        break
                    if not await self._answer(
                        stream, frame.transaction_id, frame.unit_id, frame.pdu
                    ):
                        return

    async def _answer(self, stream: anyio.abc.ByteStream, tid: int, unit: int, pdu: bytes) -> bool:
        faults = self.faults
        if faults.unresponsive:
            return True
        if faults.silent:
            faults.silent -= 1
            return True
        if faults.garbage is not None:
            garbage, faults.garbage = faults.garbage, None
            await stream.send(garbage)
            return True
        if faults.exception_code is not None:
            code, faults.exception_code = faults.exception_code, None
            await stream.send(encode_adu(tid, unit, exception_pdu(pdu[0], code)))
            return True
        adu = encode_adu(tid, unit, self.handle_pdu(pdu))
        if faults.hang_up_mid_answer:
            faults.hang_up_mid_answer = False
            await stream.send(adu[: len(adu) // 2])
            return False
        try:
            await stream.send(adu)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return False
        return True

    async def serve_pipes(
        self,
        accept: MemoryObjectReceiveStream[anyio.abc.ByteStream],
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve in-memory connections (``actors.pipe``) until ``accept`` closes or we are cancelled."""
        await serve_pipes(accept, self.handle_connection, task_status=task_status)

    async def serve(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host:port`` (0 = any free port) and serve until cancelled; reports the port."""
        listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
        async with listener:
            bound = listener.extra(anyio.abc.SocketAttribute.local_port)
            task_status.started(bound)
            await listener.serve(self.handle_connection)
