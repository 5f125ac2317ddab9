"""The 2030.5 XML codec: hardened bytes -> struct, and struct -> bytes in schema order.

Sans-IO and pure: every function takes bytes or structs and returns structs or bytes.

Decoding (PROTOCOL.md §§1-5; issue #3 scope 2)
    1. Hardening before any parsing: a size limit (default 1 MiB) and a refusal of any DTD, so
       entity expansion (billion laughs) and external entities never start. The lxml parser itself
       runs with entities unresolved, no network, no DTD loading and libxml2's own depth cap.
    2. One ``lxml.etree.fromstring`` builds the tree; libxml2 stops at nesting depth 256 (the
       default limit), a compiled XPath probe enforces any lower configured limit in C; the document
       element must be the resource asked for.
    3. A stylesheet generated from the schema tables (one per document type, compiled once) turns
       the tree into JSON in C: known elements by name and namespace, in any order; unknown elements
       (a newer edition's, or another profile's) skipped; every value quoted, so no text can inject
       structure. ``msgspec`` then decodes that JSON into the frozen structs in C, checking types,
       required elements and integer ranges (``UInt8`` etc.); hexBinary goes through one small hook
       that compares numerically (leading zeros dropped by servers are fine).
    Every refusal is a :class:`~transport.sep2.errors.Sep2DecodeError` naming the element path.

    Why a stylesheet rather than a Python tree walk: visiting every element from Python costs about
    as much again as the parse itself (measured 3.7x the parse floor); doing the walk in libxslt and
    the typing in msgspec keeps the whole decode near 3x (see benchmarks/xml_bench.py).

Encoding
    One function per schema type, generated from the same tables at import (nested types inlined,
    always-written text merged into one f-string), writes elements in schema sequence order
    (attributes first), skipping absent optional fields; hexBinary at its schema width
    (``HexBinary128``/``160`` full width, bitmaps as the shortest even number of digits, so
    ``deviceCategory`` 0 is ``00``); the 2030.5 namespace as the default namespace and the CSIP-AUS
    elements with the ``csipaus`` prefix bound to the profile's namespace. Integer ranges, hex
    widths and StringN lengths are enforced (:class:`~transport.sep2.errors.Sep2EncodeError`), so
    nothing invalid is ever sent; reading stays tolerant of over-long strings.
"""

from __future__ import annotations

import functools
import re
import threading
import typing
from collections.abc import Callable
from typing import Any, Final, TypeVar

import msgspec
from lxml import etree

from transport.sep2 import resources
from transport.sep2.errors import (
    DocumentRejected,
    MalformedXml,
    SchemaViolation,
    Sep2EncodeError,
    UnexpectedDocument,
)
from transport.sep2.hexbinary import HEX_TYPES
from transport.sep2.schema_order import ROOTS, TYPES, MemberRow

__all__ = [
    "CSIPAUS_NAMESPACES",
    "CSIPAUS_NS",
    "CSIPAUS_NS_V13",
    "CSIPAUS_NS_V13_STORAGE",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "LIBXML2_MAX_DEPTH",
    "MAX_UNKNOWN_NAMES",
    "SEP_NS",
    "Limits",
    "NameBudget",
    "decode",
    "decode_any",
    "document_element",
    "encode",
    "full_members",
]

SEP_NS: Final = "urn:ieee:std:2030.5:ns"
CSIPAUS_NS: Final = "https://csipaus.org/ns"  # CSIP-AUS v1.2 (csipaus-core.xsd)
CSIPAUS_NS_V13: Final = "https://csipaus.org/ns/v1.3"  # envoy's CSIP-AUS v1.3
CSIPAUS_NS_V13_STORAGE: Final = "https://csipaus.org/ns/v1.3-beta/storage"  # v1.3 storage beta xsd
# Servers in the field use each of these for the same elements: read all of them.
CSIPAUS_NAMESPACES: Final = (CSIPAUS_NS, CSIPAUS_NS_V13, CSIPAUS_NS_V13_STORAGE)
_XSI_NS: Final = "http://www.w3.org/2001/XMLSchema-instance"

DEFAULT_MAX_BYTES: Final = 1 << 20
# libxml2 (without XML_PARSE_HUGE) refuses documents nested deeper than 256 while parsing, at no
# extra cost; that is the default. A lower limit adds an XPath probe of the built tree (~7% of a
# parse).
LIBXML2_MAX_DEPTH: Final = 256
DEFAULT_MAX_DEPTH: Final = LIBXML2_MAX_DEPTH

S = TypeVar("S", bound=msgspec.Struct)


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """Hardening limits: document size in bytes and element nesting depth (document element = 1).

    ``max_depth`` may be lowered, never raised above libxml2's own cap of 256.
    """

    max_bytes: int = DEFAULT_MAX_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH

    def __post_init__(self) -> None:
        if not 1 <= self.max_depth <= LIBXML2_MAX_DEPTH:
            raise ValueError(f"max_depth must be within 1..{LIBXML2_MAX_DEPTH}")
        if self.max_bytes < 1:
            raise ValueError("max_bytes must be positive")


_DEFAULT_LIMITS: Final = Limits()

#: Distinct element and attribute names outside the schemas' vocabulary that the decoder admits over
#: the life of the process (issue 15: bounded resources). libxml2 interns every name it parses in a
#: dictionary per thread that lxml keeps for the thread's life (a fresh parser shares it), so a
#: server inventing new names in every document grew memory by ~1.9 MB a response without bound.
#: 4,096 names of up to a few dozen bytes bound that dictionary to well under a megabyte.
MAX_UNKNOWN_NAMES: Final = 4096

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


# -------------------------------------------------------------------------------------------------
# Decoding


def _reject(path: str, reason: str) -> DocumentRejected:
    return DocumentRejected(path, reason)


class NameBudget:
    """The unknown names admitted so far, at most ``cap`` (see :data:`MAX_UNKNOWN_NAMES`)."""

    __slots__ = ("_accepted", "admitted", "cap")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        #: Unknown name parts (local names, prefixes) admitted: what the budget counts.
        self.admitted: set[bytes] = set()
        # Whole names already accepted (known or admitted): the usual document only has these,
        # and one set comparison settles it. A cache, so bounded (cleared when large).
        self._accepted: set[bytes] = set()

    def admit(self, data: bytes) -> None:
        """Refuse ``data`` if it brings names never seen before beyond the cap (a server fault:
        the schemas' own names, and unknown ones already admitted, are always welcome)."""
        names = _names(data)
        if names <= self._accepted:
            return
        unknown = {
            part
            for name in names - self._accepted
            for part in name.split(b":")
            if part not in _KNOWN_NAMES
        } - self.admitted
        if len(self.admitted) + len(unknown) > self.cap:
            raise _reject(
                "/",
                f"{len(unknown)} element or attribute names never seen before, beyond the "
                f"{self.cap} unknown names the decoder admits (the parser's name dictionary is "
                "bounded)",
            )
        self.admitted |= unknown
        if len(self._accepted) > 4 * self.cap:
            self._accepted.clear()
        self._accepted |= names


#: Start-tag names (the ``<`` anchors the scan: ~5 % of a decode).
_ELEMENT_NAME: Final = re.compile(rb"<([A-Za-z_][^\s/>]*)")


def _names(data: bytes) -> set[bytes]:
    """Every element name and attribute name in ``data``, by bytes, before any parse. Attribute
    names are the token before each ``=`` (cheaper than a regex: documents have few); a ``=`` in
    text gives a token no parser interns, counted all the same (a bound errs on the safe side)."""
    names = set(_ELEMENT_NAME.findall(data))
    if b"=" in data:
        for chunk in data.split(b"=")[:-1]:
            token = chunk.rsplit(None, 1)
            if token:
                names.add(token[-1])
    return names


def _known_names() -> frozenset[bytes]:
    names = {b"xmlns", b"xsi", b"type", b"nil", b"schemaLocation", b"xml", b"lang", b"space"}
    names |= {n.encode() for n in ROOTS}
    names |= {t.encode() for t in TYPES}
    for _, members in TYPES.values():
        names |= {m[0].encode() for m in members}
    return frozenset(names)


_KNOWN_NAMES: Final = _known_names()
_NAMES = NameBudget(MAX_UNKNOWN_NAMES)


def _hardened_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,  # keeps libxml2's own caps on depth and text node size
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )


class _PerThread(threading.local):
    # lxml parsers must not be shared between threads; an embedding application may decode from a
    # worker thread while the gateway's loop decodes on its own.
    def __init__(self) -> None:
        self.parser = _hardened_parser()


_LOCAL: Final = _PerThread()


@functools.cache
def _depth_probe(max_depth: int) -> etree.XPath:
    # True when some element sits deeper than max_depth; evaluated in C over the tree.
    return etree.XPath("boolean(" + "/*" * (max_depth + 1) + ")")


def document_element(data: bytes, limits: Limits = _DEFAULT_LIMITS) -> etree._Element:
    """Parse ``data`` through the hardened parser and return its document element.

    Refuses (typed, before any tree is built where possible): bodies over ``limits.max_bytes``, any
    ``<!DOCTYPE`` (so no internal or external entities exist), malformed XML, nesting deeper than
    ``limits.max_depth``.
    """
    if type(data) is not bytes:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise _reject("/", f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
    size = len(data)
    if size > limits.max_bytes:
        raise _reject("/", f"document of {size} bytes exceeds the {limits.max_bytes}-byte limit")
    # "!" first: a one-byte scan is ~30x cheaper than the multi-byte one it usually lets us skip.
    if b"!" in data and b"<!DOCTYPE" in data:
        raise _reject("/", "a DTD (<!DOCTYPE>) is not accepted")
    _NAMES.admit(data)
    try:
        root = etree.fromstring(data, _LOCAL.parser)
    except etree.XMLSyntaxError as exc:
        if "Excessive depth" in str(exc.msg):
            raise _reject("/", f"elements nested deeper than {LIBXML2_MAX_DEPTH}") from None
        raise MalformedXml(f"/(line {exc.lineno})", str(exc.msg)) from None
    except (ValueError, TypeError) as exc:  # e.g. an encoding declaration lxml refuses
        raise MalformedXml("/", str(exc)) from None
    if root is None:
        raise MalformedXml("/", "empty document")
    docinfo = root.getroottree().docinfo
    # A DTD the byte scan could not see (UTF-16 and other non-ASCII-compatible encodings).
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise _reject("/", "a DTD (<!DOCTYPE>) is not accepted")
    if limits.max_depth < LIBXML2_MAX_DEPTH and _depth_probe(limits.max_depth)(root):
        raise _reject("/", f"elements nested deeper than the depth limit {limits.max_depth}")
    return root


def _is_text(type_name: str) -> bool:
    return type_name in ("xs:string", "xs:anyURI") or type_name.startswith("String")


def _q(ns: str, name: str) -> str:
    if ns == "sep":
        return f"s:{name}"
    return "|".join(f"c{i}:{name}" for i in range(len(CSIPAUS_NAMESPACES)))


# JSON-escapes the context node's text (backslash first, then quote, tab, newline, CR); text with
# none of them is copied as is.
_JSON_ESCAPED: Final = (
    "str:replace(str:replace(str:replace(str:replace(str:replace(string(.), "
    "'\\', '\\\\'), '&quot;', '\\&quot;'), '&#9;', '\\t'), '&#10;', '\\n'), '&#13;', '\\r')"
)
_STR_TEMPLATE: Final = (
    '<xsl:template name="str">"<xsl:choose>'
    "<xsl:when test=\"translate(., '&quot;\\&#9;&#10;&#13;', '') = string(.)\">"
    '<xsl:value-of select="."/></xsl:when>'
    f'<xsl:otherwise><xsl:value-of select="{_JSON_ESCAPED}"/></xsl:otherwise>'
    '</xsl:choose>"</xsl:template>'
)

# Numbers, booleans and hex travel as JSON strings (msgspec converts them, lax mode): a quote or
# backslash in the text is turned into '#', which no number contains, so it fails typing with a
# path.
_SCALAR: Final = "\"<xsl:value-of select=\"translate(normalize-space(.), '&quot;\\', '##')\"/>\""


_PLAIN: Final = '"<xsl:value-of select="."/>"'


def _value_xslt(m: MemberRow, safe: bool) -> str:
    if m[4]:
        if m[3] == "Resource" and m[0] == "Resource":
            return '<xsl:call-template name="resource-any"/>'
        return f'<xsl:call-template name="T.{m[3]}"/>'
    if not safe:
        return _PLAIN
    if _is_text(m[3]):
        return '<xsl:call-template name="str"/>'
    return _SCALAR


def _type_xslt(type_name: str, safe: bool) -> str:
    members = full_members(type_name)
    elements = [m for m in members if not m[2]]
    if not safe and elements and all(not m[4] and m[5] == 1 and m[6] == 1 for m in elements):
        return _direct_type_xslt(type_name)
    parts = [f'<xsl:template name="T.{type_name}">{{"_":0']
    for m in members:
        if m[2]:
            parts.append(
                f'<xsl:for-each select="@{m[0]}">,"{m[0]}":{_value_xslt(m, safe)}</xsl:for-each>'
            )
    # No select: libxslt then walks the children directly instead of evaluating an XPath node-set
    # (measured ~4% of the transform); text children (blanks between elements) match the empty
    # text() template below.
    parts.append(f'<xsl:apply-templates mode="{type_name}"/>')
    for m in members:
        if not m[2] and m[6] != 1:
            q = _q(m[1], m[0])
            parts.append(
                f'<xsl:if test="{q}">,"{m[0]}":[<xsl:for-each select="{q}">'
                f'<xsl:if test="position()!=1">,</xsl:if>{_value_xslt(m, safe)}'
                "</xsl:for-each>]</xsl:if>"
            )
    parts.append("}</xsl:template>")
    # Unknown children (newer editions, other profiles) produce nothing.
    parts.append(f'<xsl:template match="*" mode="{type_name}"/>')
    parts.append(f'<xsl:template match="text()" mode="{type_name}"/>')
    for m in members:
        if m[2]:
            continue
        q = _q(m[1], m[0])
        if m[6] != 1:
            parts.append(f'<xsl:template match="{q}" mode="{type_name}"/>')
        else:
            parts.append(
                f'<xsl:template match="{q}" mode="{type_name}">,"{m[0]}":{_value_xslt(m, safe)}'
                "</xsl:template>"
            )
    return "".join(parts)


def _direct_type_xslt(type_name: str) -> str:
    """Fast variant for types made only of required single leaves (ActivePower, DateTimeInterval):
    each value is read by a direct child lookup instead of dispatching every child (measured ~5%
    of the transform). The last occurrence wins, as in the dispatching variant (msgspec keeps the
    last of duplicate keys); a missing leaf yields "" and fails typing, so the safe variant then
    decides and reports it as missing."""
    parts = [f'<xsl:template name="T.{type_name}">{{"_":0']
    for m in full_members(type_name):
        if m[2]:
            parts.append(
                f'<xsl:for-each select="@{m[0]}">,"{m[0]}":{_value_xslt(m, False)}</xsl:for-each>'
            )
        else:
            sel = f"({_q(m[1], m[0])})[last()]"
            parts.append(f',"{m[0]}":"<xsl:value-of select="{sel}"/>"')
    parts.append("}</xsl:template>")
    return "".join(parts)


def _resource_any_xslt() -> str:
    # Notification.Resource carries any resource, named by xsi:type; the JSON gets the fields of
    # that type plus "_type" so the decoder can re-type it.
    whens = "".join(
        f'<xsl:when test="$t=\'{ty}\'">{{"_type":"{ty}","_body":'
        f'<xsl:call-template name="T.{ty}"/>}}</xsl:when>'
        for _e, (_ns, ty) in ROOTS.items()
    )
    return (
        '<xsl:template name="resource-any"><xsl:variable name="raw" select="string(@xsi:type)"/>'
        '<xsl:variable name="t"><xsl:choose><xsl:when test="contains($raw, \':\')">'
        "<xsl:value-of select=\"substring-after($raw, ':')\"/></xsl:when>"
        '<xsl:otherwise><xsl:value-of select="$raw"/></xsl:otherwise></xsl:choose></xsl:variable>'
        f'<xsl:choose>{whens}<xsl:otherwise>{{"_type":"Resource","_body":'
        '<xsl:call-template name="T.Resource"/>}</xsl:otherwise></xsl:choose></xsl:template>'
    )


@functools.cache
def _stylesheet(type_name: str, safe: bool) -> etree.XSLT:
    """The JSON-producing stylesheet for documents of ``type_name``.

    The *safe* variant escapes every string for JSON and normalises whitespace around scalars. The
    fast variant copies text as is and is only used when :func:`_plain_text_is_safe` proved no text
    or attribute value holds a quote or backslash (so nothing can break out of a JSON string); any
    other oddity (a raw newline, blanks around a number) makes msgspec fail, and the document is
    then decoded again with the safe variant, which gives the final answer.
    """
    ns_decls = " ".join(f'xmlns:c{i}="{uri}"' for i, uri in enumerate(CSIPAUS_NAMESPACES))
    # Only the safe variant uses EXSLT (str:replace); the fast one stays plain XSLT 1.0, which also
    # spares the per-transform set-up of the extension module.
    exslt = 'xmlns:str="http://exslt.org/strings" extension-element-prefixes="str"' if safe else ""
    body = [
        '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform" '
        f'xmlns:s="{SEP_NS}" {ns_decls} xmlns:xsi="{_XSI_NS}" {exslt}>'
        '<xsl:output method="text" encoding="UTF-8"/>'
        '<xsl:template match="/"><xsl:for-each select="*">'
        f'<xsl:call-template name="T.{type_name}"/></xsl:for-each></xsl:template>',
        _STR_TEMPLATE if safe else "",
    ]
    reachable = _reachable(type_name)
    body.extend(_type_xslt(t, safe) for t in reachable)
    if "Notification" in reachable:
        body.append(_resource_any_xslt())
    body.append("</xsl:stylesheet>")
    return etree.XSLT(
        etree.fromstring("".join(body).encode()),
        access_control=etree.XSLTAccessControl.DENY_ALL,
    )


# hexBinary class -> exclusive upper bound of its values
_HEX_LIMITS: Final[dict[type, int]] = {cls: 1 << (8 * cls.BYTES) for cls in HEX_TYPES.values()}
_make_int: Final = int.__new__


def _parse_hex(type_: type, text: str) -> object:
    if not (text.isascii() and text.isalnum()) or "x" in text or "X" in text:
        raise ValueError(f"not hexBinary: {text[:40]!r}")
    value = int(text, 16)
    if value >= _HEX_LIMITS[type_]:
        raise ValueError(f"{text[:40]!r} is wider than {type_.__name__}")
    return _make_int(type_, value)


# (type, text) -> value. The same flags and mRIDs come back on every poll; a plain dict is the
# cheapest lookup from msgspec's hook. Bounded: emptied when full, so hostile input cannot grow it.
_HEX_CACHE: Final[dict[tuple[type, str], object]] = {}
_HEX_CACHE_MAX: Final = 4096


def _hex_hook(type_: type, obj: object) -> object:
    """hexBinary from its text, compared numerically (servers drop leading zeros).

    Digits only: ``int(text, 16)`` alone would also take ``0x``, ``_``, signs and blanks.
    """
    if type(obj) is not str or type_ not in _HEX_LIMITS:
        raise NotImplementedError(f"no decoder for {type_!r}")
    key = (type_, obj)
    value = _HEX_CACHE.get(key)
    if value is None:
        value = _parse_hex(type_, obj)
        if len(_HEX_CACHE) >= _HEX_CACHE_MAX:
            _HEX_CACHE.clear()
        _HEX_CACHE[key] = value
    return value


@functools.cache
def _json_decoder(type_name: str) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(_CLASSES[type_name], strict=False, dec_hook=_hex_hook)


class _AnyResource(msgspec.Struct):
    """The re-typing envelope of ``Notification.Resource`` (see :func:`_resource_any_xslt`)."""

    _type: str = msgspec.field(name="_type", default="Resource")
    _body: msgspec.Raw = msgspec.field(name="_body", default=msgspec.Raw(b"{}"))


class _NotificationResource(msgspec.Struct):
    Resource: _AnyResource | None = None


_NOTIFICATION_RESOURCE: Final = msgspec.json.Decoder(_NotificationResource)


def _element_path(root_name: str, type_name: str, json_path: str) -> str:
    """msgspec's ``$.a[2].b`` as the element path ``/Root/a[3]/b`` (XPath positions are 1-based;
    attributes as ``@name``)."""
    out = ["/", root_name]
    current: str | None = type_name
    i = 1
    n = len(json_path)
    while i < n:
        ch = json_path[i]
        if ch == ".":
            j = i + 1
            while j < n and json_path[j] not in ".[":
                j += 1
            name = json_path[i + 1 : j]
            i = j
            if name in ("_body", "_type"):  # Notification.Resource's re-typing envelope
                continue
            member = None
            if current is not None and current in TYPES:
                member = next((m for m in full_members(current) if m[0] == name), None)
            out.append(("/@" if member is not None and member[2] else "/") + name)
            current = member[3] if member is not None and member[4] else None
        elif ch == "[":
            j = json_path.index("]", i)
            out.append(f"[{int(json_path[i + 1 : j]) + 1}]")
            i = j + 1
        else:
            i += 1
    return "".join(out)


def _violation(root_name: str, type_name: str, exc: msgspec.ValidationError) -> SchemaViolation:
    text = str(exc)
    reason, sep, where = text.rpartition(" - at `")
    if not sep:
        return SchemaViolation("/" + root_name, text)
    return SchemaViolation(_element_path(root_name, type_name, where.rstrip("`")), reason)


_ASCII_COMPATIBLE: Final = frozenset({"UTF-8", "US-ASCII", "ASCII"})


def _plain_text_is_safe(data: bytes, root: etree._Element) -> bool:
    """True when no text node or attribute value can contain ``"`` or ``\\``.

    Text nodes are checked after parsing (references resolved, CDATA included). Attribute values can
    only get a quote or backslash through a literal backslash, a character or ``&quot;`` reference,
    or apostrophe-delimited values: all visible in the raw bytes when the encoding is
    ASCII-compatible.
    """
    encoding = (root.getroottree().docinfo.encoding or "UTF-8").upper()
    if encoding not in _ASCII_COMPATIBLE:
        return False
    if b"\\" in data or b"'" in data:  # one-byte scans (memchr) first: they are nearly free
        return False
    if b"&" in data and (b"&#" in data or b"&quot;" in data):
        return False
    text = etree.tostring(root, method="text", encoding=str)
    return '"' not in text and "\\" not in text


def _decode_root(
    root: etree._Element, type_name: str, root_name: str, data: bytes
) -> msgspec.Struct:
    if _plain_text_is_safe(data, root):
        json_bytes = bytes(_stylesheet(type_name, False)(root))  # type: ignore[call-overload]
        try:
            return _from_json(type_name, json_bytes)
        except (msgspec.ValidationError, msgspec.DecodeError):
            pass  # decide with the safe variant, which also produces the reportable error
    json_bytes = bytes(_stylesheet(type_name, True)(root))  # type: ignore[call-overload]
    try:
        return _from_json(type_name, json_bytes)
    except _InResource as exc:
        raise _violation(f"{root_name}/Resource", exc.type_name, exc.error) from None
    except msgspec.ValidationError as exc:
        raise _violation(root_name, type_name, exc) from None
    except msgspec.DecodeError as exc:  # cannot happen for well-formed input; kept typed regardless
        raise SchemaViolation("/" + root_name, f"untranslatable content ({exc})") from None


class _InResource(msgspec.ValidationError):
    """A ValidationError inside Notification.Resource, with the type it was decoded as."""

    def __init__(self, type_name: str, error: msgspec.ValidationError) -> None:
        super().__init__(str(error))
        self.type_name = type_name
        self.error = error


def _from_json(type_name: str, json_bytes: bytes) -> msgspec.Struct:
    obj: msgspec.Struct = _json_decoder(type_name).decode(json_bytes)
    if type_name != "Notification" or getattr(obj, "Resource", None) is None:
        return obj
    # Notification.Resource: decode its body again as the resource its xsi:type names.
    wrapper = _NOTIFICATION_RESOURCE.decode(json_bytes).Resource
    if wrapper is None:
        return obj
    inner_type = wrapper._type if wrapper._type in _CLASSES else "Resource"
    try:
        inner = _json_decoder(inner_type).decode(wrapper._body)
    except msgspec.ValidationError as exc:
        raise _InResource(inner_type, exc) from None
    return msgspec.structs.replace(obj, Resource=inner)


def decode(data: bytes, cls: type[S], limits: Limits = _DEFAULT_LIMITS) -> S:
    """Decode one 2030.5 document whose document element must be resource ``cls``.

    Raises a :class:`~transport.sep2.errors.Sep2DecodeError` subclass naming the element path.
    """
    root = document_element(data, limits)
    type_name = _TYPE_NAME.get(cls)
    if type_name is None or cls not in _ROOT_OF:
        raise TypeError(f"{cls.__name__} is not a 2030.5 document type of this codec")
    elem, ns = _ROOT_OF[cls]
    got = root.tag if isinstance(root.tag, str) else "?"
    if _ROOT_BY_CLARK.get(got) != type_name or not got.endswith("}" + elem):
        raise UnexpectedDocument("/" + _local(got), f"expected a {elem} document")
    result = _decode_root(root, type_name, elem, bytes(data))
    assert isinstance(result, cls)
    return result


def decode_any(data: bytes, limits: Limits = _DEFAULT_LIMITS) -> msgspec.Struct:
    """Decode whichever known resource the document element names (Notification bodies, probes)."""
    root = document_element(data, limits)
    got = root.tag if isinstance(root.tag, str) else "?"
    type_name = _ROOT_BY_CLARK.get(got)
    if type_name is None:
        raise UnexpectedDocument("/" + _local(got), "not a 2030.5 resource this client knows")
    return _decode_root(root, type_name, _local(got), bytes(data))


def _local(clark: str) -> str:
    return clark.rpartition("}")[2]


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


# type name -> its generated serialiser. Filled on first use (:func:`_encoder`): generating all of
# them at import cost ~50 ms and ~1 MB for types a gateway never writes (issue #7 scope 11).
_ENCODERS: dict[str, _Encoder] = {}
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

    def __init__(self) -> None:
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
            self.lines.append(f"{pad}    _enc_any_resource({v}, a, {tag!r})")
            return
        if m[4]:
            self.struct(m[3], v, tag, indent + 1)
        else:
            self.text(f"<{tag}>")
            self.leaf(m, v)
            self.text(f"</{tag}>")
        self.flush(indent + 1)


def _compile_encoder(type_name: str) -> _Encoder:
    """Generate the serialiser of one schema type: straight-line code in schema order."""
    gen = _Gen()
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


def _enc_any_resource(value: msgspec.Struct, a: _Append, tag: str) -> None:
    type_name = _TYPE_NAME.get(type(value))
    if type_name is None:
        raise TypeError(f"{type(value).__name__} is not a 2030.5 resource")
    extra = "" if type_name == "Resource" else f' xmlns:xsi="{_XSI_NS}" xsi:type="{type_name}"'
    encoder = _ENCODERS.get(type_name)
    if encoder is None:
        encoder = _encoder(type_name)
    encoder(value, a, tag, extra)


def _encoder(type_name: str) -> _Encoder:
    """The serialiser of ``type_name``, generated once on first use and then cached.

    Callers look in ``_ENCODERS`` first (a dict hit is the hot path); the lock only guards the
    generation, so two threads encoding a new type at once generate it once.
    """
    with _ENCODERS_LOCK:
        encoder = _ENCODERS.get(type_name)
        if encoder is None:
            encoder = _ENCODERS[type_name] = _compile_encoder(type_name)
        return encoder


def encode(obj: msgspec.Struct, *, csipaus_ns: str = CSIPAUS_NS) -> bytes:
    """Serialise a resource as its 2030.5 document (UTF-8, no XML declaration).

    ``csipaus_ns`` is the namespace the profile uses for CSIP-AUS elements (PROTOCOL.md §1).
    Raises :class:`~transport.sep2.errors.Sep2EncodeError` for a value its schema type cannot hold.
    """
    root = _ROOT_OF.get(type(obj))
    if root is None:
        raise TypeError(f"{type(obj).__name__} is not a 2030.5 document type of this codec")
    elem, ns = root
    type_name = _TYPE_NAME[type(obj)]
    extra = f' xmlns="{SEP_NS}"'
    if ns == "csipaus" or _uses_csipaus_cached(type_name):
        extra += f' xmlns:csipaus="{csipaus_ns}"'
    parts: list[str] = []
    tag = elem if ns == "sep" else "csipaus:" + elem
    encoder = _ENCODERS.get(type_name)
    if encoder is None:
        encoder = _encoder(type_name)
    try:
        encoder(obj, parts.append, tag, extra)
    except (ValueError, TypeError, AttributeError) as exc:
        raise Sep2EncodeError("/" + elem, str(exc)) from None
    return "".join(parts).encode()


_uses_csipaus_cached = functools.cache(_uses_csipaus)
