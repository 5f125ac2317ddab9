"""The simulated device's register map and request handling (sans-IO, no socket)."""

from __future__ import annotations

import pytest

from sep2gw.sim import BatteryParams, SimBattery, SiteParams
from sep2gw.sim.modbus_server import SimModbusServer
from sep2gw.sim.sunspec_map import BASE_ADDRESS, SunSpecMap, WriteRefused
from transport.modbus import read_holding_pdu, write_multiple_pdu
from transport.sunspec import model_def

NOON = 1_700_006_400 - 1_700_006_400 % 86_400 + 12 * 3600


def make_map() -> SunSpecMap:
    return SunSpecMap(SimBattery(BatteryParams(), SiteParams(), seed=3, start_s=NOON))


def address(bank: SunSpecMap, model_id: int, point: str) -> int:
    return bank.blocks[model_id].base + model_def(model_id).point(point).offset


def test_map_starts_with_suns_and_ends_with_the_end_model() -> None:
    bank = make_map()
    assert bank.read(BASE_ADDRESS, 2) == [0x5375, 0x6E53]
    assert bank.read(bank.end - 2, 2) == [0xFFFF, 0]


def test_reading_outside_the_map_is_illegal_data_address() -> None:
    with pytest.raises(WriteRefused) as info:
        make_map().read(BASE_ADDRESS - 1, 2)
    assert info.value.code == 2


def test_write_that_splits_a_two_register_point_is_refused() -> None:
    bank = make_map()
    with pytest.raises(WriteRefused, match="splits") as info:
        bank.write(address(bank, 704, "WSet") + 1, [5])
    assert info.value.code == 3


def test_refused_write_leaves_the_registers_and_commands_unchanged() -> None:
    bank = make_map()
    start = address(bank, 704, "WSetEna")
    before = bank.read(start, 4)
    with pytest.raises(WriteRefused):
        bank.write(start, [1, 0, 0xFFFF, 0xFFFF - 20000])  # WSet = -20001 W: beyond the charge rate
    assert bank.read(start, 4) == before and bank.sim.setpoint_w is None


def test_enum_value_outside_its_symbols_is_refused() -> None:
    bank = make_map()
    with pytest.raises(WriteRefused, match="SetOp"):
        bank.write(address(bank, 802, "SetOp"), [9])


def test_unknown_function_is_answered_with_illegal_function() -> None:
    server = SimModbusServer(make_map().sim, clock=lambda: NOON)
    assert server.handle_pdu(bytes.fromhex("2b0e0100")) == bytes.fromhex("ab01")


def test_handle_pdu_writes_and_reads_back() -> None:
    sim = SimBattery(BatteryParams(), SiteParams(), seed=3, start_s=NOON)
    server = SimModbusServer(sim, clock=lambda: NOON)
    start = address(server.map, 704, "WSetEna")
    assert server.handle_pdu(write_multiple_pdu(start, [1, 1, 0, 1500]))[0] == 16
    answer = server.handle_pdu(read_holding_pdu(start, 4))
    assert answer == bytes.fromhex("0308 0001 0001 0000 05dc")
    assert sim.setpoint_w == 1500


def test_registers_follow_a_simulation_advanced_without_the_server() -> None:
    """Simulations advance the battery directly; the next request must not see stale registers."""
    sim = SimBattery(BatteryParams(), SiteParams(), seed=3, start_s=NOON)
    server = SimModbusServer(sim, clock=lambda: NOON + 7 * 3600)
    sim.advance(NOON + 7 * 3600)  # evening: the released battery covers the load
    w = address(server.map, 701, "W")
    answer = server.handle_pdu(read_holding_pdu(w, 1))
    assert int.from_bytes(answer[2:4], "big", signed=True) == round(sim.power_w) != 0
