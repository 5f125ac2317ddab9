"""Decoding 2030.5 documents: hardened bytes -> frozen structs (sans-IO, pure).

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
"""

from __future__ import annotations

import functools
import re
import threading
from typing import Any, Final, TypeVar

import msgspec
from lxml import etree

from transport.sep2.errors import (
    DocumentRejected,
    MalformedXml,
    SchemaViolation,
    UnexpectedDocument,
)
from transport.sep2.hexbinary import HEX_TYPES
from transport.sep2.schema_order import ROOTS, TYPES, MemberRow
from transport.sep2.vocabulary import (
    _CLASSES,
    _ROOT_BY_CLARK,
    _ROOT_OF,
    _TYPE_NAME,
    _XSI_NS,
    CSIPAUS_NAMESPACES,
    SEP_NS,
    _is_text,
    _reachable,
    full_members,
)

S = TypeVar("S", bound=msgspec.Struct)

DEFAULT_MAX_BYTES: Final = 1 << 20
# libxml2 (without XML_PARSE_HUGE) refuses documents nested deeper than 256 while parsing, at no
# extra cost; that is the default. A lower limit adds an XPath probe of the built tree (~7% of a
# parse).
LIBXML2_MAX_DEPTH: Final = 256
DEFAULT_MAX_DEPTH: Final = LIBXML2_MAX_DEPTH


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
