"""Which Response codes a client sends, and when: profiles, bit gating and legal sequences.

PROTOCOL.md §4 rules 2, 3, 6–9, 16 and §1 (profiles). The controls core asks :func:`should_send` for
every Response it is about to intend; the ledger of what was already intended per mRID is its state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec

from events.der_model import ResponseStatus

__all__ = [
    "CORE_2018",
    "CSIP",
    "CSIP_AUS",
    "PROFILES",
    "SAPN",
    "TERMINAL_RESPONSES",
    "ResponseProfile",
    "legal_next",
    "required_bit",
    "should_send",
]

_ALL: Final = frozenset(ResponseStatus)

#: After one of these nothing more is said about the event.
TERMINAL_RESPONSES: Final = frozenset(
    {
        ResponseStatus.COMPLETED,
        ResponseStatus.CANCELLED,
        ResponseStatus.SUPERSEDED,
        ResponseStatus.NOT_APPLICABLE,
        ResponseStatus.INVALID_EVENT,
        ResponseStatus.RECEIVED_LATE,
    }
)
_OPT_CODES: Final = frozenset(
    {
        ResponseStatus.OPT_OUT,
        ResponseStatus.OPT_IN,
        ResponseStatus.PARTIAL_OPT_OUT,
        ResponseStatus.PARTIAL_OPT_IN,
    }
)


class ResponseProfile(msgspec.Struct, frozen=True, kw_only=True):
    """The Response behaviour of one deployment profile (§1).

    ``allowed``: the codes this server accepts; ``received_late_on_expiry``: answer an event expired
    on receipt with 254 (§4 rule 3 leaves it to the profile); ``lfdi_uppercase``: how the LFDI is
    written in ``endDeviceLFDI``.
    """

    name: str
    allowed: frozenset[ResponseStatus]
    received_late_on_expiry: bool
    lfdi_uppercase: bool

    def lfdi(self, lfdi: str) -> str:
        return lfdi.upper() if self.lfdi_uppercase else lfdi.lower()


CORE_2018: Final = ResponseProfile(
    name="2030.5-2018", allowed=_ALL, received_late_on_expiry=True, lfdi_uppercase=False
)
CSIP: Final = ResponseProfile(
    name="CSIP", allowed=_ALL, received_late_on_expiry=True, lfdi_uppercase=False
)
CSIP_AUS: Final = ResponseProfile(
    name="CSIP-AUS", allowed=_ALL, received_late_on_expiry=True, lfdi_uppercase=True
)
#: A SAPN-style utility accepts only Received, Started, Completed, Cancelled and Superseded (§1).
SAPN: Final = ResponseProfile(
    name="SAPN",
    allowed=frozenset(
        {
            ResponseStatus.RECEIVED,
            ResponseStatus.STARTED,
            ResponseStatus.COMPLETED,
            ResponseStatus.CANCELLED,
            ResponseStatus.SUPERSEDED,
        }
    ),
    received_late_on_expiry=False,
    lfdi_uppercase=True,
)
PROFILES: Final = {p.name: p for p in (CORE_2018, CSIP, CSIP_AUS, SAPN)}


def required_bit(status: ResponseStatus) -> int:
    """§4 Responses: bit 0 gates 1 (Received), bit 2 the user opt-in/out codes, bit 1 all others."""
    if status is ResponseStatus.RECEIVED:
        return 0
    if status in _OPT_CODES:
        return 2
    return 1


def legal_next(sent: Sequence[ResponseStatus], status: ResponseStatus) -> bool:
    """Whether ``status`` may follow the codes already intended for the same mRID and LFDI.

    Each status at most once (§4 rule 16); 1 or 254 only first (rule 2, 3); 3 only after 2 (rule 9);
    nothing after a terminal code; 2 never after 7 (rule 7: superseded before start gets 1 then 7).
    """
    if status in sent:
        return False
    if any(s in TERMINAL_RESPONSES for s in sent):
        return False
    if status in (ResponseStatus.RECEIVED, ResponseStatus.RECEIVED_LATE):
        return not sent
    if status is ResponseStatus.COMPLETED:
        return ResponseStatus.STARTED in sent
    return True


def should_send(
    profile: ResponseProfile,
    response_required: int,
    sent: Sequence[ResponseStatus],
    status: ResponseStatus,
) -> bool:
    """§4 rule 16 with §1: the profile allows the code, its ``responseRequired`` bit is set, and it is
    a legal next code for this mRID."""
    return (
        status in profile.allowed
        and bool(response_required >> required_bit(status) & 1)
        and legal_next(sent, status)
    )
