"""``sep2gw status LOG`` and the status fold it shares with the metrics endpoint and the
embedding API (``sep2gw.status``; issue 20 point 2)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from events.control_events import CommsLost, LimitsInForceChanged
from events.der_model import ControlSettings, Mode
from events.envelope import Append
from events.hardware_events import AlarmsChanged, LimitsApplied, TelemetrySampled
from events.log_lock import LogHolder, LogLock
from events.registration_events import (
    Polled,
    Posted,
    RegistrationHalted,
    RegistrationStarted,
    RegistrationStep,
    StepDone,
)
from events.registry import CATALOGUE
from events.runtime_events import GatewayStarted, GatewayStopped
from events.sqlite_store import SqliteEventStore
from sep2gw.cli import main
from sep2gw.status import SiteStatus, fold, health, problems, status_of_store

T0 = 1_790_000_000.0


def _write(path: Path, events: list[tuple[float, object]]) -> None:
    with SqliteEventStore(path, CATALOGUE) as store:
        for t, event in events:
            store.append(
                [Append(stream="test", events=(event,), server_time=t, monotonic=t - T0)]  # type: ignore[arg-type]
            )


def _a_day(stopped: bool) -> list[tuple[float, object]]:
    events: list[tuple[float, object]] = [
        (T0, GatewayStarted(software_version="9.9", rng_seed=1, clock_synced=False)),
        (T0 + 1, RegistrationStarted(at_s=T0 + 1)),
        (T0 + 2, StepDone(step=RegistrationStep.PROGRAMS, at_s=T0 + 2)),
        (T0 + 3, StepDone(step=RegistrationStep.MIRROR, at_s=T0 + 3)),
        (
            T0 + 4,
            LimitsInForceChanged(
                ramps_ended=(),
                settings=ControlSettings(export_limit_w=1500),
                sources={Mode.EXPORT_LIMIT_W: "control:A1"},
                next_change_s=None,
                at_s=T0 + 4,
            ),
        ),
        (T0 + 5, Polled(resource="/derp/1/derc", at_s=T0 + 5)),
        (T0 + 6, Posted(mirror="/mup/1", at_s=T0 + 6)),
        (
            T0 + 7,
            LimitsApplied(
                at_s=T0 + 7,
                settings=ControlSettings(export_limit_w=1500),
                applied=(Mode.EXPORT_LIMIT_W,),
                setpoint_w=-1200,
                wrote=True,
                site_limit_met=False,
            ),
        ),
        (T0 + 8, TelemetrySampled(at_s=T0 + 8, site_w=-1610.4, der_w=-1200, soc_pct=100)),
        (
            T0 + 9,
            AlarmsChanged(at_s=T0 + 9, raised=("overtemp",), cleared=(), active=("overtemp",)),
        ),
        (T0 + 10, CommsLost(at_s=T0 + 10, reason="connection refused")),
    ]
    if stopped:
        events.append((T0 + 11, GatewayStopped(reason="stopped")))
    return events


def test_the_fold_says_registration_comms_limits_last_poll_post_write_and_alarms() -> None:
    from events.envelope import Recorded

    records = [
        Recorded(seq=i, stream="t", version=i, server_time=t, monotonic=0, event=e, hash=b"")  # type: ignore[arg-type]
        for i, (t, e) in enumerate(_a_day(stopped=False), start=1)
    ]
    status = fold(records)
    assert status.registration == "registered"
    assert status.comms == "lost" and status.comms_reason == "connection refused"
    assert status.limits == ControlSettings(export_limit_w=1500)
    assert status.limit_sources == {"export_limit_w": "control:A1"}
    assert status.last_poll is not None and status.last_poll.seq == 6
    assert status.last_post is not None and status.last_post.what == "/mup/1"
    assert status.last_write is not None and status.last_write.site_limit_met is False
    assert status.alarms == ("overtemp",)
    assert problems(status) == ["comms lost: connection refused", "battery alarm: overtemp"]
    healthy, document = health(status, now=T0 + 20)
    assert not healthy and document["last_poll_age_s"] == 15.0


def test_a_new_process_is_registering_again_until_its_walk_is_done() -> None:
    """A restart rediscovers everything (§2): the last run's "registered" is not carried over."""
    from events.envelope import Recorded

    events = [
        *_a_day(stopped=True),
        (T0 + 20, GatewayStarted(software_version="9.9", rng_seed=1, clock_synced=False)),
    ]
    records = [
        Recorded(seq=i, stream="t", version=i, server_time=t, monotonic=0, event=e, hash=b"")  # type: ignore[arg-type]
        for i, (t, e) in enumerate(events, start=1)
    ]
    status = fold(records)
    assert status.registration == "not started" and status.comms == "unknown"
    assert status.stopped is None and status.last_poll is not None  # history kept
    halted = fold(
        [
            Recorded(
                seq=99,
                stream="t",
                version=1,
                server_time=T0 + 30,
                monotonic=0,
                event=RegistrationHalted(
                    step=RegistrationStep.REGISTRATION, reason="PIN mismatch", at_s=T0 + 30
                ),
                hash=b"",
            )
        ],
        status,
    )
    # The battery's alarms are the device's, not the process's: they stay until it clears them.
    assert problems(halted) == [
        "registration halted at registration: PIN mismatch",
        "battery alarm: overtemp",
    ]


def test_status_of_a_stopped_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "site.sep2gw"
    _write(log, _a_day(stopped=True))
    assert main(["status", str(log)]) == 0
    out = capsys.readouterr().out
    assert "not running; stopped at 2026-09-21T14:13:31Z: stopped" in out
    assert "registration  registered" in out
    assert "comms         LOST since 2026-09-21T14:13:30Z (connection refused)" in out
    assert "limits        export_limit_w=1500 W since" in out and "(from control:A1)" in out
    assert "last poll     2026-09-21T14:13:25Z /derp/1/derc (record 6)" in out
    assert "setpoint -1200 W written; site limit NOT met (record 8)" in out
    assert "measured      site -1610 W, battery -1200 W, SoC 100 %" in out
    assert "alarms        comms lost: connection refused" in out
    assert "battery alarm: overtemp" in out


def test_status_names_the_running_gateway_from_its_writer_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "site.sep2gw"
    _write(log, _a_day(stopped=False))
    lock = LogLock.acquire(log, LogHolder(pid=os.getpid(), started=T0, host="gw1"))
    try:
        assert main(["status", str(log), "--json"]) == 0
    finally:
        lock.release()
    document = json.loads(capsys.readouterr().out)
    assert document["running"] is True
    assert f"pid {os.getpid()} on gw1" in document["holder"]
    assert document["registration"] == "registered"
    assert document["last_write"]["setpoint_w"] == -1200
    assert document["problems"] == ["comms lost: connection refused", "battery alarm: overtemp"]


def test_status_says_a_gateway_without_a_stop_record_was_killed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "site.sep2gw"
    _write(log, _a_day(stopped=False))
    assert main(["status", str(log)]) == 0
    assert "NOT RUNNING, and the gateway started at 2026-09-21T14:13:20Z has no stop record" in (
        capsys.readouterr().out
    )


def test_status_reads_the_frequent_records_from_the_recent_end_only(tmp_path: Path) -> None:
    """A day's log: the newest sample is the one shown, whatever came hours before."""
    log = tmp_path / "site.sep2gw"
    _write(
        log,
        [
            (T0, GatewayStarted(software_version="9.9", rng_seed=1, clock_synced=False)),
            (T0 + 1, TelemetrySampled(at_s=T0 + 1, site_w=1.0)),
            (T0 + 7200, Polled(resource="/dcap", at_s=T0 + 7200)),
            (T0 + 7201, TelemetrySampled(at_s=T0 + 7201, site_w=2.0)),
        ],
    )
    with SqliteEventStore(log, CATALOGUE, readonly=True) as store:
        status = status_of_store(store)
    assert status.measured is not None and status.measured.site_w == 2.0
    assert status.seq == 4 and status.started is not None
    assert status_of_store_empty(tmp_path) == SiteStatus()


def status_of_store_empty(tmp_path: Path) -> SiteStatus:
    with SqliteEventStore(tmp_path / "empty.sep2gw", CATALOGUE) as store:
        return status_of_store(store)


def test_status_of_a_missing_file_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", str(tmp_path / "nope.sep2gw")]) == 2
    assert "no such log file" in capsys.readouterr().err


def test_status_check_is_a_health_check_running_and_no_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``status --check`` (the container's HEALTHCHECK): 0 only while a gateway holds the log and
    the log shows no problem; 3 otherwise (exits.CHECK_FAILED)."""
    healthy = tmp_path / "healthy.sep2gw"
    _write(healthy, _a_day(stopped=False)[:9])  # up to the write: no alarm, comms not lost
    troubled = tmp_path / "troubled.sep2gw"
    _write(troubled, _a_day(stopped=False))
    stopped = tmp_path / "stopped.sep2gw"
    _write(stopped, _a_day(stopped=True))
    assert main(["status", str(stopped), "--check"]) == 3
    assert main(["status", str(healthy), "--check"]) == 3  # nobody holds it: not running
    for log, expected in ((healthy, 0), (troubled, 3)):
        lock = LogLock.acquire(log, LogHolder(pid=os.getpid(), started=T0, host="gw1"))
        try:
            assert main(["status", str(log), "--check"]) == expected, log.name
            assert main(["status", str(log), "--check", "--json"]) == expected, log.name
        finally:
            lock.release()
    assert main(["status", str(healthy)]) == 0  # without --check: a report, never a verdict
    capsys.readouterr()
