"""Small builders for decision-core tests: programs, controls, a core with a log that records
everything it emits, and fixed draws."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from events.base import Event
from events.control_events import LimitsInForceChanged, ResponseIntended
from events.der_model import Control, ControlSettings, DefaultControl, Program, ResponseStatus
from events.replay import fold
from statemachines.controls import ControlsCore, ControlsState, CoreConfig, evolve
from statemachines.responses import CORE_2018, ResponseProfile

LFDI = "3e4f45ab31edfe5b67e343e5e4562e31984e23e5"
ALL_RESPONSES = 0b111


def draw_max(low: int, high: int) -> int:
    return high


def draw_min(low: int, high: int) -> int:
    return low


def program(pid: str, primacy: int) -> Program:
    return Program(program_id=pid, primacy=primacy)


def control(
    mrid: str,
    start: int,
    duration: int,
    *,
    program_id: str = "P1",
    created: int = 0,
    **settings: Any,
) -> Control:
    """A control setting ``settings`` (export_limit_w=… etc.); extra Control fields via ``extra``."""
    extra = settings.pop("extra", {})
    return Control(
        mrid=mrid,
        program_id=program_id,
        creation_time_s=created,
        start_s=start,
        duration_s=duration,
        settings=ControlSettings(**(settings or {"export_limit_w": 1000.0})),
        response_required=extra.pop("response_required", ALL_RESPONSES),
        reply_to=extra.pop("reply_to", "/rsp"),
        **extra,
    )


class Harness:
    """A core plus the log of everything it emitted, with convenience inputs."""

    def __init__(
        self,
        programs: Sequence[Program] = (Program(program_id="P1", primacy=1),),
        *,
        profile: ResponseProfile = CORE_2018,
        device_category: int = 0x1,
        draw: Any = draw_max,
        set_max_w: float | None = None,
        confirm_writes: bool = False,
    ) -> None:
        self.config = CoreConfig(
            lfdi=LFDI,
            device_category=device_category,
            profile=profile,
            set_max_w=set_max_w,
            confirm_writes=confirm_writes,
        )
        self.core = ControlsCore(self.config)
        self.draw = draw
        self.log: list[Event] = []
        self.programs(programs, 0)

    def _keep(self, events: list[Event]) -> list[Event]:
        self.log += events
        return events

    def programs(self, programs: Sequence[Program], now: float) -> list[Event]:
        return self._keep(self.core.receive_programs(programs, now, self.draw))

    def default(self, pid: str, now: float, **settings: Any) -> list[Event]:
        grad = settings.pop("set_grad_w", None)
        default = DefaultControl(
            program_id=pid, settings=ControlSettings(**settings), set_grad_w=grad
        )
        return self._keep(self.core.receive_default(pid, default, now, self.draw))

    def poll(self, now: float, *controls: Control, program_id: str | None = None) -> list[Event]:
        pid = program_id or (controls[0].program_id if controls else "P1")
        return self._keep(self.core.receive_controls(pid, list(controls), now, self.draw))

    def tick(self, now: float) -> list[Event]:
        return self._keep(self.core.handle_timer(now, self.draw))

    def run_until(self, end: float) -> None:
        while (due := self.core.next_deadline()) is not None and due <= end:
            self.tick(due)
        self.tick(end)

    def responses(self, mrid: str | None = None) -> list[tuple[str, ResponseStatus]]:
        return [
            (e.mrid, e.status)
            for e in self.log
            if isinstance(e, ResponseIntended) and (mrid is None or e.mrid == mrid)
        ]

    def statuses(self, mrid: str) -> list[int]:
        return [int(s) for _, s in self.responses(mrid)]

    def in_force(self, now: float) -> dict[str, tuple[Any, str]]:
        arb = self.core.arbitration(now)
        return {m.value: (v, arb.sources[m]) for m, v in arb.values.items()}

    def limits_log(self) -> list[LimitsInForceChanged]:
        return [e for e in self.log if isinstance(e, LimitsInForceChanged)]

    def state(self, mrid: str) -> str:
        return self.core.state.records[mrid].state

    def refold(self) -> ControlsState:
        return fold(self.log, evolve, ControlsState())


__all__ = [
    "ALL_RESPONSES",
    "LFDI",
    "Harness",
    "control",
    "draw_max",
    "draw_min",
    "program",
]
