"""The 2030.5 and CSIP-AUS vocabulary the codec works from: namespaces, the struct class of each
schema type, members in serialisation order, and which extension elements each CSIP-AUS namespace
defines (PROTOCOL.md §5). Shared by :mod:`transport.sep2.decoding` and :mod:`transport.sep2.encoding`."""

from __future__ import annotations

import functools
from typing import Final

import msgspec

from transport.sep2 import resources
from transport.sep2.schema_order import CSIPAUS_ELEMENTS, ROOTS, TYPES, MemberRow

SEP_NS: Final = "urn:ieee:std:2030.5:ns"
CSIPAUS_NS: Final = "https://csipaus.org/ns"  # CSIP-AUS v1.2 (csipaus-core.xsd)
CSIPAUS_NS_V13: Final = "https://csipaus.org/ns/v1.3"  # envoy's CSIP-AUS v1.3
CSIPAUS_NS_V13_STORAGE: Final = "https://csipaus.org/ns/v1.3-beta/storage"  # v1.3 storage beta xsd
# Servers in the field use each of these for the same elements: read all of them.
CSIPAUS_NAMESPACES: Final = (CSIPAUS_NS, CSIPAUS_NS_V13, CSIPAUS_NS_V13_STORAGE)
_XSI_NS: Final = "http://www.w3.org/2001/XMLSchema-instance"

# -------------------------------------------------------------------------------------------------
# Tables

_CLASSES: Final[dict[str, type[msgspec.Struct]]] = {
    name: getattr(resources, name) for name in TYPES
}
_TYPE_NAME: Final[dict[type[msgspec.Struct], str]] = {cls: n for n, cls in _CLASSES.items()}
# struct class -> (document element name, namespace key)
_ROOT_OF: Final[dict[type[msgspec.Struct], tuple[str, str]]] = {
    _CLASSES[ty]: (elem, ns) for elem, (ns, ty) in ROOTS.items()
}
_ROOT_BY_CLARK: Final[dict[str, str]] = {}
for _elem, (_ns, _ty) in ROOTS.items():
    for _uri in (SEP_NS,) if _ns == "sep" else CSIPAUS_NAMESPACES:
        _ROOT_BY_CLARK[f"{{{_uri}}}{_elem}"] = _ty


@functools.cache
def full_members(type_name: str) -> tuple[MemberRow, ...]:
    """All members of a schema type in serialisation order: the base type's first (xs:extension)."""
    base, own = TYPES[type_name]
    inherited = full_members(base) if base is not None else ()
    attrs = [m for m in (*inherited, *own) if m[2]]
    elems = [m for m in (*inherited, *own) if not m[2]]
    return (*attrs, *elems)


@functools.cache
def _reachable(type_name: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    stack = [type_name]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen[name] = None
        for m in full_members(name):
            if m[4]:
                stack.append(m[3])
        if name == "Notification":  # its Resource may be any resource (xsi:type)
            stack.extend(ty for _ns, ty in ROOTS.values())
    return tuple(seen)


def _uses_csipaus(type_name: str) -> bool:
    return any(m[1] == "csipaus" for t in _reachable(type_name) for m in full_members(t))


def _defined_elements() -> dict[str | None, dict[str, int]]:
    """CSIP-AUS namespace -> {extension element: minOccurs} (``None``: plain 2018, none)."""
    declared = [m[0] for _base, own in TYPES.values() for m in own if m[1] == "csipaus"]
    # Extension elements are told apart by name alone: no two types declare the same one.
    assert len(declared) == len(set(declared)), declared
    out: dict[str | None, dict[str, int]] = {None: {}}
    for uri, table in CSIPAUS_ELEMENTS.items():
        out[uri] = {name: low for elements in table.values() for name, low in elements}
        assert set(out[uri]) <= set(declared), uri
    # No v1.3 schema is published in any installed package: v1.3 keeps what the code knows, the
    # v1.3 storage beta's elements (envoy-schema's v1.3 models carry the same ones).
    out[CSIPAUS_NS_V13] = dict(out[CSIPAUS_NS_V13_STORAGE])
    assert set(out) == {None, *CSIPAUS_NAMESPACES}
    return out


# CSIP-AUS namespace -> the extension elements it defines, with their minOccurs.
_DEFINED: Final = _defined_elements()


def _known_namespace(csipaus_ns: str | None) -> dict[str, int]:
    defined = _DEFINED.get(csipaus_ns)
    if defined is None:
        raise ValueError(
            f"{csipaus_ns!r} is not a CSIP-AUS namespace this codec knows "
            f"(one of {list(CSIPAUS_NAMESPACES)}, or None for plain 2018)"
        )
    return defined


def csipaus_defines(csipaus_ns: str | None, element: str) -> bool:
    """Whether CSIP-AUS namespace ``csipaus_ns`` defines extension element ``element``.

    PROTOCOL.md §5: each CSIP-AUS version has its own namespace and schema; write only the
    elements the server's version defines. ``None`` is plain 2018 (no extension elements). An
    unknown namespace raises ``ValueError``.
    """
    return element in _known_namespace(csipaus_ns)


def _is_text(type_name: str) -> bool:
    return type_name in ("xs:string", "xs:anyURI") or type_name.startswith("String")
