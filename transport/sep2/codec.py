"""The 2030.5 XML codec: hardened bytes -> struct, and struct -> bytes in schema order.

The one import path for callers; the work is split by direction: :mod:`transport.sep2.decoding`
(reading), :mod:`transport.sep2.encoding` (writing), both generated from
:mod:`transport.sep2.vocabulary` (namespaces, members in schema order, CSIP-AUS elements).

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
    nothing invalid is ever sent; reading stays tolerant of over-long strings. Each CSIP-AUS
    version has its own namespace and elements (PROTOCOL.md §5): an extension element the
    profile's namespace does not define (a v1.3 storage ``vppModesSupported`` under v1.2's
    ``https://csipaus.org/ns``) is refused, and one it makes mandatory (``doeModesSupported``) must
    be there. The tables come from each namespace's published schema (``CSIPAUS_ELEMENTS``); the
    serialisers are generated per (type, namespace).
"""

from transport.sep2.decoding import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_DEPTH,
    LIBXML2_MAX_DEPTH,
    MAX_UNKNOWN_NAMES,
    Limits,
    NameBudget,
    decode,
    decode_any,
    document_element,
)
from transport.sep2.encoding import encode
from transport.sep2.vocabulary import (
    CSIPAUS_NAMESPACES,
    CSIPAUS_NS,
    CSIPAUS_NS_V13,
    CSIPAUS_NS_V13_STORAGE,
    SEP_NS,
    csipaus_defines,
    full_members,
)

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
    "csipaus_defines",
    "decode",
    "decode_any",
    "document_element",
    "encode",
    "full_members",
]
