"""The fault plan of the simulated world (issue 8): each fault kind parses, is checked, and does
something the gateway must handle; the continuous monitor, failure reports and ``sep2gw sim``."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

import sep2gw.world as world_module
from events.control_events import (
    CommsLost,
    CommsRestored,
    ControlRejected,
    LimitsInForceChanged,
)
from events.hardware_events import AlarmsChanged, DeviceUnreachable
from events.registration_events import TimeOffsetLearned
from events.runtime_events import GatewayStarted
from sep2gw.cli import main
from sep2gw.invariants import Monitor
from sep2gw.simreport import failure_report, scenario_toml
from sep2gw.simserver import ScenarioError, SimClock, parse_scenario
from sep2gw.world import WorldResult, check, run_world

ROOT = Path(__file__).resolve().parents[2]

BASE = """
name = "{name}"
[server]
poll_rate_s = 10
post_rate_s = 60
[[programs]]
id = "net"
primacy = 10
default = {{ opModExpLimW = 5000 }}
[[actions]]
at_s = 0
kind = "create_control"
mrid = "C1"
program = "net"
start_s = 60
duration_s = 120
modes = {{ opModExpLimW = 1500 }}
[[actions]]
at_s = 0
kind = "create_control"
mrid = "C2"
program = "net"
start_s = 200
duration_s = 60
modes = {{ opModTargetW = 1000 }}
"""


def scenario(name: str, faults: str = "") -> str:
    return BASE.format(name=name) + faults


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("faults")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["certs", "init", str(folder / "pki")]) == 0
    return folder


def events_of(result: WorldResult, kind: type) -> list[object]:
    return [rec.event for rec in result.store.read() if isinstance(rec.event, kind)]


def world(site: Path, text: str, seed: int = 3) -> WorldResult:
    return run_world(parse_scenario(text, source="test"), seed=seed, site=site)


# ------------------------------------------------------------------------------------ parsing
@pytest.mark.parametrize(
    ("fault", "key"),
    [
        ('kind = "slow"\nat_s = 1\nduration_s = 5', "actions[2].delay_s"),
        ('kind = "slow"\nat_s = 1\nduration_s = 5\ndelay_s = 0', "actions[2].delay_s"),
        ('kind = "tls_fail"\nat_s = 1\nduration_s = -5', "actions[2].duration_s"),
        ('kind = "modbus_timeout"\nat_s = 1\nduration_s = 0', "actions[2].duration_s"),
        ('kind = "battery_fault"\nat_s = 1\nduration_s = 5\nsevere = true', "actions[2].severe"),
        ('kind = "clock_skew"\nat_s = 1\nseconds = 0', "actions[2].seconds"),
        ('kind = "crash"\nat_s = 1\ndown_s = -1', "actions[2].down_s"),
        ('kind = "crash"\nat_s = -1', "actions[2].at_s"),
    ],
)
def test_bad_fault_actions_are_refused_naming_the_key(fault: str, key: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(scenario("bad", f"[[actions]]\n{fault}\n"), source="bad")
    assert any(problem.startswith(key) for problem in caught.value.problems), caught.value.problems


def test_fault_windows_count_in_the_scenario_duration_and_survive_a_toml_round_trip() -> None:
    text = scenario(
        "windows",
        '[[actions]]\nkind = "modbus_timeout"\nat_s = 250\nduration_s = 100\n'
        '[[actions]]\nkind = "crash"\nat_s = 300\ndown_s = 90\n'
        '[[actions]]\nkind = "slow"\nat_s = 10\nduration_s = 5\ndelay_s = 2\nmethods = ["POST"]\n',
    )
    parsed = parse_scenario(text, source="windows")
    assert parsed.duration_s() == 390
    assert parse_scenario(scenario_toml(parsed), source="round trip") == parsed


# ------------------------------------------------------------------------------ each fault acts
def test_crash_mid_event_gives_every_response_once_and_the_same_decisions(site: Path) -> None:
    calm = world(site, scenario("calm"))
    crashed = world(
        site,
        scenario(
            "crashes",
            '[[actions]]\nkind = "crash"\nat_s = 90\ndown_s = 5\n'
            '[[actions]]\nkind = "crash"\nat_s = 200\n',
        ),
    )
    assert crashed.boots == 3 and len(events_of(crashed, GatewayStarted)) == 3
    assert check(crashed) == []
    for mrid in ("C1", "C2"):
        assert crashed.server.response_statuses(mrid) == [1, 2, 3]
        assert crashed.server.response_statuses(mrid) == calm.server.response_statuses(mrid)

    def decisions(result: WorldResult) -> list[object]:
        out: list[object] = []
        for event in events_of(result, LimitsInForceChanged):
            assert isinstance(event, LimitsInForceChanged)
            if not out or out[-1] != event.settings:
                out.append(event.settings)
        return out

    assert decisions(crashed) == decisions(calm)


def test_modbus_timeout_makes_the_battery_unreachable_then_recovers(site: Path) -> None:
    result = world(
        site,
        scenario("modbus", '[[actions]]\nkind = "modbus_timeout"\nat_s = 100\nduration_s = 30\n'),
    )
    assert check(result) == []
    unreachable = events_of(result, DeviceUnreachable)
    assert unreachable and all(
        isinstance(e, DeviceUnreachable) and 100 <= e.at_s - result.server.start < 140
        for e in unreachable
    )
    assert result.server.response_statuses("C2") == [1, 2, 3]  # the battery came back


def test_battery_fault_rejects_the_control_that_starts_during_it(site: Path) -> None:
    result = world(
        site, scenario("trip", '[[actions]]\nkind = "battery_fault"\nat_s = 190\nduration_s = 40\n')
    )
    assert check(result) == []
    assert result.server.response_statuses("C2") == [1, 252]
    assert [e.mrid for e in events_of(result, ControlRejected)] == [  # type: ignore[attr-defined]
        "000000000000000000000000000000C2"
    ]
    raised = [e for e in events_of(result, AlarmsChanged) if e.raised]  # type: ignore[attr-defined]
    assert raised  # the trip is recorded, and reported to the utility as a LogEvent (§2.9)
    assert [q.status for q in result.server.posts_to("/edev/1/lel")][:1] == [201]


def test_tls_failures_and_slow_answers_are_retried_and_recovered_from(site: Path) -> None:
    result = world(
        site,
        scenario(
            "network",
            '[[actions]]\nkind = "tls_fail"\nat_s = 55\nduration_s = 30\n'
            '[[actions]]\nkind = "slow"\nat_s = 150\nduration_s = 30\ndelay_s = 45\n',
        ),
    )
    assert check(result) == []
    assert result.server.tls_refused > 0
    assert events_of(result, CommsLost) and events_of(result, CommsRestored)
    for mrid in ("C1", "C2"):
        assert result.server.response_statuses(mrid) == [1, 2, 3]


def test_clock_skew_steps_the_utility_clock_and_the_gateway_follows_it(site: Path) -> None:
    result = world(
        site, scenario("skew", '[[actions]]\nkind = "clock_skew"\nat_s = 100\nseconds = 40\n')
    )
    assert check(result) == []
    clock = result.server.clock
    assert isinstance(clock, SimClock) and clock.skew_s == 40
    assert result.battery is not None
    # The battery's physics ran on the device's clock, 40 s behind the utility's by the end.
    assert result.server.requests[-1].time - result.battery.now_s == pytest.approx(40, abs=10)
    # The gateway re-read Time at its pollRate and took the step, so C2 started at 200 s on the
    # utility's clock (not 40 s late, at the device's 200 s).
    offsets = [e.offset_s for e in events_of(result, TimeOffsetLearned)]  # type: ignore[attr-defined]
    assert len(offsets) == 2 and offsets[1] == pytest.approx(40, abs=1.5)
    (started,) = [q for q in result.server.responses_for("C2") if q.body.status == 2]  # type: ignore[union-attr]
    assert 200 <= started.time - result.server.start < 203


def test_an_active_control_comes_back_into_force_after_the_server_clock_steps_back(
    site: Path,
) -> None:
    """Regression (found by the swarm): the utility's clock stepped back past the start of a running
    control and the gateway followed it; nothing re-arbitrated at the step (the old limits stayed
    recorded), and nothing woke the controls actor at the control's start again (an active event's
    only deadline is its end), so the default stayed in force until some poll re-arbitrated."""
    text = scenario("back", '[[actions]]\nkind = "clock_skew"\nat_s = 100\nseconds = -90\n')
    result = world(site, text.replace("poll_rate_s = 10", "poll_rate_s = 30"))
    assert check(result) == []
    start = result.server.start
    changes = [
        (rec.server_time - start, rec.event.settings.export_limit_w)
        for rec in result.store.read()
        if isinstance(rec.event, LimitsInForceChanged)
    ]
    # The step back is re-arbitrated at once (before C1's start again: the default), and C1
    # comes back into force at its start.
    back = next(i for i in range(1, len(changes)) if changes[i][0] < changes[i - 1][0])
    assert changes[back][1] == 5000 and changes[back][0] < 60, changes
    assert changes[back + 1][1] == 1500 and 60 <= changes[back + 1][0] < 61, changes


def test_a_retried_response_is_never_overtaken_by_a_later_status(site: Path) -> None:
    """Regression (found by the swarm): Response 2 failed with a 503 and waited for its retry
    while the control completed; 3 went out first, so the utility saw 1, 3, 2."""
    text = """
name = "overtaking"
[server]
poll_rate_s = 10
[[programs]]
id = "net"
primacy = 10
[[actions]]
at_s = 0
kind = "create_control"
mrid = "D1"
program = "net"
start_s = 60
duration_s = 10
modes = { opModExpLimW = 1000 }
[[actions]]
at_s = 59
kind = "fail"
duration_s = 3
methods = ["POST"]
paths = ["/rsps"]
"""
    result = world(site, text)
    assert result.server.response_statuses("D1") == [1, 2, 3]
    assert check(result) == []


def test_a_changed_registration_poll_rate_is_followed(site: Path) -> None:
    """Regression (found by the swarm): Registration carries its own pollRate, but a re-read
    Registration's rate was ignored, so /rg stayed on the walk's rate for good (over-polling)."""
    result = world(
        site,
        scenario(
            "reg rate",
            '[[actions]]\nkind = "set_poll_rate"\nat_s = 100\nseconds = 30\nresource = "reg"\n',
        ),
    )
    assert check(result) == []
    times = [q.time - result.server.start for q in result.server.polls_of("/edev/1/rg")]
    later = [b - a for a, b in zip(times, times[1:], strict=False) if a >= 130]
    assert later and all(gap >= 30 for gap in later), times


# ------------------------------------------------------------------ monitor, reports, command
class _StrictMonitor(Monitor):
    """Flags the first LimitsInForceChanged, to exercise the stop and the report."""

    def on_records(self, records: list) -> None:  # type: ignore[type-arg]
        for record in records:
            if (
                isinstance(record.event, LimitsInForceChanged)
                and record.event.settings.export_limit_w == 1500
            ):
                self._violate("limits in force come from arbitration", "test", record.server_time)
        super().on_records(records)


def test_the_monitor_stops_the_world_at_the_first_violation_and_reports_it(site: Path) -> None:
    parsed = parse_scenario(scenario("strict"), source="strict")
    result = run_world(parsed, seed=4, site=site, monitor=_StrictMonitor(parsed))
    assert result.violation is not None
    assert result.violation.at_s == pytest.approx(result.server.start + 60, abs=1)
    assert result.store.head().seq < 200  # stopped, not run to the end
    report = failure_report(result, result.violation, scenario_path=Path("x.toml"))
    assert "INVARIANT VIOLATED: limits in force come from arbitration" in report
    assert "python3 -m sep2gw sim x.toml --seed 4" in report
    assert "LIMITS IN FORCE" in report  # the log excerpt around it


def test_sim_command_summarises_and_exits_1_with_a_report_on_a_violation(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.toml"
    path.write_text(scenario("cli"))
    log = tmp_path / "out.sep2gw"
    assert main(["sim", str(path), "--seed", "2", "--site", str(site), "--log", str(log)]) == 0
    out = capsys.readouterr()
    assert "C1=[1, 2, 3]" in out.out and "all invariants held" in out.out
    assert "(sim time)" in out.err  # the progress bar
    assert log.is_file()
    assert main(["log", "verify", str(log)]) == 0
    capsys.readouterr()
    monkeypatch.setattr(world_module, "Monitor", _StrictMonitor)
    assert main(["sim", str(path), "--seed", "2", "--site", str(site), "--quiet"]) == 1
    out = capsys.readouterr()
    assert "INVARIANT VIOLATED" in out.out
    assert f"python3 -m sep2gw sim {path} --seed 2 --site {site}" in out.out


FAMILY = """
name = "fault family"
[server]
poll_rate_s = 10
post_rate_s = 60
[[programs]]
id = "net"
primacy = 10
default = {{ opModExpLimW = 4000 }}
[[programs]]
id = "retail"
primacy = 20
[[actions]]
at_s = 0
kind = "create_control"
mrid = "F1"
program = "retail"
start_s = 30
duration_s = 90
modes = {{ opModTargetW = 2000 }}
[[actions]]
at_s = 20
kind = "create_control"
mrid = "F2"
program = "net"
start_s = 60
duration_s = 60
modes = {{ opModExpLimW = 0 }}
[[actions]]
at_s = {fail_at}
kind = "fail"
duration_s = 20
reset = {reset}
[[actions]]
at_s = {crash_at}
kind = "crash"
down_s = {down}
[[actions]]
at_s = {modbus_at}
kind = "modbus_timeout"
duration_s = 15
[[actions]]
at_s = 100
kind = "clock_skew"
seconds = {skew}
"""


def family_member(seed: int) -> str:
    """A fault-heavy family: the same controls, faults moved and varied by the seed."""
    return FAMILY.format(
        fail_at=20 + seed * 7 % 100,
        reset=str(seed % 2 == 0).lower(),
        crash_at=40 + seed * 13 % 100,
        down=seed % 3 * 5,
        modbus_at=30 + seed * 11 % 90,
        skew=(-1) ** seed * (5 + seed % 4 * 10),
    )


def test_twenty_seeds_of_a_fault_heavy_family_keep_every_invariant(site: Path) -> None:
    for seed in range(20):
        result = world(site, family_member(seed), seed=seed)
        assert check(result) == [], (seed, check(result))
        assert result.boots >= 2
        for mrid in ("F1", "F2"):
            assert result.server.response_statuses(mrid)[0] == 1, (seed, mrid)


def test_same_seed_of_the_family_gives_a_byte_identical_log(site: Path) -> None:
    for seed in (3, 8):
        first = world(site, family_member(seed), seed=seed).log_bytes()
        again = world(site, family_member(seed), seed=seed).log_bytes()
        assert first == again, seed


def test_the_reproduce_command_gives_the_same_log_in_fresh_processes(
    site: Path, tmp_path: Path
) -> None:
    """``python3 -m sep2gw sim PATH --seed S`` is what a failure report prints: in two fresh
    processes with different string-hash seeds (set iteration order differs between them) a
    fault-heavy world with partial supersession and a crash gives the same log (head hash)."""
    path = tmp_path / "family.toml"
    path.write_text(
        family_member(5)
        + '[[actions]]\nat_s = 25\nkind = "create_control"\nmrid = "F3"\nprogram = "retail"\n'
        "start_s = 50\nduration_s = 60\nmodes = { opModTargetW = 1500, opModExpLimW = 800, "
        "opModImpLimW = 700 }\n"
    )
    command = [sys.executable, "-m", "sep2gw", "sim", str(path), "--seed", "5"]
    heads = []
    for hash_seed in ("1", "2"):
        proc = subprocess.run(
            [*command, "--site", str(site), "--quiet"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": hash_seed},
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "F3=[1" in proc.stdout  # the partially superseded control was answered
        heads.append(proc.stdout.split(" head ")[1].split("…")[0])
    assert heads[0] == heads[1]


def test_sim_command_refuses_bad_input_naming_it(
    site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(scenario("bad", '[[actions]]\nkind = "crash"\nat_s = 5\ndown_s = -3\n'))
    assert main(["sim", str(bad), "--site", str(site)]) == 2
    assert "actions[2].down_s" in capsys.readouterr().err
    assert main(["sim", "--seeds", "0", "--site", str(site)]) == 2
    assert "--seeds" in capsys.readouterr().err
    assert main(["sim", "--hours", "-1", "--site", str(site)]) == 2
    assert "--hours" in capsys.readouterr().err
    assert main(["sim", "--hours", "inf", "--site", str(site)]) == 2  # ran forever
    assert "--hours must be positive and finite, got inf" in capsys.readouterr().err
    missing = tmp_path / "no" / "such" / "folder" / "w.sep2gw"
    assert main(["sim", "--log", str(missing), "--site", str(site), "--quiet"]) == 2  # traceback
    assert f"cannot write the log: {missing.parent} is not a folder" in capsys.readouterr().err
