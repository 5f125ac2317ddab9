"""What the metrics endpoint costs a running gateway (issue 20 acceptance: <= 1 % CPU at 1 Hz).

A gateway runs with ``/metrics`` on loopback (``sep2gw run --config``, in a process of its own,
against the simulated server and battery in two others, as ``footprint.py`` runs it). Once it has
registered and polled, its CPU time (``/proc/<pid>/stat``) is measured over alternating windows:
without scrapes, then with ``/metrics`` and ``/health`` scraped once a second, and so on. The
figure judged is the added CPU: the mean rate of the scraped windows minus that of the others, in
per cent of one core. Alternating windows of one process keep the gateway's own activity (samples,
polls, posts) in both. Beside it, the in-process cost of rendering one scrape, for scale.

    python3 benchmarks/metrics_bench.py [--window 30] [--pairs 2]
    → last line: {"cpu_idle_pct": ..., "cpu_scraped_pct": ..., "added_pct": ..., ...}; exit 1 above 1 %
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from footprint import (  # this folder is on the path when run as a script
    CONFIG,
    ENV,
    ROOT,
    cpu_s,
    free_port,
    registered_and_polled,
    scrape,
    sep2gw,
)

ADDED_TARGET_PCT = 1.0


def render_cost_ms(repeat: int = 2000) -> float:
    """CPU milliseconds to render one /metrics and one /health from a full status, in-process."""
    from actors.log_writer import LogWriterStatistics
    from events.der_model import ControlSettings
    from sep2gw.metrics import render_metrics
    from sep2gw.status import BatteryWrite, Measured, SiteStatus, Stamped, health

    status = SiteStatus(
        seq=10_000,
        started=Stamped(what="x", at_s=1.0, seq=1),
        registration="registered",
        comms="up",
        limits=ControlSettings(export_limit_w=1500, import_limit_w=5000, connect=True),
        limit_sources={"export_limit_w": "control:A1", "import_limit_w": "default:D1"},
        last_poll=Stamped(what="/derp/1/derc", at_s=2.0, seq=9),
        last_post=Stamped(what="/mup/1", at_s=2.0, seq=9),
        last_write=BatteryWrite(at_s=3.0, seq=10, wrote=True, setpoint_w=-1200),
        measured=Measured(at_s=3.0, seq=10, site_w=-1500, der_w=-1200, soc_pct=55),
    )
    stats = LogWriterStatistics(commits=1, events=1, largest_group=1, failed_requests=0)
    start = time.process_time()
    for _ in range(repeat):
        render_metrics(status, now=4.0, identity={"version": "x"}, log=stats)
        json.dumps(health(status, now=4.0)[1])
    return (time.process_time() - start) / repeat * 1000


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--window", type=int, default=30, help="seconds per window")
    parser.add_argument("--pairs", type=int, default=2, help="how many (idle, scraped) pairs")
    args = parser.parse_args()
    idle: list[float] = []
    scraped: list[float] = []
    scrapes = 0
    with tempfile.TemporaryDirectory(prefix="sep2gw-metrics-") as tmp:
        work = Path(tmp)
        subprocess.run(
            [sys.executable, "-m", "sep2gw", "certs", "init", str(work / "pki")],
            env=ENV,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        http, modbus, metrics = free_port(), free_port(), free_port()
        config = CONFIG.format(http=http, modbus=modbus)
        config += f'[metrics]\nlisten = "127.0.0.1:{metrics}"\n'
        (work / "site.toml").write_text(config)
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        server = sep2gw(
            "sim-server", "--port", str(http), "--pki", str(work / "pki"), "--quiet", **quiet
        )
        battery = sep2gw("sim-battery", "--port", str(modbus), **quiet)
        time.sleep(2)
        gateway = sep2gw("run", "--config", str(work / "site.toml"), "--quiet", **quiet)
        try:
            waited = 0
            while not registered_and_polled(work / "site.sep2gw"):
                time.sleep(1)
                waited += 1
                if gateway.poll() is not None or waited > 120:
                    print("the gateway did not register and poll within 120 s", file=sys.stderr)
                    return 1
            scrape(metrics)  # the first scrape imports the renderer: not in any window
            time.sleep(5)
            for _ in range(args.pairs):
                for window, scraping in ((idle, False), (scraped, True)):
                    cpu0, wall0 = cpu_s(gateway.pid), time.monotonic()
                    for _ in range(args.window):
                        time.sleep(1)
                        if scraping:
                            scrape(metrics)
                            scrapes += 1
                    if gateway.poll() is not None:
                        raise RuntimeError(f"the gateway exited with {gateway.returncode}")
                    window.append((cpu_s(gateway.pid) - cpu0) / (time.monotonic() - wall0) * 100)
        finally:
            for proc in (gateway, server, battery):
                proc.terminate()
            for proc in (gateway, server, battery):
                proc.wait(timeout=20)
    added = statistics.mean(scraped) - statistics.mean(idle)
    render_ms = render_cost_ms()
    print(f"gateway CPU: idle windows {idle}, scraped windows {scraped} (% of one core)")
    print(f"render of one /metrics + /health in-process: {render_ms:.3f} ms CPU")
    print(
        json.dumps(
            {
                "cpu_idle_pct": round(statistics.mean(idle), 3),
                "cpu_scraped_pct": round(statistics.mean(scraped), 3),
                "added_pct": round(added, 3),
                "scrapes": scrapes,
                "render_ms": round(render_ms, 4),
                "target_pct": ADDED_TARGET_PCT,
            }
        )
    )
    return 0 if added <= ADDED_TARGET_PCT else 1


if __name__ == "__main__":
    raise SystemExit(main())
