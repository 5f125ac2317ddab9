"""SunSpec information models, built from pysunspec2's JSON definitions (never hand-typed tables).

A *model definition* (:class:`ModelDef`) is the register layout of one SunSpec model: every point of
its fixed part with its offset from the model's ``ID`` register, size, type, scale-factor reference,
access and enumeration symbols, read from ``sunspec2/models/json/model_N.json`` as the SunSpec Alliance
publishes it. A *model block* (:class:`ModelBlock`) is one model instance as read from a device: its
base address and registers; it decodes and encodes points, applying scale factors.

This module is pure (no I/O beyond reading the packaged definitions once); the Modbus driver in
``actors.drivers.sunspec`` and the simulated battery's server in ``sep2gw.sim`` both use it, so the
two ends of every test are laid out by the same published definitions.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

__all__ = [
    "END_MODEL_ID",
    "SUNSPEC_BASE_ADDRESSES",
    "SUNS_MARKER",
    "ModelBlock",
    "ModelDef",
    "ModelHeader",
    "PointDef",
    "SunSpecError",
    "SunSpecValueError",
    "UnknownModel",
    "UnknownPoint",
    "decode_point",
    "encode_point",
    "is_suns_marker",
    "model_def",
    "parse_header",
]

#: SunSpec device information model spec §4.2: the map starts at 40000, 0 or 50000 (in that order of
#: likelihood) with the two registers "SunS" (0x5375 0x6E53).
SUNSPEC_BASE_ADDRESSES: tuple[int, ...] = (40000, 0, 50000)
SUNS_MARKER: tuple[int, int] = (0x5375, 0x6E53)
#: The end model: ID 0xFFFF, L 0.
END_MODEL_ID = 0xFFFF

_SIZES = {
    "int16": 1, "uint16": 1, "count": 1, "acc16": 1, "enum16": 1, "bitfield16": 1, "pad": 1,
    "sunssf": 1, "int32": 2, "uint32": 2, "acc32": 2, "enum32": 2, "bitfield32": 2, "ipaddr": 2,
    "float32": 2, "int64": 4, "uint64": 4, "acc64": 4, "float64": 4, "eui48": 4, "ipv6addr": 8,
}  # fmt: skip
# SunSpec "not implemented" sentinels per type (spec §5.3): a point holding one has no value.
_UNIMPLEMENTED = {
    "int16": 0x8000, "sunssf": 0x8000, "uint16": 0xFFFF, "count": 0, "acc16": 0,
    "enum16": 0xFFFF, "bitfield16": 0xFFFF, "int32": 0x80000000, "uint32": 0xFFFFFFFF,
    "acc32": 0, "enum32": 0xFFFFFFFF, "bitfield32": 0xFFFFFFFF, "ipaddr": 0,
    "int64": 0x8000000000000000, "uint64": 0xFFFFFFFFFFFFFFFF, "acc64": 0,
}  # fmt: skip
_SIGNED = frozenset({"int16", "sunssf", "int32", "int64"})


class SunSpecError(Exception):
    """Base of the SunSpec model errors."""


class UnknownModel(SunSpecError):
    def __init__(self, model_id: int) -> None:
        super().__init__(f"SunSpec model {model_id} has no definition in pysunspec2")
        self.model_id = model_id


class UnknownPoint(SunSpecError):
    def __init__(self, model_id: int, point: str) -> None:
        super().__init__(f"SunSpec model {model_id} has no point {point!r} in its fixed part")
        self.model_id = model_id
        self.point = point


class SunSpecValueError(SunSpecError):
    """A value does not fit the point (NaN, out of the type's range, unknown symbol, bad map)."""

    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"{where}: {why}")
        self.where = where
        self.why = why


@dataclass(frozen=True, slots=True)
class PointDef:
    """One point: ``offset`` counts registers from the model's ``ID`` register."""

    model_id: int
    name: str
    type: str
    offset: int
    size: int
    sf: str | int | None
    access: str
    units: str | None
    mandatory: bool
    symbols: Mapping[str, int] = field(default_factory=dict)

    @property
    def writable(self) -> bool:
        return self.access == "RW"


@dataclass(frozen=True, slots=True)
class ModelDef:
    """The fixed part of a SunSpec model (repeating groups with a variable count are not laid out)."""

    model_id: int
    name: str
    label: str
    length: int  # the value of L: registers after ID and L
    points: Mapping[str, PointDef]

    def point(self, name: str) -> PointDef:
        try:
            return self.points[name]
        except KeyError:
            raise UnknownPoint(self.model_id, name) from None

    def symbol(self, point: str, name: str) -> int:
        """The numeric value of enumeration symbol ``name`` of ``point`` (from the JSON definition)."""
        symbols = self.point(point).symbols
        if name not in symbols:
            raise SunSpecValueError(f"model {self.model_id} {point}", f"no symbol {name!r}")
        return symbols[name]

    def symbol_name(self, point: str, value: int) -> str | None:
        for name, number in self.point(point).symbols.items():
            if number == value:
                return name
        return None


class ModelHeader(tuple[int, int, int]):
    """``(model_id, base_address, length)`` of one model instance found on a device."""

    __slots__ = ()

    @property
    def model_id(self) -> int:
        return self[0]

    @property
    def base(self) -> int:
        return self[1]

    @property
    def length(self) -> int:
        return self[2]


def _walk(
    model_id: int, group: Mapping[str, Any], prefix: str, offset: int, out: dict[str, PointDef]
) -> tuple[int, bool]:
    """Lay out ``group``; returns the next offset and whether the layout is still fixed."""
    for point in group.get("points", ()):
        kind = point["type"]
        size = int(point["size"]) if kind == "string" else _SIZES[kind]
        if point.get("count") is not None:
            return offset, False  # a point array of variable length ends the fixed part
        name = prefix + point["name"]
        symbols = {s["name"]: int(s["value"]) for s in point.get("symbols", ())}
        out[name] = PointDef(
            model_id=model_id,
            name=name,
            type=kind,
            offset=offset,
            size=size,
            sf=point.get("sf"),
            access=point.get("access", "R"),
            units=point.get("units"),
            mandatory=point.get("mandatory", "O") == "M",
            symbols=symbols,
        )
        offset += size
    for sub in group.get("groups", ()):
        count = sub.get("count", 1)
        if not isinstance(count, int):
            return offset, False  # count held in a point: the rest depends on the device
        for index in range(count):
            label = sub["name"] if count == 1 else f"{sub['name']}[{index}]"
            offset, fixed = _walk(model_id, sub, f"{prefix}{label}.", offset, out)
            if not fixed:
                return offset, False
    return offset, True


@cache
def model_def(model_id: int) -> ModelDef:
    """The definition of SunSpec model ``model_id`` from pysunspec2's packaged JSON."""
    path = resources.files("sunspec2") / "models" / "json" / f"model_{model_id}.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UnknownModel(model_id) from None
    group = json.loads(text)["group"]
    points: dict[str, PointDef] = {}
    end, _fixed = _walk(model_id, group, "", 0, points)
    return ModelDef(
        model_id=model_id,
        name=group["name"],
        label=group.get("label", group["name"]),
        length=end - 2,
        points=points,
    )


def is_suns_marker(registers: Sequence[int]) -> bool:
    """SunSpec §4.2: a map begins with the well-known value "SunS" in two registers."""
    return len(registers) >= 2 and (registers[0], registers[1]) == SUNS_MARKER


def parse_header(registers: Sequence[int], address: int) -> ModelHeader | None:
    """The model header (``ID``, ``L``) at ``address``; ``None`` for the end model."""
    if len(registers) < 2:
        raise SunSpecValueError(f"address {address}", "model header needs two registers")
    model_id, length = registers[0], registers[1]
    if model_id == END_MODEL_ID:
        return None
    return ModelHeader((model_id, address, length))


def _pack(point: PointDef, raw: int) -> list[int]:
    return [(raw >> (16 * (point.size - 1 - i))) & 0xFFFF for i in range(point.size)]


def decode_point(point: PointDef, registers: Sequence[int]) -> int | float | str | None:
    """The raw value of ``point`` from its registers (big-endian words); ``None`` if not implemented.

    Scale factors are not applied here: see :meth:`ModelBlock.value`.
    """
    if len(registers) != point.size:
        raise SunSpecValueError(point.name, f"needs {point.size} registers, got {len(registers)}")
    kind = point.type
    if kind == "string":
        data = b"".join(word.to_bytes(2, "big") for word in registers)
        return data.split(b"\x00", 1)[0].decode("utf-8", "replace").strip() or None
    if kind in ("float32", "float64"):
        data = b"".join(word.to_bytes(2, "big") for word in registers)
        number = struct.unpack(">f" if kind == "float32" else ">d", data)[0]
        return None if math.isnan(number) else float(number)
    raw = 0
    for word in registers:
        raw = (raw << 16) | word
    if kind == "pad" or raw == _UNIMPLEMENTED.get(kind, -1):
        return None
    if kind in _SIGNED and raw >= 1 << (16 * point.size - 1):
        raw -= 1 << (16 * point.size)
    return raw


def encode_point(point: PointDef, raw: int | float | str | None) -> list[int]:
    """The registers holding ``raw`` (unscaled) for ``point``; ``None`` writes "not implemented"."""
    kind = point.type
    if raw is None:
        if kind == "string":
            return [0] * point.size
        if kind in ("float32", "float64"):
            raw = math.nan
        else:
            return _pack(point, _UNIMPLEMENTED.get(kind, 0))
    if kind == "string":
        if not isinstance(raw, str):
            raise SunSpecValueError(point.name, f"expects a string, got {raw!r}")
        data = raw.encode("utf-8")
        if len(data) > 2 * point.size:
            raise SunSpecValueError(point.name, f"string longer than {2 * point.size} bytes")
        data = data.ljust(2 * point.size, b"\x00")
        return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    if kind in ("float32", "float64"):
        if isinstance(raw, str):
            raise SunSpecValueError(point.name, f"expects a number, got {raw!r}")
        data = struct.pack(">f" if kind == "float32" else ">d", float(raw))
        return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    if isinstance(raw, str) or isinstance(raw, float) and not raw.is_integer():
        raise SunSpecValueError(point.name, f"expects an integer register value, got {raw!r}")
    number = int(raw)
    bits = 16 * point.size
    low, high = (
        (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if kind in _SIGNED else (0, (1 << bits) - 1)
    )
    if not low <= number <= high:
        raise SunSpecValueError(point.name, f"{number} is outside {kind} range [{low}, {high}]")
    if number == _UNIMPLEMENTED.get(kind) or (
        kind in _SIGNED and number + (1 << bits) == _UNIMPLEMENTED.get(kind)
    ):
        raise SunSpecValueError(point.name, f"{number} is the {kind} 'not implemented' sentinel")
    return _pack(point, number & ((1 << bits) - 1))


@dataclass(slots=True)
class ModelBlock:
    """One model instance as held by a device: ``registers[0]`` is the ``ID`` register at ``base``."""

    model: ModelDef
    base: int
    registers: list[int]

    @classmethod
    def blank(cls, model_id: int, base: int) -> ModelBlock:
        """A model with every point "not implemented" and a correct header (for servers)."""
        model = model_def(model_id)
        block = cls(model=model, base=base, registers=[0] * (model.length + 2))
        for point in model.points.values():
            block.set_raw(point.name, None)
        block.registers[0] = model_id
        block.registers[1] = model.length
        return block

    def address(self, name: str) -> int:
        return self.base + self.model.point(name).offset

    def raw(self, name: str) -> int | float | str | None:
        """The raw value of ``name``; ``None`` if not implemented, including a point past the end
        of a device's shorter (older) version of the model, which the device does not have."""
        point = self.model.point(name)
        end = point.offset + point.size
        if end > len(self.registers):
            return None
        return decode_point(point, self.registers[point.offset : end])

    def set_raw(self, name: str, raw: int | float | str | None) -> list[int]:
        """Store ``raw`` into the block; returns the registers written."""
        point = self.model.point(name)
        words = encode_point(point, raw)
        self.registers[point.offset : point.offset + point.size] = words
        return words

    def scale_factor(self, name: str) -> int | None:
        """The power-of-ten exponent applying to ``name`` (SunSpec §5.4); ``None`` when unavailable."""
        sf = self.model.point(name).sf
        if sf is None:
            return 0
        if isinstance(sf, int):
            return sf
        value = self.raw(sf)
        if not isinstance(value, int) or not -10 <= value <= 10:
            return None
        return value

    def value(self, name: str) -> float | None:
        """The engineering value of numeric point ``name`` (raw × 10^sf); ``None`` if not implemented."""
        raw = self.raw(name)
        if raw is None:
            return None
        if isinstance(raw, str):
            raise SunSpecValueError(f"model {self.model.model_id} {name}", "is a string point")
        sf = self.scale_factor(name)
        if sf is None:
            return None
        # Dividing by 10^-sf keeps 2301 with sf -1 at exactly 230.1 (multiplying by 0.1 does not).
        return float(raw * 10**sf) if sf >= 0 else raw / 10**-sf

    def text(self, name: str) -> str | None:
        raw = self.raw(name)
        return raw if isinstance(raw, str) or raw is None else str(raw)

    def encode_value(self, name: str, value: float) -> tuple[int, list[int]]:
        """Registers for engineering ``value`` of ``name`` under the block's scale factor.

        Returns ``(address, registers)``. NaN, infinities and values outside the point's type range
        are refused with :class:`SunSpecValueError`.
        """
        where = f"model {self.model.model_id} {name}"
        point = self.model.point(name)
        if point.offset + point.size > len(self.registers):
            # Writing there would land in whatever follows this device's shorter model.
            raise SunSpecValueError(
                where, f"not in the device's model (L={len(self.registers) - 2})"
            )
        if not math.isfinite(value):
            raise SunSpecValueError(where, f"refusing non-finite value {value!r}")
        sf = self.scale_factor(name)
        if sf is None:
            raise SunSpecValueError(where, "its scale factor is not implemented by the device")
        raw = round(value / 10**sf) if sf >= 0 else round(value * 10**-sf)
        return self.base + point.offset, encode_point(point, raw)
