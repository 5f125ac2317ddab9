"""Scenario files: decoding into structs, and errors that name the key and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from sep2gw.simserver import (
    CancelControl,
    CreateControl,
    FailRequests,
    OperatorCommand,
    ScenarioError,
    demo_scenario,
    load_scenario,
    parse_scenario,
)

PROGRAM = '[[programs]]\nid = "p"\nprimacy = 1\n'


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, source="t.toml")
    assert str(caught.value).startswith("t.toml: ")
    return caught.value.problems


def test_actions_decode_by_kind_in_timeline_order() -> None:
    scenario = parse_scenario(
        PROGRAM
        + '[[actions]]\nat_s = 50\nkind = "cancel_control"\nmrid = "A1"\n'
        + '[[actions]]\nat_s = 0\nkind = "create_control"\nmrid = "A1"\nprogram = "p"\n'
        + "start_s = 60\nduration_s = 30\nmodes = { opModExpLimW = 1500, opModConnect = true }\n"
        + '[[actions]]\nat_s = 50\nkind = "fail"\nduration_s = 5\n'
    )
    kinds = [type(action) for _, action in scenario.timeline()]
    assert kinds == [CreateControl, CancelControl, FailRequests]  # equal at_s: file order
    create = scenario.timeline()[0][1]
    assert isinstance(create, CreateControl)
    assert create.modes.modes_set() == {"opModExpLimW", "opModConnect"}


def test_cancel_of_an_unknown_or_not_yet_created_control_is_refused() -> None:
    found = problems(
        PROGRAM
        + '[[actions]]\nat_s = 0\nkind = "cancel_control"\nmrid = "B1"\n'
        + '[[actions]]\nat_s = 5\nkind = "cancel_control"\nmrid = "A1"\n'
        + '[[actions]]\nat_s = 9\nkind = "create_control"\nmrid = "A1"\nprogram = "p"\n'
        + "start_s = 60\nduration_s = 30\nmodes = { opModConnect = false }\n"
    )
    assert found == [
        "actions[0].mrid: no create_control action creates B1",
        "actions[1].mrid: A1 is cancelled at 5 s, before it is created at 9 s",
    ]


def test_unknown_key_is_named_with_its_path() -> None:
    found = problems(
        PROGRAM
        + '[[actions]]\nat_s = 0\nkind = "create_control"\nprogram = "p"\nstart_s = 0\n'
        + "duration_s = 30\nmodes = { opModExpLimitW = 1 }\n"
    )
    assert found == ["actions[0].modes.opModExpLimitW: unknown key (misspelt?)"]


def test_missing_key_is_named() -> None:
    assert problems('[[programs]]\nid = "p"\n') == ["programs[0].primacy: required key is missing"]


def test_unknown_action_kind_is_named() -> None:
    found = problems(PROGRAM + '[[actions]]\nat_s = 0\nkind = "explode"\n')
    assert len(found) == 1 and found[0].startswith("actions[0].kind:") and "explode" in found[0]


def test_wrong_type_is_named() -> None:
    found = problems("[server]\npoll_rate_s = 'often'\n")
    assert found == ["server.poll_rate_s: expected `int`, got `str`"]


def test_a_site_nmi_that_is_not_an_nmi_is_named() -> None:
    assert problems('[server]\nnmi = "41-0303"\n') == [
        "server.nmi: '41-0303' is not a 10 or 11 character NMI"
    ]
    parse_scenario('[server]\nnmi = "4103035611"\n', source="ok")


def test_unknown_program_reference_is_named() -> None:
    found = problems(PROGRAM + '[[actions]]\nat_s = 0\nkind = "remove_program"\nprogram = "q"\n')
    assert found == ["actions[0].program: no program has id 'q'"]


def test_every_cross_check_problem_is_reported_at_once() -> None:
    found = problems(
        '[server]\npin = 1234567\n[quirks]\ncsipaus_ns = "urn:x"\n'
        '[[programs]]\nid = "p"\nprimacy = 300\nmrid = "XYZ"\n'
        '[[programs]]\nid = "p"\nprimacy = 1\n'
        '[[actions]]\nat_s = -1\nkind = "create_control"\nprogram = "p"\nstart_s = 0\n'
        "duration_s = 0\nmodes = {}\n"
        '[[actions]]\nat_s = 0\nkind = "fail"\nduration_s = 1\nstatus = 200\npaths = ["dcap"]\n'
    )
    assert found == [
        "server.pin: 1234567 is not a PIN (5 digits and a check digit)",
        "quirks.csipaus_ns: 'urn:x' is not one of ['https://csipaus.org/ns', "
        "'https://csipaus.org/ns/v1.3', 'https://csipaus.org/ns/v1.3-beta/storage']",
        "programs[0].primacy: 300 is not 0..255",
        "programs[0].mrid: 'XYZ' is not an mRID (1 to 32 hex digits)",
        "programs[1].id: 'p' is used by another program",
        "actions[0].at_s: must not be negative, got -1.0",
        "actions[0].duration_s: must be positive, got 0",
        "actions[0].modes: a control sets at least one mode",
        "actions[1].status: 200 is not an HTTP error status",
        "actions[1].paths[0]: 'dcap' must start with '/'",
    ]


def test_mode_values_that_do_not_fit_the_wire_are_refused() -> None:
    found = problems(
        PROGRAM + '[[actions]]\nat_s = 0\nkind = "create_control"\nprogram = "p"\nstart_s = 0\n'
        "duration_s = 30\nmodes = { opModExpLimW = -5, opModFixedW = 150, rampTms = 1000 }\n"
    )
    assert found == [
        "actions[0].modes.opModExpLimW: a limit is not negative, got -5.0",
        "actions[0].modes.opModFixedW: 150.0 is not a percentage in -100..100",
        "actions[0].modes.rampTms: 1000.0 s is outside 0..655.35 s",
    ]


def test_same_mrid_created_twice_is_refused() -> None:
    create = (
        '[[actions]]\nat_s = 0\nkind = "create_control"\nmrid = "0A1"\nprogram = "p"\n'
        "start_s = 0\nduration_s = 30\nmodes = { opModConnect = false }\n"
    )
    # 0A1 and A1 are the same hexBinary value
    assert problems(PROGRAM + create + create.replace("0A1", "A1")) == [
        "actions[1].mrid: A1 is created twice"
    ]


def test_invalid_toml_is_reported() -> None:
    found = problems("[server\n")
    assert len(found) == 1 and found[0].startswith("not valid TOML")


def test_a_file_that_is_not_utf_8_is_reported_not_a_traceback() -> None:
    """msgspec's TOML decoder let the UnicodeDecodeError through."""
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(b"\xff\xfename = 'x'\n", source="latin.toml")
    assert "latin.toml" in str(caught.value) and "not UTF-8 text (byte 0: 0xff)" in str(
        caught.value
    )


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read the file"):
        load_scenario(tmp_path / "missing.toml")


def test_scenario_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('name = "mine"\n' + PROGRAM)
    assert load_scenario(path).name == "mine"


def test_demo_has_a_normal_a_superseded_and_a_cancelled_control_within_minutes() -> None:
    demo = demo_scenario()
    creates = [a for a in demo.actions if isinstance(a, CreateControl)]
    cancels = [a for a in demo.actions if isinstance(a, CancelControl)]
    primacy = {p.id: p.primacy for p in demo.programs}
    assert len(creates) >= 3 and len(cancels) == 1
    end = max(a.start_s + a.duration_s for a in creates)
    assert end == demo.duration_s() <= 600  # a few minutes
    # one control is outranked, over a common mode, by an overlapping higher-primacy control
    assert any(
        primacy[w.program] < primacy[lo.program]
        and w.start_s < lo.start_s + lo.duration_s
        and lo.start_s < w.start_s + w.duration_s
        and lo.modes.modes_set() <= w.modes.modes_set()
        for w in creates
        for lo in creates
    )
    cancelled = next(a for a in creates if a.mrid == cancels[0].mrid)
    # cancelled while it runs
    assert cancelled.start_s < cancels[0].at_s < cancelled.start_s + cancelled.duration_s


def test_the_example_scenario_file_is_valid() -> None:
    path = Path(__file__).resolve().parents[3] / "examples" / "sim-scenario.toml"
    scenario = load_scenario(path)
    kinds = {type(action).__name__ for action in scenario.actions}
    assert len(kinds) >= 6 and scenario.quirks.path_style == "envoy"
    assert scenario.duration_s() == 540


def test_non_finite_and_unwritable_powers_are_refused() -> None:
    found = problems(
        PROGRAM + '[[actions]]\nat_s = 0\nkind = "create_control"\nprogram = "p"\nstart_s = 0\n'
        "duration_s = 30\nmodes = { opModTargetW = nan, opModImpLimW = inf, "
        "opModGenLimW = 1e30 }\n"
    )
    assert found == [
        "actions[0].modes.opModImpLimW: must be a finite number, got inf",
        "actions[0].modes.opModGenLimW: 1e+30 does not fit the wire's value x 10^n",
        "actions[0].modes.opModTargetW: must be a finite number, got nan",
    ]


def test_server_and_wire_ranges_are_checked() -> None:
    found = problems(
        "[server]\ntime_quality = 9\ntz_offset_s = 100000\n"
        '[[programs]]\nid = "p"\nprimacy = 1\nset_grad_w = 70000\n'
        '[[actions]]\nat_s = 0\nkind = "create_control"\nprogram = "p"\nstart_s = 0\n'
        "duration_s = 30\nresponse_required = 256\ndevice_category = -1\n"
        "modes = { opModConnect = true }\n"
    )
    assert found == [
        "server.time_quality: 9 is not a Time quality (3..7)",
        "server.tz_offset_s: 100000 s is more than a day",
        "programs[0].set_grad_w: 70000 is not 0..65535 (hundredths of a percent per second)",
        "actions[0].response_required: 256 is not 0..255",
        "actions[0].device_category: -1 is not 32 bits",
    ]


def test_an_operator_command_at_the_device_decodes_and_must_set_something() -> None:
    """PROTOCOL.md §2.7 scenarios: an operator stops, starts or disconnects the inverter at the
    device (world-level, SunSpec 802 SetInvState/SetOp); a command that sets nothing is named."""
    scenario = parse_scenario('[[actions]]\nat_s = 5\nkind = "operator"\ninverter = "stopped"\n')
    ((_, action),) = scenario.timeline()
    assert isinstance(action, OperatorCommand)
    assert (action.inverter, action.connect) == ("stopped", None)
    assert problems('[[actions]]\nat_s = 5\nkind = "operator"\n') == [
        "actions[0]: an operator command sets inverter or connect (or both)"
    ]
    assert any(
        p.startswith("actions[0].inverter")
        for p in problems('[[actions]]\nat_s = 5\nkind = "operator"\ninverter = "paused"\n')
    )


def test_a_mode_the_served_csipaus_namespace_does_not_define_is_refused() -> None:
    """PROTOCOL.md §5: v1.2 (the default namespace) has no opModStorageTargetW; v1.3 storage has."""
    control = (
        '[[actions]]\nat_s = 0\nkind = "create_control"\nprogram = "p"\nstart_s = 0\n'
        "duration_s = 60\nmodes = { opModStorageTargetW = 100 }\n"
    )
    found = problems(
        '[[programs]]\nid = "p"\nprimacy = 1\ndefault = { opModStorageTargetW = 5 }\n' + control
    )
    assert found == [
        "programs[0].default.opModStorageTargetW: not an element of the CSIP-AUS namespace "
        "https://csipaus.org/ns this server serves (quirks.csipaus_ns)",
        "actions[0].modes.opModStorageTargetW: not an element of the CSIP-AUS namespace "
        "https://csipaus.org/ns this server serves (quirks.csipaus_ns)",
    ]
    storage = '[quirks]\ncsipaus_ns = "https://csipaus.org/ns/v1.3-beta/storage"\n'
    parse_scenario(storage + PROGRAM + control, source="t.toml")


def test_battery_sets_the_simulated_batterys_capacity_and_state_of_charge() -> None:
    scenario = parse_scenario(
        PROGRAM + "[battery]\ncapacity_wh = 3000\ninitial_soc_pct = 80\nsoc_min_pct = 5\n"
    )
    assert scenario.battery.overrides() == {
        "capacity_wh": 3000,
        "initial_soc_pct": 80,
        "soc_min_pct": 5,
    }
    assert parse_scenario(PROGRAM).battery.overrides() == {}


@pytest.mark.parametrize(
    ("battery", "problem"),
    [
        ("capacity_wh = 0", "battery.capacity_wh: must be positive"),
        ("capacity_wh = -5", "battery.capacity_wh: must be a finite number ≥ 0"),
        ("initial_soc_pct = 3", "soc_min_pct (5) ≤ initial_soc_pct (3)"),
        ("soc_max_pct = 120\ninitial_soc_pct = 110", "soc_max_pct (120) ≤ 100"),
        ("soc_min_pct = 60", "soc_min_pct (60) ≤ initial_soc_pct (50)"),
    ],
)
def test_a_battery_that_cannot_be_is_refused_naming_the_key(battery: str, problem: str) -> None:
    found = problems(PROGRAM + f"[battery]\n{battery}\n")
    assert any(problem in p for p in found), found


def test_a_storage_expectation_needs_a_window_left_after_its_grace() -> None:
    found = problems(
        PROGRAM + "[[expect.storage]]\nfrom_s = 10\nto_s = 20\nder_w = 0\ngrace_s = 15\n"
    )
    assert found == ["expect.storage[0].grace_s: 15 s leaves nothing of the window"]
