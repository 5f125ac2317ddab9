"""The simulated battery's SunSpec register map: models 1, 701, 702, 704, 713, 802 and meter 203.

Layouts come from ``transport.sunspec`` (pysunspec2's JSON definitions). The measurement registers
are refreshed from the physics before each request; writes to the control points are validated the
way a device would (Modbus exception 2 for a register that is not writable, 3 for a value out of
range or a write that splits a point) and become the simulation's commands.
"""

from __future__ import annotations

from collections.abc import Sequence

from sep2gw.sim.battery import SimBattery
from transport.sunspec import SUNS_MARKER, ModelBlock, SunSpecValueError

__all__ = ["BASE_ADDRESS", "INV_ST", "MODEL_IDS", "SunSpecMap", "WriteRefused"]

BASE_ADDRESS = 40000
MODEL_IDS = (1, 701, 702, 704, 713, 802, 203)

# Scale factors the simulated device reports (deliberately not all zero, so decoding is exercised).
_SCALE_FACTORS: dict[int, dict[str, int]] = {
    701: {"A_SF": -2, "V_SF": -1, "Hz_SF": -3, "W_SF": 0, "PF_SF": -3, "VA_SF": 0, "Var_SF": 0,
          "TotWh_SF": 0, "TotVarh_SF": 0, "Tmp_SF": -1},
    702: {"W_SF": 0, "PF_SF": -3, "VA_SF": 0, "Var_SF": 0, "V_SF": -1, "A_SF": -1, "S_SF": 0},
    704: {"PF_SF": -3, "WMaxLimPct_SF": -1, "WSet_SF": 0, "WSetPct_SF": -2, "VarSet_SF": 0,
          "VarSetPct_SF": -2},
    713: {"WH_SF": 1, "Pct_SF": -1},
    802: {"AHRtg_SF": 0, "WHRtg_SF": 1, "WChaDisChaMax_SF": 0, "DisChaRte_SF": 0, "SoC_SF": -1,
          "DoD_SF": -1, "SoH_SF": -1, "V_SF": -1, "CellV_SF": -3, "A_SF": -1, "AMax_SF": 0,
          "W_SF": 0},
    203: {"A_SF": -2, "V_SF": -1, "Hz_SF": -2, "W_SF": 0, "VA_SF": 0, "VAR_SF": 0, "PF_SF": -3,
          "TotWh_SF": 0, "TotVAh_SF": 0, "TotVArh_SF": 0},
}  # fmt: skip


#: ``SimBattery.state`` → the 701 ``InvSt`` symbol a SunSpec inverter reports for it.
INV_ST: dict[str, str] = {
    "operating": "RUNNING",
    "standby": "STANDBY",
    "stopped": "OFF",
    "fault": "FAULT",
}


class WriteRefused(Exception):
    """A write the device refuses: ``code`` is the Modbus exception code to answer with."""

    def __init__(self, code: int, why: str) -> None:
        super().__init__(why)
        self.code = code
        self.why = why


class SunSpecMap:
    """The flat register map of one simulated device, starting at ``BASE_ADDRESS``."""

    def __init__(self, sim: SimBattery, *, base: int = BASE_ADDRESS) -> None:
        self.sim = sim
        self.base = base
        self.blocks: dict[int, ModelBlock] = {}
        address = base + 2
        for model_id in MODEL_IDS:
            block = ModelBlock.blank(model_id, address)
            for name, sf in _SCALE_FACTORS.get(model_id, {}).items():
                block.set_raw(name, sf)
            self.blocks[model_id] = block
            address += len(block.registers)
        self.end = address + 2  # end model: ID 0xFFFF, L 0
        self.registers: list[int] = [0] * (self.end - base)
        self.registers[0:2] = SUNS_MARKER
        self.registers[-2:] = [0xFFFF, 0]
        # Writable registers and where each writable point starts/ends (whole-point writes only).
        self._writable: dict[int, tuple[int, int, int]] = {}  # address -> (model, start, end)
        for model_id, block in self.blocks.items():
            for point in block.model.points.values():
                if point.writable:
                    start = block.base + point.offset
                    for a in range(start, start + point.size):
                        self._writable[a] = (model_id, start, start + point.size)
        self._static()
        self._commands_to_registers()
        self.refresh()

    # -- reading ---------------------------------------------------------------------------------
    def read(self, address: int, count: int) -> list[int]:
        """Registers ``[address, address+count)``; raises :class:`WriteRefused` (code 2) outside."""
        if address < self.base or address + count > self.end:
            raise WriteRefused(2, f"registers {address}..{address + count - 1} are outside the map")
        start = address - self.base
        return self.registers[start : start + count]

    def _sync(self, model_id: int) -> None:
        block = self.blocks[model_id]
        start = block.base - self.base
        self.registers[start : start + len(block.registers)] = block.registers

    def _static(self) -> None:
        sim, b = self.sim, self.sim.battery
        common = self.blocks[1]
        common.set_raw("Mn", "sep2gw")
        common.set_raw("Md", "SimBattery")
        common.set_raw("Vr", "0.1")
        common.set_raw("SN", f"SIM-{sim.seed}")
        common.set_raw("DA", 1)
        cap = self.blocks[702]
        cap.set_raw("WMaxRtg", round(b.max_w))
        cap.set_raw("VAMaxRtg", round(b.max_va))
        cap.set_raw("VarMaxInjRtg", round(b.max_va * 0.6))
        cap.set_raw("VarMaxAbsRtg", round(b.max_va * 0.6))
        cap.set_raw("WChaRteMaxRtg", round(b.max_charge_w))
        cap.set_raw("WDisChaRteMaxRtg", round(b.max_discharge_w))
        cap.set_raw("VNomRtg", round(b.nominal_v * 10))
        caps = cap.model.point("CtrlModes").symbols
        cap.set_raw("CtrlModes", (1 << caps["MAX_W"]) | (1 << caps["FIXED_W"]))
        cap.set_raw("VAMax", round(b.max_va))
        cap.set_raw("VNom", round(b.nominal_v * 10))
        ctl = self.blocks[704]
        ctl.set_raw("WMaxLimPctEna", ctl.model.symbol("WMaxLimPctEna", "DISABLED"))
        ctl.set_raw("WMaxLimPct", 1000)
        ctl.set_raw("WSetEna", ctl.model.symbol("WSetEna", "DISABLED"))
        ctl.set_raw("WSetMod", ctl.model.symbol("WSetMod", "WATTS"))
        ctl.set_raw("WSet", 0)
        storage = self.blocks[713]
        storage.set_raw("WHRtg", round(b.capacity_wh / 10))
        storage.set_raw("SoH", 1000)
        storage.set_raw("Sta", storage.model.symbol("Sta", "OK"))
        bat = self.blocks[802]
        bat.set_raw("AHRtg", round(b.capacity_wh / b.battery_v))
        bat.set_raw("WHRtg", round(b.capacity_wh / 10))
        bat.set_raw("WChaRteMax", round(b.max_charge_w))
        bat.set_raw("WDisChaRteMax", round(b.max_discharge_w))
        bat.set_raw("SoCMax", round(b.soc_max_pct * 10))
        bat.set_raw("SoCMin", round(b.soc_min_pct * 10))
        bat.set_raw("SoH", 1000)
        bat.set_raw("LocRemCtl", bat.model.symbol("LocRemCtl", "REMOTE"))
        bat.set_raw("Typ", bat.model.symbol("Typ", "LITHIUM_ION"))
        for name in ("Evt1", "Evt2", "EvtVnd1", "EvtVnd2", "AlmRst"):
            bat.set_raw(name, 0)
        for model_id in self.blocks:
            self._sync(model_id)

    def _commands_to_registers(self) -> None:
        sim = self.sim
        cap = self.blocks[702]
        cap.set_raw("WMax", round(sim.settings_max_w))
        cap.set_raw("WChaRteMax", round(sim.settings_charge_w))
        cap.set_raw("WDisChaRteMax", round(sim.settings_discharge_w))
        self._operation_to_registers()
        self._sync(702)
        self._sync(802)

    def _operation_to_registers(self) -> None:
        """802 ``SetOp``/``SetInvState`` as the device holds them: what was last written, or what
        an operator set at the device (``SimBattery.operator``)."""
        sim, bat = self.sim, self.blocks[802]
        bat.set_raw(
            "SetOp", bat.model.symbol("SetOp", "CONNECT" if sim.connected else "DISCONNECT")
        )
        if not sim.energized:
            state = "INVERTER_STOPPED"
        elif sim.standby:
            state = "INVERTER_STANDBY"
        else:
            state = "INVERTER_STARTED"
        bat.set_raw("SetInvState", bat.model.symbol("SetInvState", state))

    def refresh(self) -> None:
        """Copy the physics' present state into the measurement registers."""
        sim, b = self.sim, self.sim.battery
        site_w, der_w = sim.site_w(), sim.power_w
        v = sim.site_v()
        state = sim.state
        meas = self.blocks[701]
        meas.set_raw("ACType", meas.model.symbol("ACType", "SINGLE_PHASE"))
        meas.set_raw("St", meas.model.symbol("St", "ON" if sim.energized else "OFF"))
        meas.set_raw("InvSt", meas.model.symbol("InvSt", INV_ST[state]))
        meas.set_raw(
            "ConnSt", meas.model.symbol("ConnSt", "CONNECTED" if sim.connected else "DISCONNECTED")
        )
        meas.set_raw(
            "Alrm", 1 << meas.model.point("Alrm").symbols["GROUND_FAULT"] if sim.tripped else 0
        )
        meas.set_raw("W", round(der_w))
        meas.set_raw("VA", round(abs(der_w)))
        meas.set_raw("Var", 0)
        meas.set_raw("PF", 1000)
        meas.set_raw("A", round(abs(der_w) / v * 100))
        meas.set_raw("LNV", round(v * 10))
        meas.set_raw("Hz", round(sim.site_hz() * 1000))
        meas.set_raw("TotWhInj", round(sim.discharged_wh))
        meas.set_raw("TotWhAbs", round(sim.charged_wh))
        storage = self.blocks[713]
        storage.set_raw(
            "WHAvail", round(max(0.0, sim.stored_wh - b.capacity_wh * b.soc_min_pct / 100) / 10)
        )
        storage.set_raw("SoC", round(sim.soc_pct * 10))
        bat = self.blocks[802]
        bat.set_raw("SoC", round(sim.soc_pct * 10))
        if der_w > 1:
            cha = "DISCHARGING"
        elif der_w < -1:
            cha = "CHARGING"
        elif sim.soc_pct >= b.soc_max_pct:
            cha = "FULL"
        elif sim.soc_pct <= b.soc_min_pct:
            cha = "EMPTY"
        else:
            cha = "HOLDING"
        bat.set_raw("ChaSt", bat.model.symbol("ChaSt", cha))
        if state == "fault":
            bat_state = "FAULT"
        elif not sim.connected:
            bat_state = "DISCONNECTED"
        else:
            bat_state = "CONNECTED" if state == "operating" else "STANDBY"
        bat.set_raw("State", bat.model.symbol("State", bat_state))
        self._operation_to_registers()
        bat.set_raw("V", round(b.battery_v * 10))
        bat.set_raw("A", round(der_w / b.battery_v * 10))
        bat.set_raw("W", round(der_w))
        meter = self.blocks[203]
        meter.set_raw("W", round(-site_w))  # SunSpec meters: positive = imported from the grid
        meter.set_raw("VAR", round(-sim.site_var()))
        meter.set_raw("PhV", round(v * 10))
        meter.set_raw("PhVphA", round(v * 10))
        meter.set_raw("Hz", round(sim.site_hz() * 100))
        for model_id in (701, 713, 802, 203):
            self._sync(model_id)

    def poke(self, model_id: int, name: str, raw: int | float | str | None) -> None:
        """Set a point as the device itself would (alarms, faults); bypasses write validation."""
        self.blocks[model_id].set_raw(name, raw)
        self._sync(model_id)

    # -- writing ---------------------------------------------------------------------------------
    def write(self, address: int, values: Sequence[int]) -> None:
        """Apply a Write Multiple Registers; all or nothing. A tripped battery refuses every write
        (Modbus exception 4, server device failure)."""
        if self.sim.tripped:
            raise WriteRefused(4, "the battery has tripped (fault)")
        # An operator may have set SetOp/SetInvState at the device since the last refresh: the
        # write must not put back what the registers showed before.
        self._operation_to_registers()
        end = address + len(values)
        touched: set[int] = set()
        for a in range(address, end):
            spot = self._writable.get(a)
            if spot is None:
                raise WriteRefused(2, f"register {a} is not a writable point")
            model_id, start, stop = spot
            if start < address or stop > end:
                raise WriteRefused(3, f"write of {address}..{end - 1} splits the point at {start}")
            touched.add(model_id)
        saved = {m: list(self.blocks[m].registers) for m in touched}
        for model_id in touched:
            block = self.blocks[model_id]
            lo, hi = max(address, block.base), min(end, block.base + len(block.registers))
            block.registers[lo - block.base : hi - block.base] = values[lo - address : hi - address]
        try:
            self._registers_to_commands()
        except (WriteRefused, SunSpecValueError) as exc:
            for model_id, registers in saved.items():
                self.blocks[model_id].registers = registers
            if isinstance(exc, WriteRefused):
                raise
            raise WriteRefused(3, str(exc)) from None
        for model_id in touched:
            self._sync(model_id)

    def _registers_to_commands(self) -> None:
        sim, b = self.sim, self.sim.battery
        ctl, cap, bat = self.blocks[704], self.blocks[702], self.blocks[802]

        def number(block: ModelBlock, name: str, low: float, high: float) -> float | None:
            value = block.value(name)
            if value is not None and not low <= value <= high:
                raise WriteRefused(3, f"{name}={value} outside {low}..{high}")
            return value

        def symbol(block: ModelBlock, name: str) -> str | None:
            raw = block.raw(name)
            if raw is None:
                return None
            found = block.model.symbol_name(name, int(raw))
            if found is None:
                raise WriteRefused(3, f"{name}={raw} is not one of its symbols")
            return found

        max_w = number(cap, "WMax", 0, b.max_w)
        charge = number(cap, "WChaRteMax", 0, b.max_charge_w)
        discharge = number(cap, "WDisChaRteMax", 0, b.max_discharge_w)
        pct = number(ctl, "WMaxLimPct", 0, 100)
        wset = number(ctl, "WSet", -b.max_charge_w, b.max_discharge_w)
        pct_on = symbol(ctl, "WMaxLimPctEna") == "ENABLED"
        wset_on = symbol(ctl, "WSetEna") == "ENABLED"
        wset_mod = symbol(ctl, "WSetMod")
        op = symbol(bat, "SetOp")
        inv = symbol(bat, "SetInvState")
        if wset_on and wset_mod != "WATTS":
            raise WriteRefused(3, "this device only supports WSetMod=WATTS")
        sim.settings_max_w = b.max_w if max_w is None else max_w
        sim.settings_charge_w = b.max_charge_w if charge is None else charge
        sim.settings_discharge_w = b.max_discharge_w if discharge is None else discharge
        sim.max_limit_pct = pct if pct_on else None
        sim.setpoint_w = (wset or 0.0) if wset_on else None
        sim.connected = op != "DISCONNECT"
        sim.energized = inv != "INVERTER_STOPPED"
        sim.standby = inv == "INVERTER_STANDBY"
