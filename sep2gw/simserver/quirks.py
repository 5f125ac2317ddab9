"""Real-server behaviours the simulated utility server can switch on, one flag each.

Each quirk is something a deployed 2030.5 server does that a client must survive (PROTOCOL.md §2):

- ``one_item_default_paging``: a list GET without ``l`` returns one item (envoy), so a client that
  does not page finds only the first program or control.
- ``drop_hex_leading_zeros``: echoed hexBinary identifiers lose their leading zeros (``00`` → ``0``,
  an LFDI ``0A3F…`` → ``A3F…``): clients must compare hex numerically.
- ``csipaus_ns`` / ``csipaus_prefix``: which CSIP-AUS namespace (and prefix) extension elements
  are written with (v1.2 ``https://csipaus.org/ns``, v1.3, v1.3-beta storage).
- ``status_superseded``: the server marks an event it considers superseded with
  ``currentStatus`` 4 (2018 servers; 2023 dropped it).
- ``status_completed``: the server marks an ended event with ``currentStatus`` 5 (2023).
- ``path_style``: ``"plain"`` (``/derp/{n}/derc``, replies to ``/rsps/{n}/rsp``) or ``"envoy"``
  (``/edev/{id}/derp/{n}/derc``, replies to ``/edev/{id}/rsps/{n}/rsp``). Clients must follow
  hrefs, never build URLs.
- ``http2``: offer HTTP/2 by ALPN (``False``: HTTP/1.1 only, as most deployed servers).
- ``well_known``: CSIP-AUS v1.3 service discovery at ``/.well-known/csipaus``: ``"absent"``
  (404, most servers), ``"gone"`` (410, as the CSIP-AUS test harness answers under v1.2),
  ``"offer"`` (the served namespace with ``/dcap``), ``"unsupported"`` (only a namespace no client
  knows), ``"malformed"`` (``dcap`` a string, not a list) or ``"broken_link"`` (the served
  namespace with a DeviceCapability path where nothing is).
"""

from __future__ import annotations

import re
from typing import Literal

import msgspec

from transport.sep2 import CSIPAUS_NAMESPACES, CSIPAUS_NS

__all__ = ["Quirks", "apply_text_quirks"]

# Elements holding hexBinary identifiers or bitmaps that a server echoes back.
_ECHOED_HEX = (
    "lFDI",
    "deviceLFDI",
    "endDeviceLFDI",
    "mRID",
    "subject",
    "deviceCategory",
    "responseRequired",
    "roleFlags",
)
_HEX_ELEMENT = re.compile(
    r"<(?P<tag>(?:\w+:)?(?:" + "|".join(_ECHOED_HEX) + r"))>0+(?P<digits>[0-9A-Fa-f]+|(?=<))"
)
_PREFIX = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


class Quirks(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    one_item_default_paging: bool = False
    drop_hex_leading_zeros: bool = False
    csipaus_ns: str = CSIPAUS_NS
    csipaus_prefix: str = "csipaus"
    status_superseded: bool = False
    status_completed: bool = False
    path_style: Literal["plain", "envoy"] = "plain"
    http2: bool = True
    well_known: Literal["absent", "gone", "offer", "unsupported", "malformed", "broken_link"] = (
        "absent"
    )

    def problems(self) -> list[str]:
        problems: list[str] = []
        if self.csipaus_ns not in CSIPAUS_NAMESPACES:
            problems.append(
                f"quirks.csipaus_ns: {self.csipaus_ns!r} is not one of {list(CSIPAUS_NAMESPACES)}"
            )
        if not _PREFIX.fullmatch(self.csipaus_prefix) or self.csipaus_prefix.lower().startswith(
            "xml"
        ):
            problems.append(f"quirks.csipaus_prefix: {self.csipaus_prefix!r} is not an XML prefix")
        return problems

    @property
    def alpn(self) -> tuple[str, ...]:
        return ("h2", "http/1.1") if self.http2 else ("http/1.1",)


def _strip(match: re.Match[str]) -> str:
    digits = match["digits"] or "0"  # all zeros: the value 0 is written "0"
    return f"<{match['tag']}>{digits}"


def apply_text_quirks(document: bytes, quirks: Quirks) -> bytes:
    """Rewrite a serialised document the way a quirky server writes it.

    Text rewriting is safe here: the codec escapes ``<`` in every value, so ``<tag>`` can only be
    markup, and the ``csipaus:`` prefix is only ever written by the serialiser.
    """
    if not quirks.drop_hex_leading_zeros and quirks.csipaus_prefix == "csipaus":
        return document
    text = document.decode()
    if quirks.drop_hex_leading_zeros:
        text = _HEX_ELEMENT.sub(_strip, text)
    if quirks.csipaus_prefix != "csipaus":
        prefix = quirks.csipaus_prefix
        text = (
            text.replace("xmlns:csipaus=", f"xmlns:{prefix}=")
            .replace("<csipaus:", f"<{prefix}:")
            .replace("</csipaus:", f"</{prefix}:")
        )
    return text.encode()
