"""What the gateway told the utility about the DER's status, and why (PROTOCOL.md §2.7).

One record per DERStatus PUT, written when its outcome is known: the status sent, the fields whose
change made it due (``reasons``: schema names, or ``first`` for a resource not sent anything yet),
which of them came from the control in force because the device does not report them
(``from_control``), and what the server did with it. A dispute over "the utility was never told the
inverter had stopped" is settled by these records next to the hardware actor's samples."""

from __future__ import annotations

from typing import Literal

from events.base import Event
from events.der_info import DerStatusInfo

__all__ = ["DER_STATUS_EVENT_TYPES", "DER_STATUS_STREAM", "DerStatusPut"]

DER_STATUS_STREAM = "der_status"


class DerStatusPut(Event, frozen=True, kw_only=True, tag="der_status.put.v1"):
    """A DERStatus PUT to ``href`` at ``at_s``: ``outcome`` ``acked`` (2xx), ``refused`` (an HTTP
    error status, ``http_status``) or ``failed`` (no answer: ``error``); a PUT not acked is made
    again after ``retry_in_s``."""

    at_s: float
    href: str
    status: DerStatusInfo
    reasons: tuple[str, ...]
    from_control: tuple[str, ...] = ()
    outcome: Literal["acked", "refused", "failed"]
    http_status: int | None = None
    error: str = ""
    retry_in_s: float | None = None


DER_STATUS_EVENT_TYPES: tuple[type[Event], ...] = (DerStatusPut,)
