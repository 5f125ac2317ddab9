"""Pure, synchronous decisions: lifecycle machines and scheduling rules. Imports only ``events``."""

from statemachines.arbitration import (
    Arbitration,
    Candidate,
    DefaultSupply,
    arbitrate,
    merge_defaults,
)
from statemachines.controls import (
    CONTROLS_PROJECTION,
    ControlRecord,
    ControlsCore,
    ControlsState,
    CoreConfig,
    Draw,
    evolve,
)
from statemachines.lifecycle import LIFECYCLE
from statemachines.polling import POLL_PROJECTION, PollSchedule, PollState, evolve_poll, next_post_s
from statemachines.ramps import Ramp, RampError, plan_ramp
from statemachines.registration import (
    REGISTRATION,
    REGISTRATION_PROJECTION,
    BackoffPolicy,
    RegistrationConfig,
    RegistrationCore,
    RegistrationState,
    evolve_registration,
)
from statemachines.responses import CORE_2018, CSIP, CSIP_AUS, PROFILES, SAPN, ResponseProfile
from statemachines.table import IllegalTransition, Row, Table

__all__ = [
    "CONTROLS_PROJECTION",
    "CORE_2018",
    "CSIP",
    "CSIP_AUS",
    "LIFECYCLE",
    "POLL_PROJECTION",
    "PROFILES",
    "REGISTRATION",
    "REGISTRATION_PROJECTION",
    "SAPN",
    "Arbitration",
    "BackoffPolicy",
    "Candidate",
    "ControlRecord",
    "ControlsCore",
    "ControlsState",
    "CoreConfig",
    "DefaultSupply",
    "Draw",
    "IllegalTransition",
    "PollSchedule",
    "PollState",
    "Ramp",
    "RampError",
    "RegistrationConfig",
    "RegistrationCore",
    "RegistrationState",
    "ResponseProfile",
    "Row",
    "Table",
    "arbitrate",
    "evolve",
    "evolve_poll",
    "evolve_registration",
    "merge_defaults",
    "next_post_s",
    "plan_ramp",
]
