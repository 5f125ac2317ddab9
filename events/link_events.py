"""What the link to the utility server recorded about the server's failures (issue 15).

Stream ``link``. Each record says which resource failed, why, and how long the link now holds
that resource back: the bounded retry of every failure path, and what an operator reads to see
why the gateway is not talking to a resource.
"""

from __future__ import annotations

from events.base import Event

__all__ = [
    "LINK_EVENT_TYPES",
    "LINK_STREAM",
    "CsipAusFault",
    "CsipAusVersionSettled",
    "LinkBackedOff",
    "ListCapped",
]

LINK_STREAM = "link"


class LinkBackedOff(Event, tag="link.backoff.v1", frozen=True, kw_only=True):
    """``method path`` failed (a link error: connect, TLS, protocol, truncated or oversized
    answer; an HTTP 5xx or 429; a 2xx body that is not the resource): the ``failures``-th in a
    row for that resource, so it is not asked again for ``hold_s`` (the registration walk's
    ``BackoffPolicy`` delay for that count, capped, plus ``jitter_s`` drawn from the seeded RNG),
    until ``until_s`` on the server clock. ``http_status`` is ``None`` for a link error (which
    also counts towards the whole link's hold: ``failures`` is then the larger count of the two);
    ``error`` names its type."""

    method: str
    path: str
    error: str
    reason: str
    http_status: int | None = None
    #: Bytes of the answer's body, when there was an HTTP answer.
    body_bytes: int | None = None
    failures: int
    hold_s: float
    jitter_s: float = 0.0
    until_s: float
    at_s: float


class ListCapped(Event, tag="link.list_capped.v1", frozen=True, kw_only=True):
    """A paged list the server sent was cut at one of the link's caps (a server fault): ``reason``
    says which (items beyond the ``l`` asked for, a page repeating the previous one, ``all``
    beyond the items a list may hold); ``kept`` items were taken."""

    path: str
    reason: str
    kept: int
    at_s: float


class CsipAusVersionSettled(Event, tag="link.csipaus_version.v1", frozen=True, kw_only=True):
    """The CSIP-AUS version the gateway speaks from now on (issue 18 point 2): every CSIP-AUS
    element it writes is in ``namespace`` (version ``version``), only the elements that version
    defines. ``learned`` says how: ``well-known`` (the v1.3 service discovery document offered it
    and it is the newest the profile allows; ``dcap_path`` is the DeviceCapability it names),
    ``namespaces`` (the server's documents are in that namespace; ``path`` is the first that
    said so) or ``configured`` (nothing said yet: the profile's first allowed version).
    ``fallback`` is why discovery did not settle it when it was tried and failed (empty
    otherwise): the well-known resource absent, offering only versions the profile does not allow,
    malformed, or naming a DeviceCapability that failed; ``dcap_path`` is then the configured one.
    """

    version: str
    namespace: str
    learned: str
    path: str = ""
    dcap_path: str = ""
    offered: tuple[str, ...] = ()
    fallback: str = ""
    #: Which fallback: ``absent``, ``unsupported``, ``malformed`` or ``link-failed`` (empty: none).
    fallback_kind: str = ""
    at_s: float


class CsipAusFault(Event, tag="link.csipaus_fault.v1", frozen=True, kw_only=True):
    """A server fault about CSIP-AUS versions in the document at ``path`` (issue 18 point 2):
    ``kind`` ``unknown-namespace`` (a CSIP-AUS namespace the codec does not know: the elements
    ``dropped`` were not read, operating-envelope limits included), ``not-allowed`` (a known
    version the profile does not allow) or ``mixed`` (another version than the one in force,
    ``in_force``; the gateway keeps writing the one in force)."""

    path: str
    kind: str
    namespace: str
    in_force: str = ""
    dropped: tuple[str, ...] = ()
    at_s: float


LINK_EVENT_TYPES: tuple[type[Event], ...] = (
    LinkBackedOff,
    ListCapped,
    CsipAusVersionSettled,
    CsipAusFault,
)
