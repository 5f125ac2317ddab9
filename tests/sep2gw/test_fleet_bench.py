"""The fleet benchmark's harness at CI size (issue 19 acceptance): a few sites for a short window
give the JSON keys the issue names, with measurements that are not zero; the CPU is charged to the
gateway by its task tree. No timed assertion: the figures are the benchmark's to report."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import trio
import trio.testing

from events.base import Event
from events.control_events import ControlScheduled, LimitsInForceChanged
from events.der_model import ControlSettings, Mode
from events.envelope import Recorded
from events.hardware_events import LimitsApplied

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fleet_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "fleet_bench", ROOT / "benchmarks" / "fleet_bench.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fleet_bench"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("store", ["sqlite", "memory"])
def test_a_few_sites_give_every_figure_the_issue_names(
    fleet_bench: ModuleType, tmp_path: Path, store: str
) -> None:
    result = fleet_bench.run_sites(
        3, minutes=1.0, warmup_minutes=1.0, seed=7, store=store, work=tmp_path
    )
    for opened in result.stores:
        getattr(opened, "close", lambda: None)()
    figures = fleet_bench.figures(result, 12.5, trace_memory=False)
    assert {
        "sites",
        "cpu_pct_of_one_core",
        "rss_mb",
        "first_receipt_10k_controls_ms",
        "notification_to_limit_ms",
    } <= set(figures)
    assert figures["sites"] == 3
    assert figures["cpu_pct_of_one_core"] > 0
    assert figures["rss_mb"] > 0
    assert figures["first_receipt_10k_controls_ms"] == 12.5
    # Not measured here (its own test below runs the notifying fleet).
    assert figures["notification_to_limit_ms"] is None and figures["notification_sites"] == 0
    # The window saw every site sample at 1 Hz (a record a second at least) and the gateway's
    # tasks were the ones charged: the hardware actor runs in each site's gateway task tree.
    assert result.records >= 3 * 60
    assert result.cpu.gateway_steps > 0 and result.cpu.simulation_steps > 0
    assert any("HardwareActor" in name for name in result.cpu.by_task)
    assert not any("SimUtilityServer" in name for name in result.cpu.by_task)
    assert result.cpu.device_model_s > 0
    # The collector's share is measured apart, with the start-up heap frozen as a fleet does.
    assert figures["gc_frozen"] is True and figures["gc_s"] >= 0
    assert sum(result.gc.collections) > 0
    lines = fleet_bench.report_lines(result, 12.5, trace_memory=False)
    assert "per site" in lines


def test_a_task_below_a_gateway_task_is_the_gateways(fleet_bench: ModuleType) -> None:
    meter = fleet_bench.TaskCpu()
    seen: dict[str, bool] = {}

    async def leaf(label: str) -> None:
        seen[label] = meter.is_gateway(trio.lowlevel.current_task())

    async def gateway() -> None:
        async with trio.open_nursery() as inner:
            inner.start_soon(leaf, "below the gateway")

    async def main() -> None:
        async with trio.open_nursery() as world:
            world.start_soon(gateway, name=f"{fleet_bench.GATEWAY_TASK}0")
            world.start_soon(leaf, "beside it")

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert seen == {"below the gateway": True, "beside it": False}


def test_memory_is_grouped_by_our_innermost_package(fleet_bench: ModuleType) -> None:
    group = fleet_bench._group_of_file
    assert group(str(ROOT / "actors" / "hardware.py")) == "actors"
    assert group(str(ROOT / "sep2gw" / "simserver" / "server.py")) == "sep2gw.simserver"
    assert group(str(ROOT / "sep2gw" / "sim" / "battery.py")) == "sep2gw.sim"
    assert group(str(ROOT / "sep2gw" / "simreport.py")) == "sep2gw"
    assert group("/usr/lib/python3.11/asyncio/events.py") is None


def test_notification_to_limit_runs_from_the_notification_to_the_batterys_write(
    fleet_bench: ModuleType,
) -> None:
    """The stand-in notification record is a ``control.scheduled`` one (C2's records replace it at
    merge); the figure runs to the first write after the control was put in force, not to a write
    before that (the default's closed loop) nor to the in-force record itself."""
    mrid = "F1".ljust(32, "0")
    limits = ControlSettings(export_limit_w=1500.0)
    events: list[tuple[float, Event]] = [
        (10.0, ControlScheduled(mrid=mrid, effective_start_s=10, effective_end_s=310, at_s=10.0)),
        (
            10.1,
            LimitsApplied(at_s=10.1, settings=ControlSettings(export_limit_w=5000.0), applied=()),
        ),
        (
            10.2,
            LimitsInForceChanged(
                settings=limits,
                sources={Mode.EXPORT_LIMIT_W: mrid},
                next_change_s=310,
                ramps_ended=(),
                at_s=10.2,
            ),
        ),
        (10.45, LimitsApplied(at_s=10.45, settings=limits, applied=(Mode.EXPORT_LIMIT_W,))),
        (11.45, LimitsApplied(at_s=11.45, settings=limits, applied=(Mode.EXPORT_LIMIT_W,))),
    ]
    records = [
        Recorded(seq, "s", seq, at, at, event, b"")
        for seq, (at, event) in enumerate(events, start=1)
    ]

    def notified(record: Recorded) -> str | None:
        event = record.event
        return event.mrid if isinstance(event, ControlScheduled) else None

    delays = fleet_bench.notification_to_limit_ms(records, notified)
    assert delays == [pytest.approx(450.0)]
    assert fleet_bench.notification_to_limit_ms(records, lambda record: None) == []


def test_the_fleet_harness_charges_each_sites_gateway_in_one_fleet(
    fleet_bench: ModuleType, tmp_path: Path
) -> None:
    """The default harness is aggregator mode itself: one Fleet, one simulated server; each site's
    gateway runs in its ``site <name>`` task and is charged there, the server is not."""
    result = fleet_bench.run_fleet(3, minutes=1.0, warmup_minutes=1.0, seed=7, work=tmp_path)
    for opened in result.stores:
        getattr(opened, "close", lambda: None)()
    figures = fleet_bench.figures(result, None, trace_memory=False)
    assert figures["harness"] == "fleet" and figures["sites"] == 3
    assert figures["cpu_pct_of_one_core"] > 0 and figures["rss_mb"] > 0
    assert result.records >= 3 * 60  # every site sampled at 1 Hz through the window
    assert any("HardwareActor" in name for name in result.cpu.by_task)
    assert not any("SimUtilityServer" in name for name in result.cpu.by_task)
    assert result.cpu.device_model_s > 0
    assert "aggregator-mode fleet" in fleet_bench.report_lines(result, None, trace_memory=False)


def test_a_notified_control_reaches_every_sites_battery_within_a_control_period(
    fleet_bench: ModuleType, tmp_path: Path
) -> None:
    """Measured on the gateways' own records: from the notification's arrival to the battery
    write. With polls 300 s apart, only the notification can bring the control this early."""
    delays = fleet_bench.measure_notification_to_limit(tmp_path, sites=3, seed=5)
    assert len(delays) == 3  # one figure per site: each was notified and wrote the control
    assert all(0 <= ms <= fleet_bench.CONTROL_PERIOD_MS for ms in delays), delays


def test_the_fleet_harness_reports_the_collector_settings_of_its_window(
    fleet_bench: ModuleType, tmp_path: Path
) -> None:
    """As ``sep2gw run`` settles a fleet's collector (sep2gw.collector), so does the harness, and
    the JSON says the thresholds the window ran with; the process's are restored after."""
    import gc

    before = gc.get_threshold()
    result = fleet_bench.run_fleet(2, minutes=0.5, warmup_minutes=0.5, seed=3, work=tmp_path)
    for opened in result.stores:
        getattr(opened, "close", lambda: None)()
    figures = fleet_bench.figures(result, None, trace_memory=False)
    assert figures["gc_thresholds"][0] == fleet_bench.settle_for_a_fleet.__globals__[
        "young_threshold"
    ](2)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
