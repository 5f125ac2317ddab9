"""Encoding 2030.5 documents: struct -> bytes in schema order (sans-IO, pure).

Encoding
    One function per schema type, generated from the same tables at import (nested types inlined,
    always-written text merged into one f-string), writes elements in schema sequence order
    (attributes first), skipping absent optional fields; hexBinary at its schema width
    (``HexBinary128``/``160`` full width, bitmaps as the shortest even number of digits, so
    ``deviceCategory`` 0 is ``00``); the 2030.5 namespace as the default namespace and the CSIP-AUS
    elements with the ``csipaus`` prefix bound to the profile's namespace. Integer ranges, hex
    widths and StringN lengths are enforced (:class:`~transport.sep2.errors.Sep2EncodeError`), so
    nothing invalid is ever sent; reading stays tolerant of over-long strings. Each CSIP-AUS
    version has its own namespace and elements (PROTOCOL.md §5): an extension element the
    profile's namespace does not define (a v1.3 storage ``vppModesSupported`` under v1.2's
    ``https://csipaus.org/ns``) is refused, and one it makes mandatory (``doeModesSupported``) must
    be there. The tables come from each namespace's published schema (``CSIPAUS_ELEMENTS``); the
    serialisers are generated per (type, namespace).
"""

from __future__ import annotations

import functools
import re
import threading
import typing
from collections.abc import Callable
from typing import Any, Final

import msgspec

from transport.sep2 import resources
from transport.sep2.errors import (
    Sep2EncodeError,
)
from transport.sep2.hexbinary import HEX_TYPES
from transport.sep2.schema_order import MemberRow
from transport.sep2.vocabulary import (
    _ROOT_OF,
    _TYPE_NAME,
    _XSI_NS,
    CSIPAUS_NS,
    SEP_NS,
    _is_text,
    _known_namespace,
    _uses_csipaus,
    full_members,
)

# -------------------------------------------------------------------------------------------------
# Encoding

_Append = Callable[[str], None]
_Encoder = Callable[[Any, _Append, str, str], None]


# Characters XML 1.0 cannot carry at all (not even as references).
_NOT_XML_CHAR: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _esc_text(value: str) -> str:
    if not value.isprintable() and _NOT_XML_CHAR.search(value):
        raise ValueError(f"{value[:40]!r} holds a character XML cannot carry")
    if "&" in value or "<" in value or ">" in value or "\r" in value:
        return (
            value.replace("&", "&amp;")
            .replace("<", "&lt;")
            .replace(">", "&gt;")
            .replace("\r", "&#13;")
        )
    return value


def _esc_attr(value: str) -> str:
    value = _esc_text(value)
    if '"' in value or "\n" in value or "\t" in value:
        return value.replace('"', "&quot;").replace("\n", "&#10;").replace("\t", "&#9;")
    return value


def _hex_even(value: int) -> str:
    digits = f"{value:X}"
    return digits if len(digits) % 2 == 0 else "0" + digits


# (type name, CSIP-AUS namespace) -> its generated serialiser. Filled on first use (:func:`_encoder`): generating all of
# them at import cost ~50 ms and ~1 MB for types a gateway never writes (issue #7 scope 11).
_ENCODERS: dict[tuple[str, str | None], _Encoder] = {}
_ENCODERS_LOCK: Final = threading.Lock()

# Integer simple types -> (min, max), read from the Annotated aliases in ``resources`` (the bounds
# decoding enforces), so encoding can never write what decoding would refuse.
_INT_RANGES: Final[dict[str, tuple[int, int]]] = {
    name: (int(meta.ge), int(meta.le))
    for name in ("UInt8", "UInt16", "UInt32", "UInt40", "UInt48", "UInt64")
    + ("Int8", "Int16", "Int32", "Int48", "Int64")
    for meta in typing.get_args(getattr(resources, name))[1:]
    if isinstance(meta, msgspec.Meta) and meta.ge is not None and meta.le is not None
}


def _tag(m: MemberRow) -> str:
    return m[0] if m[1] == "sep" else "csipaus:" + m[0]


class _Gen:
    """Emits one type's serialiser as straight-line Python, nested types inlined.

    Text that is always written (tags, required leaves) accumulates in one f-string and is appended
    at once; only optional members and lists become branches and loops. The hexBinary width checks
    of a pending f-string are emitted just before it.
    """

    def __init__(self, csipaus_ns: str | None) -> None:
        self.csipaus_ns = csipaus_ns
        self.defined = _known_namespace(csipaus_ns)
        self.lines: list[str] = []
        self.pending: list[str] = []  # f-string pieces, already escaped for an f'...' literal
        self.checks: list[str] = []
        self.counter = 0

    def var(self) -> str:
        self.counter += 1
        return f"v{self.counter}"

    def text(self, literal: str) -> None:
        self.pending.append(literal.replace("{", "{{").replace("}", "}}"))

    def expr(self, code: str) -> None:
        self.pending.append("{" + code + "}")

    def flush(self, indent: int) -> None:
        pad = "    " * indent
        for check in self.checks:
            self.lines.append(pad + check)
        if self.pending:
            self.lines.append(pad + "a(f'" + "".join(self.pending) + "')")
        self.pending, self.checks = [], []

    def leaf(self, m: MemberRow, value: str) -> None:
        ty = m[3]
        if _is_text(ty):
            if ty.startswith("String"):  # StringN: the schema's maxLength, in characters
                limit = int(ty[len("String") :])
                self.checks.append(
                    f"if len({value}) > {limit}: "
                    f"raise ValueError(f'{m[0]}: longer than {limit} characters')"
                )
            self.expr(("_esc_attr(" if m[2] else "_esc_text(") + value + ")")
        elif ty == "xs:boolean":
            self.expr(f'"true" if {value} else "false"')
        elif ty in HEX_TYPES:
            cls = HEX_TYPES[ty]
            self.checks.append(
                f"if not 0 <= {value} < {1 << (8 * cls.BYTES)}: "
                f"raise ValueError(f'{m[0]}: {{{value}}} does not fit {ty}')"
            )
            if cls.FULL_WIDTH:
                self.expr(f"{value}:0{2 * cls.BYTES}X")
            elif cls.BYTES == 1:
                self.expr(f"{value}:02X")
            else:
                self.expr(f"_hex_even({value})")
        else:
            lo, hi = _INT_RANGES[ty]
            self.checks.append(
                f"if not {lo} <= {value} <= {hi}: "
                f"raise ValueError(f'{m[0]}: {{{value}}} is not {ty}')"
            )
            self.expr(f"{value}:d")

    def struct(self, type_name: str, obj: str, tag: str | None, indent: int) -> None:
        """Emit ``obj`` (a local variable) as element ``tag`` (``None``: the ``tag`` argument)."""
        members = full_members(type_name)
        attrs = [m for m in members if m[2]]
        elems = [m for m in members if not m[2]]
        if tag is None:
            self.text("<")
            self.expr("tag")
            self.expr("extra")
        else:
            self.text("<" + tag)
        for m in attrs:
            if m[5] >= 1:
                self.text(f' {m[0]}="')
                self.leaf(m, f"{obj}.{m[0]}")
                self.text('"')
                continue
            v = self.var()
            self.flush(indent)
            pad = "    " * indent
            self.lines.append(f"{pad}{v} = {obj}.{m[0]}")
            self.lines.append(f"{pad}if {v} is not None:")
            self.text(f' {m[0]}="')
            self.leaf(m, v)
            self.text('"')
            self.flush(indent + 1)
        if not elems:
            self.text("/>")
            return
        self.text(">")
        for m in elems:
            self.member(m, obj, indent)
        if tag is None:
            self.text("</")
            self.expr("tag")
            self.text(">")
        else:
            self.text(f"</{tag}>")

    def member(self, m: MemberRow, obj: str, indent: int) -> None:
        pad = "    " * indent
        tag = _tag(m)
        if m[1] == "csipaus" and not self._csipaus_member(m, obj, indent):
            return
        if m[1] == "csipaus" and self.defined[m[0]] >= 1 and m[5] < 1:
            m = (*m[:5], 1, m[6])  # mandatory in this namespace (doeModesSupported)
            self.checks.append(
                f"if {obj}.{m[0]} is None: raise ValueError("
                f"{f'{tag} is mandatory in CSIP-AUS namespace {self.csipaus_ns}'!r})"
            )
        required, single = m[5] >= 1, m[6] == 1
        if single and required:
            if m[4]:
                # Binding a local writes nothing, so the pending text need not be flushed first.
                v = self.var()
                self.lines.append(f"{pad}{v} = {obj}.{m[0]}")
                self.struct(m[3], v, tag, indent)
            else:
                self.text(f"<{tag}>")
                self.leaf(m, f"{obj}.{m[0]}")
                self.text(f"</{tag}>")
            return
        v = self.var()
        self.flush(indent)
        if single:
            self.lines.append(f"{pad}{v} = {obj}.{m[0]}")
            self.lines.append(f"{pad}if {v} is not None:")
        else:
            self.lines.append(f"{pad}for {v} in {obj}.{m[0]}:")
        if m[4] and m[3] == "Resource" and m[0] == "Resource":
            # Notification.Resource holds any resource: written with its xsi:type.
            self.lines.append(f"{pad}    _enc_any_resource({v}, a, {tag!r}, {self.csipaus_ns!r})")
            return
        if m[4]:
            self.struct(m[3], v, tag, indent + 1)
        else:
            self.text(f"<{tag}>")
            self.leaf(m, v)
            self.text(f"</{tag}>")
        self.flush(indent + 1)

    def _csipaus_member(self, m: MemberRow, obj: str, indent: int) -> bool:
        """Whether extension element ``m`` is written; one the namespace does not define is
        refused when set (PROTOCOL.md §5: never send what the server's schema has no place for)."""
        if m[0] in self.defined:
            return True
        where = (
            "plain 2018 (no CSIP-AUS namespace)"
            if self.csipaus_ns is None
            else f"CSIP-AUS namespace {self.csipaus_ns}"
        )
        message = f"{_tag(m)} is not an element of {where}"
        self.flush(indent)
        test = f"{obj}.{m[0]} is not None" if m[6] == 1 else f"{obj}.{m[0]}"
        self.lines.append(f"{'    ' * indent}if {test}: raise ValueError({message!r})")
        return False


def _compile_encoder(type_name: str, csipaus_ns: str | None) -> _Encoder:
    """Generate the serialiser of one schema type for one CSIP-AUS namespace: straight-line code
    in schema order."""
    gen = _Gen(csipaus_ns)
    gen.lines.append(f"def _enc_{type_name}(o, a, tag, extra):")
    gen.struct(type_name, "o", None, 1)
    gen.flush(1)
    namespace: dict[str, Any] = {
        "_esc_text": _esc_text,
        "_esc_attr": _esc_attr,
        "_hex_even": _hex_even,
        "_enc_any_resource": _enc_any_resource,
    }
    # Source built from our own schema tables, never from input (the dataclasses technique).
    exec("\n".join(gen.lines), namespace)
    fn: _Encoder = namespace[f"_enc_{type_name}"]
    return fn


def _enc_any_resource(value: msgspec.Struct, a: _Append, tag: str, csipaus_ns: str | None) -> None:
    type_name = _TYPE_NAME.get(type(value))
    if type_name is None:
        raise TypeError(f"{type(value).__name__} is not a 2030.5 resource")
    extra = "" if type_name == "Resource" else f' xmlns:xsi="{_XSI_NS}" xsi:type="{type_name}"'
    encoder = _ENCODERS.get((type_name, csipaus_ns))
    if encoder is None:
        encoder = _encoder(type_name, csipaus_ns)
    encoder(value, a, tag, extra)


def _encoder(type_name: str, csipaus_ns: str | None) -> _Encoder:
    """The serialiser of ``type_name``, generated once on first use and then cached.

    Callers look in ``_ENCODERS`` first (a dict hit is the hot path); the lock only guards the
    generation, so two threads encoding a new type at once generate it once.
    """
    with _ENCODERS_LOCK:
        key = (type_name, csipaus_ns)
        encoder = _ENCODERS.get(key)
        if encoder is None:
            encoder = _ENCODERS[key] = _compile_encoder(type_name, csipaus_ns)
        return encoder


def encode(obj: msgspec.Struct, *, csipaus_ns: str | None = CSIPAUS_NS) -> bytes:
    """Serialise a resource as its 2030.5 document (UTF-8, no XML declaration).

    ``csipaus_ns`` is the namespace the profile uses for CSIP-AUS elements (PROTOCOL.md §1), one
    of ``CSIPAUS_NAMESPACES``, or ``None`` for plain 2018. PROTOCOL.md §5: only the extension
    elements that namespace's schema defines are written, and its mandatory ones must be there.
    Raises :class:`~transport.sep2.errors.Sep2EncodeError` for a value its schema type cannot
    hold, or an extension element the namespace does not define (naming both).
    """
    root = _ROOT_OF.get(type(obj))
    if root is None:
        raise TypeError(f"{type(obj).__name__} is not a 2030.5 document type of this codec")
    elem, ns = root
    type_name = _TYPE_NAME[type(obj)]
    extra = f' xmlns="{SEP_NS}"'
    if csipaus_ns is not None and (ns == "csipaus" or _uses_csipaus_cached(type_name)):
        extra += f' xmlns:csipaus="{csipaus_ns}"'
    elif ns == "csipaus":
        raise Sep2EncodeError("/" + elem, "a CSIP-AUS document needs a CSIP-AUS namespace")
    parts: list[str] = []
    tag = elem if ns == "sep" else "csipaus:" + elem
    encoder = _ENCODERS.get((type_name, csipaus_ns))
    if encoder is None:
        try:
            encoder = _encoder(type_name, csipaus_ns)
        except ValueError as exc:  # an unknown namespace
            raise Sep2EncodeError("/" + elem, str(exc)) from None
    try:
        encoder(obj, parts.append, tag, extra)
    except (ValueError, TypeError, AttributeError) as exc:
        raise Sep2EncodeError("/" + elem, str(exc)) from None
    return "".join(parts).encode()


_uses_csipaus_cached = functools.cache(_uses_csipaus)
