"""The service status line (systemd's ``STATUS=``) folded from the gateway's records: how far
registration got, whether the link is up, the limits in force, and the stop."""

from __future__ import annotations

from events.base import Event
from events.control_events import CommsLost, CommsRestored, LimitsInForceChanged
from events.der_model import ControlSettings, Mode
from events.envelope import Recorded
from events.registration_events import RegistrationHalted, RegistrationStep, StepDone
from events.runtime_events import GatewayStarted, GatewayStopped
from sep2gw.service_status import ServiceStatus


def fold(*events: Event) -> str:
    status = ServiceStatus()
    for seq, event in enumerate(events, 1):
        status.update(Recorded(seq, "s", seq, 1.0e9 + seq, float(seq), event, b""))
    return status.line()


STARTED = GatewayStarted(software_version="0", rng_seed=1, clock_synced=False)


def test_a_start_says_nothing_is_known_yet() -> None:
    assert fold(STARTED) == "starting; comms not yet tried; no limits in force yet"


def test_registration_progress_then_registered_with_comms_and_limits() -> None:
    assert fold(STARTED, StepDone(step=RegistrationStep.TIME, at_s=1.0)).startswith(
        "registering (time done, 2/8); comms up"
    )
    limits = LimitsInForceChanged(
        ramps_ended=(),
        settings=ControlSettings(export_limit_w=1500.0),
        sources={Mode.EXPORT_LIMIT_W: "control A1"},
        next_change_s=None,
        at_s=2.0,
    )
    line = fold(STARTED, StepDone(step=RegistrationStep.MIRROR, at_s=1.0), limits)
    assert line == "registered; comms up; limits: export_limit_w=1500 W"


def test_comms_lost_and_restored_and_a_halt_and_the_stop_are_shown() -> None:
    lost = fold(
        STARTED,
        StepDone(step=RegistrationStep.MIRROR, at_s=1.0),
        CommsLost(at_s=2.0, reason="connection refused"),
    )
    assert lost == "registered; COMMS LOST (connection refused); no limits in force yet"
    assert "; comms up;" in fold(STARTED, CommsLost(at_s=2.0), CommsRestored(at_s=3.0))
    halted = fold(
        STARTED, RegistrationHalted(step=RegistrationStep.REGISTRATION, reason="PIN", at_s=1.0)
    )
    assert halted.startswith("REGISTRATION HALTED at registration: PIN;")
    assert fold(STARTED, GatewayStopped(reason="stopped")).startswith("stopped: stopped;")
