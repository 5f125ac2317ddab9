"""Compliance numbers: recomputed here, independently, from the raw rows of the log."""

from __future__ import annotations

import contextlib
import io
import json
import re
import sqlite3
from pathlib import Path

import pytest

from events.control_events import LimitsInForceChanged
from events.der_model import ControlSettings, Mode
from events.hardware_events import TelemetrySampled
from events.memory_store import MemoryEventStore
from events.registry import CATALOGUE
from sep2gw.cli import main
from sep2gw.forensics import analyse
from sep2gw.forensics.compliance import (
    ComplianceSettings,
    compliance_series,
    summarise,
)

T0 = 1_764_115_200.0
TOLERANCE_W = 50.0


def _independent(path: Path) -> dict[tuple[str, str], tuple[float, float, int]]:
    """(mode, source) -> (seconds over, Wh over, samples), from the SQL rows and nothing else:
    each sample holds until the next (at most three median intervals); over means > tolerance."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT type, body FROM events ORDER BY seq").fetchall()
    assert not any(t == "control.ramp_planned.v1" for t, _ in rows), "ramps: extend this test"
    limits: list[tuple[float, dict[str, float], dict[str, str]]] = []
    samples: list[tuple[float, float | None, float | None]] = []
    for tag, body in rows:
        event = json.loads(body)
        if tag in ("control.limits_in_force.v1", "control.limits_in_force.v2"):
            limits.append((event["at_s"], event["settings"], event["sources"]))
        elif tag == "hardware.telemetry.v1":
            samples.append((event["at_s"], event.get("site_w"), event.get("der_w")))
    gaps = sorted(b[0] - a[0] for a, b in zip(samples, samples[1:], strict=False))
    cap = 3 * gaps[len(gaps) // 2]
    out: dict[tuple[str, str], tuple[float, float, int]] = {}
    for i, (t, site, der) in enumerate(samples):
        hold = min(samples[i + 1][0] - t, cap) if i + 1 < len(samples) else cap / 3
        current = [entry for entry in limits if entry[0] <= t]
        if not current:
            continue
        _, settings, sources = current[-1]
        for mode, measured in (
            ("export_limit_w", site),
            ("import_limit_w", None if site is None else -site),
            ("generation_limit_w", der),
            ("load_limit_w", None if der is None else -der),
        ):
            if mode not in settings or measured is None:
                continue
            excess = measured - settings[mode]
            seconds, wh, n = out.get((mode, sources[mode]), (0.0, 0.0, 0))
            if excess > TOLERANCE_W:
                seconds, wh = seconds + hold, wh + excess * hold / 3600
            out[(mode, sources[mode])] = (seconds, wh, n + 1)
    return out


_LIMIT_MODES = ("export_limit_w", "import_limit_w", "generation_limit_w", "load_limit_w")


@pytest.mark.parametrize("world", ["demo", "comms", "restart"])
def test_report_numbers_match_the_log(
    world: str, world_logs: dict[str, Path], tmp_path: Path
) -> None:
    expected = _independent(world_logs[world])
    html_path = tmp_path / "report.html"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["report", str(world_logs[world]), "-o", str(html_path)]) == 0
    html = html_path.read_text(encoding="utf-8")
    found = {}
    table = html.split("<table id='compliance'>", 1)[1].split("</table>", 1)[0]
    for mode, source, cells in re.findall(
        r"<tr data-mode='([^']+)' data-source='([^']+)' data-verdict='[^']+'>(.*?)</tr>", table
    ):
        if mode not in _LIMIT_MODES:
            continue  # targets and connect are judged too; this check recomputes the limits
        values = [v.replace(",", "") for v in re.findall(r"<td[^>]*>([^<]*)</td>", cells)]
        found[(mode, source)] = (float(values[5]), float(values[6]), int(values[4]))
    assert found.keys() == expected.keys()
    for key, (seconds, wh, n) in expected.items():
        assert found[key][2] == n
        assert found[key][0] == pytest.approx(seconds, abs=0.05), key
        assert found[key][1] == pytest.approx(wh, abs=0.0005), key
    assert any(wh > 0 for _, wh, _ in expected.values()) or world != "demo"


def _model(limits: ControlSettings, sites: list[float], ders: list[float]) -> MemoryEventStore:
    store = MemoryEventStore(CATALOGUE)
    sources = {mode: "control:AA" for mode in limits.modes()}
    store.append_events(
        "controls",
        [
            LimitsInForceChanged(
                settings=limits, sources=sources, next_change_s=None, ramps_ended=(), at_s=T0
            )
        ],
        server_time=T0,
        monotonic=0.0,
    )
    for i, (site, der) in enumerate(zip(sites, ders, strict=True)):
        t = T0 + 5 * (i + 1)
        store.append_events(
            "hardware",
            [TelemetrySampled(at_s=t, site_w=site, der_w=der)],
            server_time=t,
            monotonic=float(i),
        )
    return store


def test_export_and_import_limits_are_judged_on_the_site_meter() -> None:
    store = _model(
        ControlSettings(export_limit_w=1000.0, import_limit_w=2000.0),
        sites=[1200.0, 900.0, -2500.0, -1000.0],
        ders=[5000.0, 5000.0, -5000.0, -5000.0],
    )
    summary = {s.mode: s for s in summarise(compliance_series(analyse(store)))}
    export, imp = summary[Mode.EXPORT_LIMIT_W], summary[Mode.IMPORT_LIMIT_W]
    assert (export.seconds_over, export.energy_over_wh, export.max_over_w) == (
        5.0,
        pytest.approx(200 * 5 / 3600),
        200.0,
    )
    assert export.first_over_s == T0 + 5
    assert (imp.seconds_over, imp.energy_over_wh) == (5.0, pytest.approx(500 * 5 / 3600))
    assert export.seconds == imp.seconds == 20.0


def test_generation_and_load_limits_are_judged_on_the_der() -> None:
    store = _model(
        ControlSettings(generation_limit_w=3000.0, load_limit_w=1000.0),
        sites=[0.0, 0.0, 0.0],
        ders=[3500.0, -1600.0, 2000.0],
    )
    summary = {s.mode: s for s in summarise(compliance_series(analyse(store)))}
    assert summary[Mode.GENERATION_LIMIT_W].max_over_w == 500.0
    assert summary[Mode.LOAD_LIMIT_W].max_over_w == 600.0
    assert summary[Mode.GENERATION_LIMIT_W].seconds_over == 5.0


def test_an_excess_within_the_tolerance_is_not_over() -> None:
    store = _model(ControlSettings(export_limit_w=1000.0), sites=[1040.0, 1060.0], ders=[0, 0])
    model = analyse(store)
    strict = summarise(
        compliance_series(model, ComplianceSettings(tolerance_w=0)),
        ComplianceSettings(tolerance_w=0),
    )
    default = summarise(compliance_series(model))
    assert strict[0].seconds_over == 10.0
    assert default[0].seconds_over == 5.0
    assert default[0].energy_over_wh == pytest.approx(60 * 5 / 3600)  # the whole excess counts


def test_a_telemetry_gap_is_not_held_longer_than_three_sample_intervals() -> None:
    store = _model(ControlSettings(export_limit_w=0.0), sites=[500.0] * 4, ders=[0.0] * 4)
    t = T0 + 500
    store.append_events(
        "hardware", [TelemetrySampled(at_s=t, site_w=500.0)], server_time=t, monotonic=9.0
    )
    rows = list(compliance_series(analyse(store)))
    assert [r.hold_s for r in rows] == [5.0, 5.0, 5.0, 15.0, 5.0]


def test_a_grace_after_a_limit_change_is_not_counted_but_the_series_says_since_when() -> None:
    store = _model(ControlSettings(export_limit_w=1000.0), sites=[1500.0] * 4, ders=[0.0] * 4)
    model = analyse(store)
    rows = list(compliance_series(model))
    assert {r.export_since_s for r in rows} == {T0}
    samples_at = [r.at_s - T0 for r in rows]  # 5, 10, 15, 20 s after the change
    assert samples_at == [5, 10, 15, 20]
    graced = ComplianceSettings(grace_s=10)
    summary = summarise(compliance_series(model, graced), graced)[0]
    assert summary.seconds_over == 15.0  # the sample 5 s after the change is within the grace
    assert summary.first_over_s == T0 + 10
    assert summarise(rows)[0].seconds_over == 20.0
