"""Events about the gateway process itself: starts, stops and actor failures.

They make restarts visible in a dispute: "the controls actor failed at 14:03:10 and was back at
14:03:12" is part of the story of what the site did.
"""

from __future__ import annotations

from events.base import Event

__all__ = [
    "RUNTIME_EVENT_TYPES",
    "RUNTIME_STREAM",
    "ActorFailed",
    "GatewayStarted",
    "GatewayStopped",
]

RUNTIME_STREAM = "runtime"


class GatewayStarted(Event, frozen=True, kw_only=True, tag="runtime.gateway_started.v1"):
    """The gateway process started; ``rng_seed`` is the seed of its one random source."""

    software_version: str
    rng_seed: int
    clock_synced: bool


class GatewayStopped(Event, frozen=True, kw_only=True, tag="runtime.gateway_stopped.v1"):
    reason: str


class ActorFailed(Event, frozen=True, kw_only=True, tag="runtime.actor_failed.v1"):
    """An actor raised; it restarts after ``restart_in_s`` unless ``gave_up``."""

    actor: str
    error_type: str
    error: str
    failures_in_window: int
    restart_in_s: float
    gave_up: bool = False


RUNTIME_EVENT_TYPES: tuple[type[Event], ...] = (GatewayStarted, GatewayStopped, ActorFailed)
