"""The scenario library: every file parses, is named after itself, names its rules and family,
expects outcomes, and together the library covers PROTOCOL.md §4 rules 1-16, discovery (§2) and
telemetry (issue 8, scope 2)."""

from __future__ import annotations

from collections import Counter

import pytest

from sep2gw.simserver import (
    BatteryFault,
    CancelControl,
    ChangeControl,
    ClockSkew,
    CrashGateway,
    DeleteControl,
    FailRequests,
    LoseMirrors,
    ModbusTimeout,
    RemoveProgram,
    ScenarioError,
    SetPin,
    SetPollRate,
    SetPostRate,
    SlowResponses,
    TlsFail,
)
from sep2gw.simserver.audit import AUDITS
from sep2gw.simserver.library import (
    CONFORMANCE,
    FAMILIES,
    FLEET_FAMILY,
    LibraryScenario,
    library,
    library_files,
    parse_header,
)

LIBRARY = library()


def kinds(entries: list[LibraryScenario]) -> set[type]:
    return {type(action) for entry in entries for action in entry.scenario.actions}


def test_the_library_holds_at_least_25_scenarios_shipped_as_package_data() -> None:
    assert len(LIBRARY) >= 25
    assert all(f.name.endswith(".toml") for f in library_files())


def test_scenario_names_are_unique_and_match_their_files() -> None:
    names = [entry.scenario.name for entry in LIBRARY]
    assert len(set(names)) == len(names)
    assert all(entry.file == f"{entry.scenario.name}.toml" for entry in LIBRARY)


def test_every_scenario_names_its_rules_and_expects_outcomes() -> None:
    for entry in LIBRARY:
        assert entry.rules, entry.file
        assert entry.scenario.expect is not None, f"{entry.file} has no [expect] section"


def test_the_library_covers_every_event_rule_of_protocol_section_4() -> None:
    named = set().union(*(entry.rules for entry in LIBRARY))
    assert {f"4.{n}" for n in range(1, 17)} <= named


def test_the_library_covers_discovery_and_telemetry() -> None:
    named = set().union(*(entry.rules for entry in LIBRARY))
    assert {"2.1", "2.2", "2.3", "2.4", "2.6", "2.7", "2.8"} <= named
    quirks = [entry.scenario.quirks for entry in LIBRARY]
    assert any(q.path_style == "envoy" for q in quirks)
    assert any(q.one_item_default_paging for q in quirks)
    assert any(q.drop_hex_leading_zeros for q in quirks)
    assert any(q.status_superseded for q in quirks) and any(q.status_completed for q in quirks)
    used = kinds(LIBRARY)
    assert {SetPin, SetPostRate, SetPollRate, LoseMirrors, FailRequests} <= used
    telemetry = [e for e in LIBRARY if e.scenario.expect and e.scenario.expect.telemetry]
    assert len(telemetry) >= 4


def test_the_library_covers_each_server_status_and_every_fault_kind() -> None:
    cancels = [
        action
        for entry in LIBRARY
        for action in entry.scenario.actions
        if isinstance(action, CancelControl)
    ]
    assert {c.randomized for c in cancels} == {False, True}  # status 2 and 3
    used = kinds(LIBRARY)
    assert {ChangeControl, DeleteControl, RemoveProgram} <= used  # rules 1 and 4
    faults = {SlowResponses, TlsFail, ClockSkew, ModbusTimeout, BatteryFault, CrashGateway}
    assert faults <= used


def test_each_family_has_scenarios_and_every_scenario_a_family() -> None:
    counts = Counter(entry.family for entry in LIBRARY)
    assert set(counts) == {*FAMILIES, FLEET_FAMILY}
    assert all(counts[family] >= 2 for family in (*FAMILIES, FLEET_FAMILY))


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("# family: events\n", "header: no '# rules:' line naming the PROTOCOL.md rules covered"),
        ("# rules: 4.2\n", "header: no '# family:' line"),
        (
            "# rules: 4.17\n# family: events\n",
            "header rules: '4.17' is not a rule of PROTOCOL.md §4",
        ),
        ("# rules: 4.2 rule9\n# family: events\n", "header rules: 'rule9' is not a rule"),
        ("# rules: 4.2\n# family: misc\n", "header family: 'misc' is not one of events"),
    ],
)
def test_a_header_without_rules_or_family_is_refused_by_name(header: str, problem: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_header(header, source="x.toml")
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_the_conformance_family_names_one_intent_per_scenario_and_runs_every_audit() -> None:
    """Issue 14: the family walks the client procedures' intents, each checked by the server."""
    family = [entry for entry in LIBRARY if entry.family == CONFORMANCE]
    intents = [entry.intent for entry in family]
    assert len(family) >= 12 and all(intents) and len(set(intents)) == len(intents)
    assert all(entry.file.startswith("conformance_") for entry in family)
    audited = {
        name
        for entry in family
        if entry.scenario.expect is not None and entry.scenario.expect.audit is not None
        for name in AUDITS
        if getattr(entry.scenario.expect.audit, name) is not None
    }
    assert audited == set(AUDITS)
    assert any(e.scenario.expect is not None and e.scenario.expect.der_status for e in family)
