"""The controls core, in two parts: the fold (:mod:`.fold`: the state and :func:`evolve`, the only way it
changes) and the decisions (:mod:`.decisions`: :class:`ControlsCore`, which emits the events the fold
applies). Everything is re-exported here, so ``from statemachines.controls import …`` is the public path."""

from statemachines.controls.decisions import (
    NEAR_ADJACENT_S,
    RECEIPT_STEP,
    ControlsCore,
    CoreConfig,
    Draw,
    content_differs,
    ramps_ended,
)
from statemachines.controls.fold import (
    CONTROLS_PROJECTION,
    ControlRecord,
    ControlsState,
    evolve,
    evolve_in_place,
    owned_copy,
)

__all__ = [
    "CONTROLS_PROJECTION",
    "NEAR_ADJACENT_S",
    "RECEIPT_STEP",
    "ControlRecord",
    "ControlsCore",
    "ControlsState",
    "CoreConfig",
    "Draw",
    "content_differs",
    "evolve",
    "evolve_in_place",
    "owned_copy",
    "ramps_ended",
]
