"""hexBinary values of the 2030.5 schema: ints that remember their schema width.

Servers echo hex with leading zeros dropped (``0`` for ``00``), so identity is numeric: a hexBinary
value is an ``int`` and compares as one. The subclass records the schema type so the serialiser
writes the width the schema and real servers expect (PROTOCOL.md §2.3): identifiers (mRID, LFDI: 64
bits and up) at their full width, bitmaps at the shortest even number of digits (``deviceCategory``
``00``).
"""

from __future__ import annotations

from typing import Self

__all__ = [
    "HEX_TYPES",
    "HexBinary8",
    "HexBinary16",
    "HexBinary32",
    "HexBinary48",
    "HexBinary64",
    "HexBinary128",
    "HexBinary160",
    "HexBinaryValue",
]


class HexBinaryValue(int):
    """Base of the width-typed hexBinary ints; ``BYTES`` is the schema's maxLength."""

    __slots__ = ()
    BYTES = 0
    FULL_WIDTH = False

    def __new__(cls, value: int = 0) -> Self:
        if not 0 <= value < 1 << (8 * cls.BYTES):
            raise ValueError(f"{value} does not fit {cls.__name__}")
        return super().__new__(cls, value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(0x{int(self):X})"


class HexBinary8(HexBinaryValue):
    __slots__ = ()
    BYTES = 1


class HexBinary16(HexBinaryValue):
    __slots__ = ()
    BYTES = 2


class HexBinary32(HexBinaryValue):
    __slots__ = ()
    BYTES = 4


class HexBinary48(HexBinaryValue):
    __slots__ = ()
    BYTES = 6


class HexBinary64(HexBinaryValue):
    __slots__ = ()
    BYTES = 8
    FULL_WIDTH = True


class HexBinary128(HexBinaryValue):
    __slots__ = ()
    BYTES = 16
    FULL_WIDTH = True


class HexBinary160(HexBinaryValue):
    __slots__ = ()
    BYTES = 20
    FULL_WIDTH = True


HEX_TYPES: dict[str, type[HexBinaryValue]] = {
    cls.__name__: cls
    for cls in (
        HexBinary8,
        HexBinary16,
        HexBinary32,
        HexBinary48,
        HexBinary64,
        HexBinary128,
        HexBinary160,
    )
}
