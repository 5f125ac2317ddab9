"""Records of the event log as diagnostics (issue 20 point 1): each record worth a line is logged
to ``sep2gw.record`` in the timeline's words, at a level that says how much it matters, with its
``seq``, type tag and stream (``extra``), so a JSON log line can be joined to the event log.

Nothing is described unless the logger would emit it: at the default level (warning) a quiet
gateway describes only what went wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

from events.control_events import (
    CommsLost,
    ControlRejected,
    DefaultRefused,
    ResponseFailed,
    ServerFault,
)
from events.envelope import Recorded
from events.hardware_events import (
    AlarmsChanged,
    DeviceUnreachable,
    LimitsApplied,
    TelemetrySampled,
)
from events.link_events import LinkBackedOff
from events.log_events import LogShed, LogShort, PreviousLogSetAside
from events.registration_events import (
    Polled,
    Posted,
    RateBounded,
    RegistrationHalted,
    TimeRefused,
)
from events.registry import CATALOGUE
from events.runtime_events import ActorFailed
from sep2gw.diagnostics import RECORD_LOGGER
from sep2gw.timeline import Timeline

__all__ = ["RecordLog", "level_of"]

_WARNING: Final = (
    CommsLost,
    ControlRejected,
    DefaultRefused,
    ResponseFailed,
    ServerFault,
    AlarmsChanged,
    DeviceUnreachable,
    LinkBackedOff,
    LogShort,
    LogShed,
    PreviousLogSetAside,
    RateBounded,
    TimeRefused,
)
#: Every second or every sample: detail.
_DEBUG: Final = (TelemetrySampled, LimitsApplied, Polled, Posted)


def level_of(record: Recorded) -> int:
    """How much a record matters to someone watching the gateway."""
    e = record.event
    if isinstance(e, RegistrationHalted) or (isinstance(e, ActorFailed) and e.gave_up):
        return logging.ERROR
    if isinstance(e, _WARNING + (ActorFailed,)):
        return logging.WARNING
    if isinstance(e, _DEBUG):
        return logging.DEBUG
    return logging.INFO


class RecordLog:
    def __init__(self) -> None:
        self._logger = logging.getLogger(RECORD_LOGGER)
        self._timeline = Timeline()

    def emit(self, records: Sequence[Recorded]) -> None:
        logger = self._logger
        if not logger.isEnabledFor(logging.ERROR):
            return  # nothing would be shown
        for record in records:
            level = level_of(record)
            if not logger.isEnabledFor(level):
                continue
            line = self._timeline.describe(record)
            if line is None:
                continue
            logger.log(
                level,
                line,
                extra={
                    "seq": record.seq,
                    "event": CATALOGUE.tag(record.event),
                    "stream": record.stream,
                },
            )
