"""The simulated battery reached in-process: the real SunSpec driver over the device's register map,
without Modbus framing or a pipe (for long simulations, issue 8 scope 7).

:class:`DirectRegisterClient` answers ``read_holding``/``write_registers`` from a
:class:`sep2gw.sim.sunspec_map.SunSpecMap` exactly as :class:`sep2gw.sim.modbus_server.SimModbusServer`
does over Modbus TCP: the physics is advanced to the clock before each request, out-of-map reads and
refused writes raise the same :class:`transport.modbus.ModbusExceptionResponse` (codes 2 and 3) a
device's exception response becomes in :class:`actors.drivers.modbus_client.ModbusTcpClient`. What
is skipped is the transport only: MBAP/PDU encoding, the byte pipe, the server task and the
scheduler round trips (two per transaction). The driver above it, :class:`SunSpecDriver`, is the one a
site runs: discovery, scale factors, the closed loop, write-and-verify.

Not covered on this path: the Modbus client's timeouts, reconnects and framing errors, and the
server's :class:`~sep2gw.sim.modbus_server.Faults`; worlds that inject those use the Modbus path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from actors.drivers.sunspec import SunSpecDriver
from sep2gw.sim.battery import SimBattery
from sep2gw.sim.sunspec_map import SunSpecMap, WriteRefused
from transport.modbus import MAX_READ_REGISTERS, MAX_WRITE_REGISTERS, ModbusExceptionResponse

__all__ = ["DirectRegisterClient", "direct_sunspec_driver"]

_READ_HOLDING = 3
_WRITE_MULTIPLE = 16


class DirectRegisterClient:
    """In-process register access to one simulated device (the ``RegisterClient`` protocol)."""

    def __init__(self, sim: SimBattery, *, clock: Callable[[], float]) -> None:
        self.sim = sim
        self.clock = clock
        self.map = SunSpecMap(sim)
        self._refreshed_s = sim.now_s
        self.transactions = 0

    def _now(self) -> None:
        # As SimModbusServer: advance the physics, refresh the measurements once per instant.
        now = self.clock()
        sim = self.sim
        if now > sim.now_s:
            sim.advance(now)
        if sim.now_s != self._refreshed_s:
            self.map.refresh()
            self._refreshed_s = sim.now_s

    async def read_holding(self, address: int, count: int) -> list[int]:
        """Modbus function 3 semantics: at most 125 registers a request, exception 2 outside."""
        out: list[int] = []
        self._now()
        while count > 0:
            chunk = min(count, MAX_READ_REGISTERS)
            self.transactions += 1
            try:
                out += self.map.read(address, chunk)
            except WriteRefused as refused:
                raise ModbusExceptionResponse(
                    _READ_HOLDING, refused.code, address=address
                ) from None
            address += chunk
            count -= chunk
        return out

    async def write_registers(self, address: int, registers: Sequence[int]) -> None:
        """Modbus function 16 semantics: all or nothing per request, exceptions 2 and 3."""
        self._now()
        for start in range(0, len(registers), MAX_WRITE_REGISTERS):
            self.transactions += 1
            try:
                self.map.write(address + start, list(registers[start : start + MAX_WRITE_REGISTERS]))
            except WriteRefused as refused:
                raise ModbusExceptionResponse(
                    _WRITE_MULTIPLE, refused.code, address=address + start
                ) from None

    async def aclose(self) -> None:
        return None


def direct_sunspec_driver(sim: SimBattery, *, clock: Callable[[], float]) -> SunSpecDriver:
    """The SunSpec driver a site runs, over ``sim``'s register map in-process."""
    return SunSpecDriver(DirectRegisterClient(sim, clock=clock))
