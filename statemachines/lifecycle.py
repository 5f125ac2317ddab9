"""The lifecycle of one DERControl event (PROTOCOL.md §4), as a transition table.

``received`` is the first sight of an mRID; from there an event is scheduled, ignored (expired on
receipt, rule 3; not our deviceCategory, rule 14) or rejected (invalid, 253; not applicable, 252).
A scheduled event starts at its effective start (rule 6), is re-planned when an adjacent event pins
its start (``reschedule``, rule 5), and ends completed (rule 9; or server status 5), cancelled (status
2, or 3 after its drawn delay, rule 8), superseded (lost every mode, rule 7; or server status 4) or
removed (its program is no longer ours: silent stop, rule 4), or rejected when the device refuses the
write that started it (rule 6). Terminal states have no rows.
"""

from __future__ import annotations

from typing import Final

from statemachines.table import Row, Table

__all__ = [
    "ACTIVE",
    "CANCELLED",
    "COMPLETED",
    "IGNORED",
    "LIFECYCLE",
    "LIFECYCLE_ROWS",
    "LIFECYCLE_STATES",
    "RECEIVED",
    "REJECTED",
    "REMOVED",
    "SCHEDULED",
    "SUPERSEDED",
    "TERMINAL_STATES",
]

RECEIVED: Final = "received"
SCHEDULED: Final = "scheduled"
ACTIVE: Final = "active"
COMPLETED: Final = "completed"
CANCELLED: Final = "cancelled"
SUPERSEDED: Final = "superseded"
IGNORED: Final = "ignored"
REJECTED: Final = "rejected"
REMOVED: Final = "removed"

LIFECYCLE_STATES: Final = (
    RECEIVED,
    SCHEDULED,
    ACTIVE,
    COMPLETED,
    CANCELLED,
    SUPERSEDED,
    IGNORED,
    REJECTED,
    REMOVED,
)

LIFECYCLE_ROWS: Final = (
    Row("schedule", RECEIVED, SCHEDULED),
    Row("ignore", RECEIVED, IGNORED),
    Row("reject", RECEIVED, REJECTED),
    Row("reschedule", SCHEDULED, SCHEDULED),
    Row("start", SCHEDULED, ACTIVE),
    Row("complete", SCHEDULED, COMPLETED),
    Row("cancel", SCHEDULED, CANCELLED),
    Row("supersede", SCHEDULED, SUPERSEDED),
    Row("remove", SCHEDULED, REMOVED),
    Row("complete", ACTIVE, COMPLETED),
    Row("cancel", ACTIVE, CANCELLED),
    Row("supersede", ACTIVE, SUPERSEDED),
    Row("remove", ACTIVE, REMOVED),
    Row("reject", ACTIVE, REJECTED),
)

TERMINAL_STATES: Final = frozenset({COMPLETED, CANCELLED, SUPERSEDED, IGNORED, REJECTED, REMOVED})

#: The one shared Machine of the control lifecycle; models are ``statemachines.controls.ControlRecord``.
LIFECYCLE: Final = Table("control lifecycle", LIFECYCLE_STATES, RECEIVED, LIFECYCLE_ROWS)
