"""Issue 15 point 1: no value a server sends can fail the controls core. A control the site cannot
carry out is refused at receipt with the Response the profile prescribes (PROTOCOL.md §4 rules 2,
16: 253 invalid event, gated by ``responseRequired`` and the profile's codes) and a logged reason;
the rest of its program goes on. A default that cannot be carried out is refused and logged; the
default in force stays."""

from __future__ import annotations

import pytest

from events.control_events import ControlRejected, DefaultRefused
from events.der_model import ControlSettings, DefaultControl
from events.replay import fold
from statemachines.controls import ControlsState, evolve
from statemachines.responses import SAPN
from tests.statemachines.builders import Harness, control, draw_max

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({"export_limit_w": -1000.0}, "export_limit_w"),
        ({"import_limit_w": -5.0}, "import_limit_w"),
        ({"generation_limit_w": -1.0}, "generation_limit_w"),
        ({"load_limit_w": -327670000.0}, "load_limit_w"),
        ({"fixed_w_pct": 327.67}, "fixed_w_pct"),
        ({"fixed_w_pct": -327.68}, "fixed_w_pct"),
        ({"max_limit_pct": 655.35}, "max_limit_pct"),
        ({"export_limit_w": 5000.0, "ramp_time_s": -1.0}, "ramp_time_s"),
    ],
)
def test_refusal_a_control_no_der_can_carry_out_is_refused_with_253_and_the_program_goes_on(
    settings: dict[str, float], names: str
) -> None:
    h = Harness()
    h.poll(0, control("BAD", 100, 60, **settings), control("GOOD", 100, 60))
    assert h.state("BAD") == "rejected" and h.statuses("BAD") == [253]
    (rejected,) = [e for e in h.log if isinstance(e, ControlRejected)]
    assert names in rejected.reason
    assert h.state("GOOD") == "scheduled" and h.statuses("GOOD") == [1]
    h.run_until(120)
    assert h.in_force(120)["export_limit_w"] == (1000.0, "control:GOOD")
    assert h.refold() == h.core.state


def test_refusal_is_silent_when_the_profile_does_not_allow_253() -> None:
    h = Harness(profile=SAPN)
    h.poll(0, control("BAD", 100, 60, export_limit_w=-1.0))
    assert h.state("BAD") == "rejected" and h.statuses("BAD") == []


@pytest.mark.parametrize("start", [INT64_MAX, INT64_MAX - 60, 253402300800])
def test_time_is_total_a_control_starting_beyond_year_9999_is_refused(start: int) -> None:
    h = Harness()
    h.poll(0, control("FAR", start, 60, extra={"randomize_start_s": 2**31 - 1}))
    assert h.state("FAR") == "rejected" and h.statuses("FAR") == [253]
    h.poll(0, control("PAST", INT64_MIN, 60))  # the other end: expired on receipt (§4 rule 3)
    assert h.state("PAST") == "ignored"
    assert h.core.next_deadline() is None
    assert h.refold() == h.core.state


def test_refusal_a_default_no_der_can_carry_out_is_refused_once_and_the_old_one_stays() -> None:
    h = Harness()
    h.default("P1", 0, export_limit_w=3000.0)
    bad = DefaultControl(program_id="P1", settings=ControlSettings(export_limit_w=-3000.0))
    for now in (10, 20):
        h._keep(h.core.receive_default("P1", bad, now, draw_max))
    refused = [e for e in h.log if isinstance(e, DefaultRefused)]
    assert len(refused) == 1 and "export_limit_w" in refused[0].reason
    assert h.in_force(30)["export_limit_w"] == (3000.0, "default:P1")
    h.default("P1", 40, export_limit_w=2000.0)
    assert h.in_force(40)["export_limit_w"] == (2000.0, "default:P1")
    h._keep(h.core.receive_default("P1", bad, 50, draw_max))
    assert len([e for e in h.log if isinstance(e, DefaultRefused)]) == 2
    assert fold(h.log, evolve, ControlsState()) == h.core.state
