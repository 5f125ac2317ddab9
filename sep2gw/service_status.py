"""The one-line status a service manager shows for a running gateway (``systemctl status``'s
``Status:`` line, sent as systemd's ``STATUS=``), folded from the gateway's own log records.

Pure: records in, a line out. The run command follows the log (read-only, as its timeline does)
and sends the line when it changes (``actors.sd_notify``).
"""

from __future__ import annotations

from events.control_events import CommsLost, CommsRestored, LimitsInForceChanged
from events.envelope import Recorded
from events.registration_events import (
    RegistrationHalted,
    RegistrationStarted,
    RegistrationStep,
    StepDone,
)
from events.runtime_events import GatewayStarted, GatewayStopped
from sep2gw.timeline import describe_settings

__all__ = ["ServiceStatus"]

#: The registration steps in PROTOCOL.md §2 order, to say how far the walk got.
_STEPS = list(RegistrationStep)


class ServiceStatus:
    """Registration, comms and the limits in force, as one line: e.g. ``registered; comms up;
    limits: export ≤ 5000 W``."""

    def __init__(self) -> None:
        self.registration = "starting"
        self.comms = "comms not yet tried"
        self.limits = "no limits in force yet"

    def update(self, record: Recorded) -> None:
        match record.event:
            case GatewayStarted():
                self.registration = "starting"
            case RegistrationStarted():
                self.registration = "registering"
            case StepDone(step=step) if step is _STEPS[-1]:
                self.registration = "registered"
                self.comms = "comms up"
            case StepDone(step=step):
                if self.registration != "registered":
                    number = _STEPS.index(step) + 1
                    self.registration = f"registering ({step.value} done, {number}/{len(_STEPS)})"
                self.comms = "comms up"
            case RegistrationHalted(step=step, reason=reason):
                self.registration = f"REGISTRATION HALTED at {step.value}: {reason}"
            case CommsLost(reason=reason):
                self.comms = f"COMMS LOST ({reason})" if reason else "COMMS LOST"
            case CommsRestored():
                self.comms = "comms up"
            case LimitsInForceChanged(settings=settings):
                self.limits = f"limits: {describe_settings(settings)}"
            case GatewayStopped(reason=reason):
                self.registration = f"stopped: {reason}"
            case _:
                pass

    def line(self) -> str:
        return f"{self.registration}; {self.comms}; {self.limits}"
