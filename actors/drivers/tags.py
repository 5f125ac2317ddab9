"""Tag driver: a battery reached through a gateway runtime's ``read_tag(name)`` / ``write_tag(name,
value)`` (sync or async), mapped by a TOML tag map.

The map names, for each *role* the driver knows, the runtime's tag, its unit and an extra scale::

    [options]
    verify_writes = true          # read each written tag back and compare
    tolerance = 0.01              # relative tolerance of the read-back (1 %)

    [read]
    site_w = { tag = "Meter.P_kW", unit = "kW", scale = -1.0 }   # this meter counts import positive
    der_w = { tag = "PCS.P_kW", unit = "kW" }
    soc_pct = { tag = "BMS.SOC", unit = "%" }

    [write]
    setpoint_w = { tag = "PCS.P_setpoint_kW", unit = "kW" }

    [nameplate]
    max_discharge_w = { value = 5000, unit = "W" }
    max_charge_w = { tag = "PCS.Pmax_charge_kW", unit = "kW" }

Status roles (optional, for DERStatus): ``connected`` and ``storage_connected`` (``bool``), ``fault``
(``bool``: true reports the state ``fault`` and the alarm ``fault``) and ``state``, whose
``states`` table names what each value of the runtime's tag means::

    state = { tag = "PCS.State", unit = "state", states = { "0" = "off", "1" = "standby", "3" = "operating" } }

(the states of ``events.telemetry.OperatingState``; a value the table does not name is a read error).
What the map does not read, DERStatus takes from the control in force (``actors.der_info.status``).

SI value = raw × scale × unit factor; a unit must measure what its role measures (``kW`` for a power,
not ``V``). Sync providers are called inline (they are expected to answer from memory); async ones
are awaited under the caller's deadline.

Prices (optional ``[write]`` roles; IEEE 2030.5 Pricing, see ``actors.pricing``): ``import_price``
and ``export_price`` (units ``/kWh``, ``/MWh`` or ``/Wh``: currency units per energy, in the
tariff's currency) receive the first block's price of the rate in force with the lowest tariff
primacy value, for energy delivered to the site (flow direction forward, or not stated) and
received from it (reverse); ``tou_tier`` its time-of-use tier; ``price_in_force`` whether any
interval is in force. With no interval in force only ``price_in_force`` (false) is written: the
runtime decides what an unpriced period means, and the gateway invents no strategy.

Releasing: a setpoint no power mode asks for any more is released through ``setpoint_enable``
(false) or, without that tag, by writing 0 W; ``max_limit_pct``, ``connect`` and ``energize`` go back
to 100 %, true and true once no control sets them.
"""

from __future__ import annotations

import inspect
import math
import tomllib
from collections.abc import Awaitable, Mapping
from typing import Any, Protocol

import msgspec

from actors.drivers.base import (
    ApplyReport,
    DriverError,
    Nameplate,
    Telemetry,
    WriteNotVerified,
    loop_rating,
    usable_settings,
)
from events.der_model import ControlSettings, Mode
from events.pricing_events import PricesInForce, RatePrice, price_per_kwh
from events.telemetry import OperatingState
from statemachines.site_limit import (
    POWER_MODES,
    Clamp,
    LoopConfig,
    LoopState,
    step,
    validate_limits,
)

__all__ = ["TagDriver", "TagEntry", "TagMap", "TagMapError", "TagProvider", "TagReadError"]

# unit -> (dimension, factor to SI)
_UNITS: dict[str, tuple[str, float]] = {
    "W": ("power", 1.0), "kW": ("power", 1e3), "MW": ("power", 1e6),
    "var": ("reactive", 1.0), "kvar": ("reactive", 1e3), "Mvar": ("reactive", 1e6),
    "V": ("voltage", 1.0), "kV": ("voltage", 1e3),
    "Hz": ("frequency", 1.0),
    "Wh": ("energy", 1.0), "kWh": ("energy", 1e3), "MWh": ("energy", 1e6),
    "%": ("percent", 1.0), "fraction": ("percent", 100.0),
    "bool": ("bool", 1.0), "state": ("state", 1.0),
    # Prices: currency units (the tariff's ISO 4217 currency) per kWh is the base.
    "/kWh": ("price", 1.0), "/MWh": ("price", 1e-3), "/Wh": ("price", 1e3),
    "tier": ("tier", 1.0),
}  # fmt: skip
_READ_ROLES = {
    "site_w": "power", "site_var": "reactive", "site_v": "voltage", "site_hz": "frequency",
    "der_w": "power", "der_var": "reactive", "der_v": "voltage", "der_hz": "frequency",
    "soc_pct": "percent", "stored_wh": "energy", "connected": "bool",
    "storage_connected": "bool", "fault": "bool", "state": "state",
}  # fmt: skip
_WRITE_ROLES = {
    "setpoint_w": "power", "setpoint_enable": "bool", "max_limit_pct": "percent",
    "connect": "bool", "energize": "bool",
    "import_price": "price", "export_price": "price", "tou_tier": "tier", "price_in_force": "bool",
}  # fmt: skip
_NAMEPLATE_ROLES = {
    "rated_w": "power", "rated_va": "power", "rated_var": "reactive", "rated_charge_w": "power",
    "rated_discharge_w": "power", "capacity_wh": "energy", "max_w": "power",
    "max_charge_w": "power", "max_discharge_w": "power",
}  # fmt: skip


class TagMapError(DriverError):
    """The tag map is not usable: names the section, role and what is wrong."""

    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"tag map {where}: {why}")
        self.where = where
        self.why = why


class TagReadError(DriverError):
    def __init__(self, tag: str, value: object, why: str) -> None:
        super().__init__(f"tag {tag!r} returned {value!r}: {why}")
        self.tag = tag
        self.value = value
        self.why = why


class TagProvider(Protocol):
    """What the gateway runtime offers; either method may be sync or async."""

    def read_tag(self, name: str) -> object | Awaitable[object]: ...

    def write_tag(self, name: str, value: float | bool) -> object | Awaitable[object]: ...


class TagEntry(msgspec.Struct, frozen=True, kw_only=True):
    role: str
    tag: str | None
    unit: str
    scale: float = 1.0
    value: float | None = None  # a constant instead of a tag (nameplate only)
    #: The ``state`` role: the runtime's value → the converter's state.
    states: Mapping[int, OperatingState] | None = None

    @property
    def factor(self) -> float:
        return self.scale * _UNITS[self.unit][1]


class TagMap(msgspec.Struct, frozen=True, kw_only=True):
    read: Mapping[str, TagEntry]
    write: Mapping[str, TagEntry]
    nameplate: Mapping[str, TagEntry]
    verify_writes: bool = True
    tolerance: float = 0.01

    @classmethod
    def from_toml(cls, text: str) -> TagMap:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise TagMapError("(file)", f"not valid TOML: {exc}") from None
        unknown = set(doc) - {"options", "read", "write", "nameplate"}
        if unknown:
            raise TagMapError(f"[{sorted(unknown)[0]}]", "unknown section")
        options = doc.get("options", {})
        extra = set(options) - {"verify_writes", "tolerance"}
        if extra:
            raise TagMapError(f"[options] {sorted(extra)[0]}", "unknown option")
        verify = options.get("verify_writes", True)
        tolerance = options.get("tolerance", 0.01)
        if not isinstance(verify, bool):
            raise TagMapError("[options] verify_writes", "must be true or false")
        if (
            isinstance(tolerance, bool)
            or not isinstance(tolerance, int | float)
            or not 0 <= tolerance < 1
        ):
            raise TagMapError("[options] tolerance", "must be a number in [0, 1)")
        return cls(
            read=_section(doc, "read", _READ_ROLES, constants=False),
            write=_section(doc, "write", _WRITE_ROLES, constants=False),
            nameplate=_section(doc, "nameplate", _NAMEPLATE_ROLES, constants=True),
            verify_writes=verify,
            tolerance=float(tolerance),
        )


def _section(
    doc: Mapping[str, Any], name: str, roles: Mapping[str, str], *, constants: bool
) -> dict[str, TagEntry]:
    table = doc.get(name, {})
    if not isinstance(table, dict):
        raise TagMapError(f"[{name}]", "must be a table")
    out: dict[str, TagEntry] = {}
    for role, spec in table.items():
        where = f"[{name}] {role}"
        if role not in roles:
            raise TagMapError(where, f"unknown role (known: {', '.join(sorted(roles))})")
        if not isinstance(spec, dict):
            raise TagMapError(where, "must be an inline table { tag = ..., unit = ... }")
        extra = set(spec) - {"tag", "unit", "scale", "value", "states"}
        if extra:
            raise TagMapError(where, f"unknown key {sorted(extra)[0]!r}")
        states = _states(where, spec.get("states"), roles[role] == "state")
        unit = spec.get("unit")
        if unit not in _UNITS:
            raise TagMapError(where, f"unit {unit!r} is not one of {', '.join(_UNITS)}")
        if _UNITS[unit][0] != roles[role]:
            raise TagMapError(
                where, f"unit {unit!r} measures {_UNITS[unit][0]}, the role needs {roles[role]}"
            )
        scale = spec.get("scale", 1.0)
        if (
            isinstance(scale, bool)
            or not isinstance(scale, int | float)
            or not math.isfinite(scale)
            or scale == 0
        ):
            raise TagMapError(where, "scale must be a finite non-zero number")
        tag, value = spec.get("tag"), spec.get("value")
        if constants and value is not None:
            if tag is not None:
                raise TagMapError(where, "give either tag or value, not both")
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise TagMapError(where, "value must be a finite number")
        elif not isinstance(tag, str) or not tag:
            raise TagMapError(where, 'needs a tag name (tag = "...")')
        elif value is not None:
            raise TagMapError(where, "value is only allowed in [nameplate]")
        out[role] = TagEntry(
            role=role,
            tag=tag,
            unit=unit,
            scale=float(scale),
            value=None if value is None else float(value),
            states=states,
        )
    return out


def _states(where: str, table: object, wanted: bool) -> dict[int, OperatingState] | None:
    """The ``states`` table of the ``state`` role: ``{ "0" = "off", "3" = "operating" }``, each key
    a value the runtime's tag takes, each value one of ``events.telemetry.OperatingState``."""
    if not wanted:
        if table is not None:
            raise TagMapError(where, "states is only for the state role")
        return None
    if not isinstance(table, dict) or not table:
        raise TagMapError(
            where, 'needs states = { "<tag value>" = "<state>", ... } naming the values it reports'
        )
    known = ", ".join(s.value for s in OperatingState)
    out: dict[int, OperatingState] = {}
    for key, name in table.items():
        try:
            number = int(key)
        except ValueError:
            raise TagMapError(where, f"states key {key!r} is not an integer tag value") from None
        if name not in {s.value for s in OperatingState}:
            raise TagMapError(where, f"states[{key!r}] = {name!r} is not one of {known}")
        out[number] = OperatingState(name)
    return out


async def _call(result: object) -> object:
    if inspect.isawaitable(result):
        return await result
    return result


class TagDriver:
    """A DER driven through a tag provider."""

    def __init__(
        self, provider: TagProvider, tag_map: TagMap, *, loop: LoopConfig | None = None
    ) -> None:
        self.provider = provider
        self.map = tag_map
        self.loop = loop or LoopConfig()
        self._loop_state = LoopState()
        self._nameplate: Nameplate | None = None
        self._commanded: set[str] = set()  # write roles a control has set (to release later)

    async def aclose(self) -> None:
        return None

    def dispatchable_modes(self) -> frozenset[Mode]:
        write, read = self.map.write, self.map.read
        modes: set[Mode] = set()
        if "setpoint_w" in write:
            modes |= {
                Mode.TARGET_W,
                Mode.STORAGE_TARGET_W,
                Mode.FIXED_W_PCT,
                Mode.GENERATION_LIMIT_W,
                Mode.LOAD_LIMIT_W,
                Mode.MAX_LIMIT_PCT,
            }
            if "site_w" in read and "der_w" in read:
                modes |= {Mode.EXPORT_LIMIT_W, Mode.IMPORT_LIMIT_W}
        if "max_limit_pct" in write:
            modes.add(Mode.MAX_LIMIT_PCT)
        if "connect" in write:
            modes.add(Mode.CONNECT)
        if "energize" in write:
            modes.add(Mode.ENERGIZE)
        return frozenset(modes)

    async def _read(self, entry: TagEntry) -> float:
        if entry.value is not None:
            return entry.value * entry.factor
        assert entry.tag is not None
        raw = await _call(self.provider.read_tag(entry.tag))
        if isinstance(raw, bool):
            raw = float(raw)
        if not isinstance(raw, int | float):
            raise TagReadError(entry.tag, raw, "not a number")
        if not math.isfinite(raw):
            raise TagReadError(entry.tag, raw, "not a finite number")
        return float(raw) * entry.factor

    async def _write(self, entry: TagEntry, value: float | bool) -> None:
        assert entry.tag is not None
        raw: float | bool = value if isinstance(value, bool) else value / entry.factor
        await _call(self.provider.write_tag(entry.tag, raw))
        if not self.map.verify_writes:
            return
        back = await _call(self.provider.read_tag(entry.tag))
        if isinstance(value, bool):
            ok = isinstance(back, bool | int) and bool(back) == value
        else:
            ok = (
                isinstance(back, int | float)
                and not isinstance(back, bool)
                and math.isclose(float(back), raw, rel_tol=self.map.tolerance, abs_tol=1e-9)
            )
        if not ok:
            raise WriteNotVerified(f"tag {entry.tag!r}", raw, back)

    async def prices_changed(self, prices: PricesInForce) -> None:
        """Write the prices in force to the price roles the map names (module docstring)."""
        write = self.map.write
        if not {"import_price", "export_price", "tou_tier", "price_in_force"} & set(write):
            return
        chosen: dict[str, RatePrice] = {}
        for price in sorted(prices.prices, key=lambda p: (p.rate.tariff_primacy, p.rate.rate_mrid)):
            if price.interval_mrid is None:
                continue
            role = "export_price" if price.rate.flow_direction == 19 else "import_price"
            chosen.setdefault(role, price)
        if "price_in_force" in write:
            await self._write(write["price_in_force"], bool(chosen))
        for role, price in chosen.items():
            first = price.blocks[0] if price.blocks else None
            value = None if first is None else price_per_kwh(price.rate, first)
            if role in write and value is not None:
                await self._write(write[role], value)
        tier = next((p.tou_tier for p in chosen.values() if p.tou_tier is not None), None)
        if "tou_tier" in write and tier is not None:
            await self._write(write["tou_tier"], float(tier))

    async def read_nameplate(self) -> Nameplate:
        values: dict[str, Any] = {
            role: await self._read(entry) for role, entry in self.map.nameplate.items()
        }
        self._nameplate = Nameplate(**values)
        return self._nameplate

    async def read_telemetry(self, *, now: float) -> Telemetry:
        """The mapped readings; the status roles: ``state`` through its ``states`` table (a value
        it does not name is an error naming the tag), ``fault`` true → state ``fault`` and the
        alarm ``fault``."""
        values: dict[str, Any] = {}
        fault = False
        for role, entry in self.map.read.items():
            value = await self._read(entry)
            if role == "state":
                assert entry.states is not None and entry.tag is not None
                state = entry.states.get(int(value)) if value.is_integer() else None
                if state is None:
                    raise TagReadError(entry.tag, value, "not a value its states table names")
                values[role] = state
            elif role == "fault":
                fault = bool(value)
            elif role in ("connected", "storage_connected"):
                values[role] = bool(value)
            else:
                values[role] = value
        if fault:
            values["state"] = OperatingState.FAULT
            values["alarms"] = ("fault",)
        return Telemetry(at_s=now, **values)

    async def apply(
        self, limits: ControlSettings, *, now: float, reading: Telemetry | None = None
    ) -> ApplyReport:
        validate_limits(limits)
        dispatchable = self.dispatchable_modes()
        requested = limits.modes()
        usable = usable_settings(limits, dispatchable)
        nameplate = self._nameplate or await self.read_nameplate()
        site_w = der_w = soc = None
        if requested & POWER_MODES and "setpoint_w" in self.map.write:
            if reading is not None and reading.at_s == now:
                # the sample of this instant
                site_w, der_w, soc = reading.site_w, reading.der_w, reading.soc_pct
            else:
                if "site_w" in self.map.read:
                    site_w = await self._read(self.map.read["site_w"])
                if "der_w" in self.map.read:
                    der_w = await self._read(self.map.read["der_w"])
                if "soc_pct" in self.map.read:
                    soc = await self._read(self.map.read["soc_pct"])
        write = self.map.write
        # With a dedicated max_limit_pct tag the device applies that limit itself.
        loop_limits = (
            usable
            if "max_limit_pct" not in write
            else msgspec.structs.replace(usable, max_limit_pct=None)
        )
        wrote = False
        setpoint: float | None = None
        clamps: tuple[Clamp, ...] = ()
        site_met = None
        if "setpoint_w" in write:
            self._loop_state, decision = step(
                self._loop_state,
                self.loop,
                now=now,
                limits=loop_limits,
                rating=loop_rating(nameplate, Telemetry(at_s=now, soc_pct=soc)),
                site_w=site_w,
                der_w=der_w,
            )
            setpoint, clamps, site_met = (
                decision.setpoint_w,
                decision.clamps,
                decision.site_limit_met,
            )
            if decision.write and setpoint is not None:
                if "setpoint_enable" in write:
                    await self._write(write["setpoint_enable"], True)
                await self._write(write["setpoint_w"], setpoint)
                wrote = True
            elif setpoint is None and decision.write:
                # Released: back to the runtime's own logic where it has an enable tag; without
                # one the last command would stay in force indefinitely, so the DER is idled.
                if "setpoint_enable" in write:
                    await self._write(write["setpoint_enable"], False)
                else:
                    await self._write(write["setpoint_w"], 0.0)
        # Once commanded, a mode no control sets any more goes back to normal operation
        # (IEEE 2030.5 §10.10): no power limit, connected, energised.
        for role, value, normal in (
            ("max_limit_pct", usable.max_limit_pct, 100.0),
            ("connect", usable.connect, True),
            ("energize", usable.energize, True),
        ):
            if role not in write:
                continue
            if value is not None:
                self._commanded.add(role)
                await self._write(write[role], value)
            elif role in self._commanded:
                await self._write(write[role], normal)
                self._commanded.discard(role)
        return ApplyReport(
            applied=frozenset(requested & dispatchable),
            not_applicable=frozenset(requested - dispatchable),
            setpoint_w=setpoint,
            wrote=wrote,
            clamps=clamps,
            site_limit_met=site_met,
        )
