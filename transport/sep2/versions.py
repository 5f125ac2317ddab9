"""The CSIP-AUS version in force: each version's namespace and the extension elements it defines,
how the gateway learns the server's version, and the v1.3 ``.well-known`` service discovery
document (PROTOCOL.md §5; issue 18 points 2 and 3). Sans-IO and pure.

One place says which version is in force: a :class:`CsipAusVersion`. The link writes every
CSIP-AUS element in its :attr:`~CsipAusVersion.namespace` (``encode(..., csipaus_ns=...)``), and
only the elements that version defines (:meth:`~CsipAusVersion.defines`).

How the version is learned, newest evidence first:

``well-known``
    CSIP-AUS v1.3 servers publish ``GET /.well-known/csipaus`` (JSON,
    ``{"supportedSchemaVersions": {"<namespace>": {"dcap": ["/dcap"]}}}``: the shape the CSIP-AUS
    client test harness serves and checks, synergy-au/cactus-runner; decision 0020g). The client
    takes the newest version both sides support and follows that version's DeviceCapability link.
``namespaces``
    A server without the well-known resource (v1.2 servers answer 404 or 410) declares its
    version by the CSIP-AUS namespace of what it sends: the first known namespace seen settles it.
``configured``
    Nothing said yet: the profile's first allowed version (v1.2 for CSIP-AUS) until a document
    says otherwise.

A CSIP-AUS namespace the codec does not know (``https://csipaus.org/ns/v9``) is a server fault:
the decoder reads only the known namespaces, so its elements, operating-envelope limits
included, are not read; :func:`foreign_csipaus` says which were dropped, for the link to log.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Mapping
from typing import Final

import msgspec

from transport.sep2.vocabulary import (
    _DEFINED,
    CSIPAUS_NS,
    CSIPAUS_NS_V13,
    CSIPAUS_NS_V13_STORAGE,
)

__all__ = [
    "CSIPAUS_VERSIONS",
    "V1_2",
    "V1_3",
    "V1_3_BETA_STORAGE",
    "WELL_KNOWN_MAX_BYTES",
    "WELL_KNOWN_PATH",
    "CsipAusVersion",
    "ForeignCsipAus",
    "Learned",
    "MalformedWellKnown",
    "WellKnown",
    "choose_version",
    "csipaus_namespaces",
    "foreign_csipaus",
    "parse_well_known",
    "version_by_name",
    "version_of_namespace",
]

#: The v1.3 service discovery resource (RFC 8615 well-known URI, CSIP-AUS v1.3).
WELL_KNOWN_PATH: Final = "/.well-known/csipaus"
#: The largest well-known document read (a list of a few versions and paths).
WELL_KNOWN_MAX_BYTES: Final = 16 * 1024


class CsipAusVersion(msgspec.Struct, frozen=True, kw_only=True):
    """One CSIP-AUS version: its short ``name`` (as configured and shown), its XML
    ``namespace``, its ``rank`` (newer is higher) and the extension elements it defines."""

    name: str
    namespace: str
    rank: int
    elements: frozenset[str]

    def defines(self, element: str) -> bool:
        """PROTOCOL.md §5: whether this version's schema defines extension element ``element``."""
        return element in self.elements

    def __str__(self) -> str:
        return self.name


def _version(name: str, namespace: str, rank: int) -> CsipAusVersion:
    return CsipAusVersion(
        name=name, namespace=namespace, rank=rank, elements=frozenset(_DEFINED[namespace])
    )


V1_2: Final = _version("v1.2", CSIPAUS_NS, 12)
V1_3_BETA_STORAGE: Final = _version("v1.3-beta/storage", CSIPAUS_NS_V13_STORAGE, 13)
V1_3: Final = _version("v1.3", CSIPAUS_NS_V13, 14)
#: Every version the codec speaks, oldest first.
CSIPAUS_VERSIONS: Final = (V1_2, V1_3_BETA_STORAGE, V1_3)
_BY_NAMESPACE: Final = {v.namespace: v for v in CSIPAUS_VERSIONS}
_BY_NAME: Final = {v.name: v for v in CSIPAUS_VERSIONS}


def version_of_namespace(namespace: str) -> CsipAusVersion | None:
    """The version whose namespace is ``namespace`` (``None``: not one the codec knows)."""
    return _BY_NAMESPACE.get(namespace)


def version_by_name(name: str) -> CsipAusVersion:
    """The version called ``name`` (``v1.2``, ``v1.3-beta/storage``, ``v1.3``); ``KeyError``
    naming the known ones otherwise."""
    version = _BY_NAME.get(name)
    if version is None:
        raise KeyError(f"{name!r} is not a CSIP-AUS version (one of {', '.join(_BY_NAME)})")
    return version


class Learned(enum.StrEnum):
    """How the version in force was learned."""

    WELL_KNOWN = "well-known"
    NAMESPACES = "namespaces"
    CONFIGURED = "configured"


# -------------------------------------------------------------------------------------------------
# Namespaces in what the server sends

#: A namespace declaration: prefix (empty: the default namespace) and URI. Those whose URI has
#: "csipaus" in it (any case) are CSIP-AUS namespaces. The literal ``xmlns`` lets the scan skip
#: to each declaration: ~10 µs on a 220-byte Time, ~36 µs on an 8 KB DERControlList of 20
#: controls, whose decode takes ~1.9 ms (2 % of it; shared 2-core machine under load).
_DECLARATION: Final = re.compile(rb"""xmlns(?::([A-Za-z_][\w.-]*))?\s*=\s*(["'])(.*?)\2""")


def csipaus_namespaces(body: bytes) -> dict[str, str]:
    """Every CSIP-AUS namespace ``body`` declares, with its prefix (``""``: the default one)."""
    found: dict[str, str] = {}
    for match in _DECLARATION.finditer(body):
        if b"csipaus" in match[3].lower():
            uri = match[3].decode("utf-8", "replace")
            found.setdefault(uri, (match[1] or b"").decode())
    return found


class ForeignCsipAus(msgspec.Struct, frozen=True, kw_only=True):
    """A CSIP-AUS namespace in a server's document that the codec does not know, and the elements
    in it that were therefore not read."""

    namespace: str
    dropped: tuple[str, ...]


def foreign_csipaus(body: bytes) -> list[ForeignCsipAus]:
    """The unknown CSIP-AUS namespaces ``body`` declares and the elements it writes in each
    (PROTOCOL.md §5: elements in a namespace the codec does not know are not read; the caller
    reports them as a server fault, never drops them silently)."""
    out: list[ForeignCsipAus] = []
    for uri, prefix in csipaus_namespaces(body).items():
        if uri in _BY_NAMESPACE:
            continue
        if prefix:
            names = re.findall(rb"<" + re.escape(prefix.encode()) + rb":([A-Za-z_][\w.-]*)", body)
        else:
            names = []
        out.append(
            ForeignCsipAus(namespace=uri, dropped=tuple(dict.fromkeys(n.decode() for n in names)))
        )
    return out


# -------------------------------------------------------------------------------------------------
# The v1.3 well-known document


class MalformedWellKnown(ValueError):
    """The well-known answer is not the service discovery document; the text says what is wrong."""


class WellKnown(msgspec.Struct, frozen=True, kw_only=True):
    """A parsed ``/.well-known/csipaus``: each offered namespace with its DeviceCapability paths,
    in the server's order."""

    offered: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def namespaces(self) -> tuple[str, ...]:
        return tuple(ns for ns, _paths in self.offered)


def parse_well_known(body: bytes) -> WellKnown:
    """Parse the v1.3 service discovery document: a JSON object whose ``supportedSchemaVersions``
    maps each CSIP-AUS namespace to ``{"dcap": [paths]}`` (at least one version).

    Raises :class:`MalformedWellKnown` naming what is wrong (not JSON, a missing or mistyped
    member, a path that is not absolute).
    """
    if len(body) > WELL_KNOWN_MAX_BYTES:
        raise MalformedWellKnown(f"{len(body)} bytes, over the {WELL_KNOWN_MAX_BYTES}-byte limit")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedWellKnown(f"not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise MalformedWellKnown(f"a JSON {type(document).__name__}, not an object")
    versions = document.get("supportedSchemaVersions")
    if not isinstance(versions, dict) or not versions:
        raise MalformedWellKnown("no supportedSchemaVersions object with at least one version")
    offered: list[tuple[str, tuple[str, ...]]] = []
    for namespace, entry in versions.items():
        paths = entry.get("dcap") if isinstance(entry, dict) else None
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise MalformedWellKnown(f"{namespace}: no 'dcap' list of paths")
        bad = [p for p in paths if not p.startswith("/")]
        if bad:
            raise MalformedWellKnown(f"{namespace}: dcap path {bad[0]!r} is not absolute")
        offered.append((namespace, tuple(paths)))
    return WellKnown(offered=tuple(offered))


def choose_version(
    offered: Mapping[str, tuple[str, ...]] | WellKnown, allowed: Iterable[CsipAusVersion]
) -> tuple[CsipAusVersion, tuple[str, ...]] | None:
    """Issue 18 point 3: the newest version both the server offers (with a DeviceCapability path)
    and the profile allows, with its paths; ``None`` when they share none."""
    table = dict(offered.offered) if isinstance(offered, WellKnown) else dict(offered)
    mutual = [v for v in allowed if table.get(v.namespace)]
    if not mutual:
        return None
    best = max(mutual, key=lambda v: v.rank)
    return best, table[best.namespace]
