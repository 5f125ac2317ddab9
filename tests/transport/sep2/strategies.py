"""Hypothesis strategies for every wire struct, built from the same schema tables the codec uses."""

from __future__ import annotations

import functools
from typing import Any

import msgspec
from hypothesis import strategies as st

from transport.sep2 import resources
from transport.sep2.codec import csipaus_defines, full_members
from transport.sep2.hexbinary import HEX_TYPES
from transport.sep2.schema_order import CSIPAUS_ELEMENTS, TYPES

__all__ = ["fit_namespace", "struct_strategy"]

_EXTENSION = {m[0] for _base, own in TYPES.values() for m in own if m[1] == "csipaus"}


def fit_namespace(obj: Any, csipaus_ns: str | None) -> Any:
    """``obj`` with only the CSIP-AUS extension elements ``csipaus_ns`` defines (the others
    cleared) and its mandatory ones present (``doeModesSupported`` 0 when absent)."""
    if isinstance(obj, tuple):
        return tuple(fit_namespace(x, csipaus_ns) for x in obj)
    if not isinstance(obj, msgspec.Struct):
        return obj
    table = CSIPAUS_ELEMENTS.get(csipaus_ns or "", {}).get(type(obj).__name__, ())
    mandatory = {name for name, low in table if low >= 1} if csipaus_ns else set()
    changes: dict[str, Any] = {}
    for name in obj.__struct_fields__:
        value = getattr(obj, name)
        if name in _EXTENSION and not csipaus_defines(csipaus_ns, name):
            changes[name] = None
        elif (
            name == "doeModesSupported"
            and value is None
            and (mandatory or (csipaus_ns is not None and csipaus_ns not in CSIPAUS_ELEMENTS))
        ):
            changes[name] = resources.HexBinary8(0)
        elif isinstance(value, msgspec.Struct | tuple):
            changes[name] = fit_namespace(value, csipaus_ns)
    return msgspec.structs.replace(obj, **changes)


_RANGES = {
    "UInt8": (0, 2**8 - 1),
    "UInt16": (0, 2**16 - 1),
    "UInt32": (0, 2**32 - 1),
    "UInt40": (0, 2**40 - 1),
    "UInt48": (0, 2**48 - 1),
    "UInt64": (0, 2**64 - 1),
    "Int8": (-(2**7), 2**7 - 1),
    "Int16": (-(2**15), 2**15 - 1),
    "Int32": (-(2**31), 2**31 - 1),
    "Int48": (-(2**47), 2**47 - 1),
    "Int64": (-(2**63), 2**63 - 1),
}


# XML Char range minus surrogates; \t \n \r included so escaping is exercised.
def _text(max_size: int) -> st.SearchStrategy[str]:
    return st.text(
        alphabet=st.characters(
            blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"
        )
        | st.sampled_from("\t\n\r\"\\&<>'"),
        max_size=max_size,
    )


_TEXT = _text(40)  # unbounded xs:string
_URI = st.from_regex(r"\A/[a-z0-9/]{0,12}\Z")


def _leaf(type_name: str, *, xsd_safe: bool) -> st.SearchStrategy[Any]:
    if type_name == "xs:boolean":
        return st.booleans()
    if type_name == "xs:anyURI":
        return _URI
    if type_name == "xs:string":
        return _TEXT
    if type_name.startswith("String"):  # StringN: up to the schema's maxLength
        return _text(int(type_name[len("String") :]))
    if type_name in HEX_TYPES:
        cls = HEX_TYPES[type_name]
        return st.integers(0, (1 << (8 * cls.BYTES)) - 1).map(cls)
    lo, hi = _RANGES[type_name]
    if type_name == "UInt48" and xsd_safe:
        hi = 281474976710655
    return st.integers(lo, hi)


# UInt8 fields the standard enumerates (independent implementations reject other values).
_ENUMERATED: dict[str, st.SearchStrategy[Any]] = {
    "subscribable": st.integers(0, 3),  # SubscribableType
    "type": st.sampled_from((0, 1, 2, 3, 4, 5, 6, 80, 81, 82, 83)),  # DERType
    "rtgAbnormalCategory": st.integers(0, 3),  # IEEE 1547-2018 abnormal category
    "rtgNormalCategory": st.integers(0, 2),  # IEEE 1547-2018 normal category
}


@functools.cache
def struct_strategy(type_name: str, *, xsd_safe: bool = False) -> st.SearchStrategy[Any]:
    """Any valid instance of the schema type; ``xsd_safe`` leaves out the 2023-only extras."""
    cls = getattr(resources, type_name)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for name, _ns, _attr, ty, is_complex, lo, hi in full_members(type_name):
        if xsd_safe and (type_name, name) == ("DERControlResponse", "modesResponded"):
            continue
        if name in _ENUMERATED:
            inner = _ENUMERATED[name]
        elif is_complex:
            inner = struct_strategy(ty, xsd_safe=xsd_safe)
        else:
            inner = _leaf(ty, xsd_safe=xsd_safe)
        if hi != 1:
            fields[name] = st.lists(inner, min_size=lo, max_size=max(lo, min(hi or 2, 2))).map(
                tuple
            )
        elif lo >= 1:
            fields[name] = inner
        else:
            fields[name] = st.none() | inner
    return st.builds(cls, **fields)
