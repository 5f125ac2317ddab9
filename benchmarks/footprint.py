"""Memory and start-up of a running gateway (issue 7 targets: RSS <= 60 MB, import <= 0.5 s).

The gateway runs in a process of its own (``sep2gw run --config``) against the simulated utility
server and battery in two other processes, over loopback mutual TLS and Modbus TCP, so the figure is
the gateway's alone. RSS is sampled once a second from the moment the gateway's log shows it registered (the walk's last
step done) and polled; the figure judged is the peak, the steady state (median of the last ten
samples) is printed beside it. A gateway that never gets there is a failure, not a figure. Import time is the best of five fresh interpreters importing what ``sep2gw run`` imports:
``sep2gw.cli`` (which loads only the command being run), ``sep2gw.commands.run``, ``sep2gw.gateway``.

    python3 benchmarks/footprint.py [--seconds 40] [--metrics]
    → last line: {"rss_mb": ..., "rss_steady_mb": ..., "import_s": ...}; exit 1 when a target is missed

``--metrics``: the gateway serves ``/metrics`` and ``/health`` on loopback (issue 20) and both are
scraped once a second while RSS is sampled: the budget holds with the endpoint in use.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
CONFIG = """
[server]
url = "https://127.0.0.1:{http}"
pin = 111115
[tls]
certificate = "pki/device.pem"
key = "pki/device.key"
ca = "pki/ca.pem"
[battery]
driver = "sunspec"
host = "127.0.0.1"
port = {modbus}
[log]
path = "site.sep2gw"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


RSS_TARGET_MB = 60.0
IMPORT_TARGET_S = 0.5


def registered_and_polled(log: Path) -> bool:
    """The gateway's own log says the walk finished and a poll came after it."""
    if not log.exists():
        return False
    try:
        with sqlite3.connect(f"file:{log}?mode=ro", uri=True) as conn:
            done = conn.execute(
                "SELECT min(seq) FROM events WHERE type = 'registration.step_done.v1' "
                "AND json_extract(body, '$.step') = 'mirror'"
            ).fetchone()[0]
            polled = (
                done is not None
                and conn.execute(
                    "SELECT count(*) FROM events WHERE type = 'poll.done.v1' AND seq > ?", (done,)
                ).fetchone()[0]
            )
    except sqlite3.Error:
        return False  # not created yet, or locked for a moment
    return bool(polled)


def scrape(port: int) -> int:
    """GET /metrics and /health once; the bytes read (raises if either fails)."""
    size = 0
    for path in ("/metrics", "/health"):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
                size += len(reply.read())
        except urllib.error.HTTPError as exc:  # /health: 503 while not healthy is an answer
            if exc.code != 503:
                raise
            size += len(exc.read())
    return size


def cpu_s(pid: int) -> float:
    """User + system CPU time the process used so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def sep2gw(*args: str, **kwargs: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "sep2gw", *args], env=ENV, cwd=ROOT, **kwargs)  # type: ignore[call-overload]


def import_time() -> float:
    code = (
        "import time; t = time.perf_counter(); "
        "import sep2gw.cli, sep2gw.commands.run, sep2gw.gateway; print(time.perf_counter() - t)"
    )
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", code],
                env=ENV,
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for _ in range(5)
    ]
    return min(runs)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=40, help="how long to sample RSS")
    parser.add_argument(
        "--metrics", action="store_true", help="serve /metrics and scrape it once a second"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sep2gw-footprint-") as tmp:
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
        if args.metrics:
            config += f'[metrics]\nlisten = "127.0.0.1:{metrics}"\n'
        (work / "site.toml").write_text(config)
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        server = sep2gw(
            "sim-server", "--port", str(http), "--pki", str(work / "pki"), "--quiet", **quiet
        )
        battery = sep2gw("sim-battery", "--port", str(modbus), **quiet)
        time.sleep(2)
        gateway = sep2gw("run", "--config", str(work / "site.toml"), "--quiet", **quiet)
        samples: list[float] = []
        try:
            waited = 0
            while not registered_and_polled(work / "site.sep2gw"):
                time.sleep(1)
                waited += 1
                if gateway.poll() is not None or waited > 120:
                    print("the gateway did not register and poll within 120 s", file=sys.stderr)
                    return 1
            for _ in range(args.seconds):
                time.sleep(1)
                if gateway.poll() is not None:
                    raise RuntimeError(f"the gateway exited with {gateway.returncode}")
                if args.metrics:
                    scrape(metrics)
                samples.append(rss_mb(gateway.pid))
        finally:
            for proc in (gateway, server, battery):
                proc.terminate()
            for proc in (gateway, server, battery):
                proc.wait(timeout=20)
        steady = statistics.median(samples[-10:])
        print(
            f"gateway RSS: first {samples[0]:.1f} MB, peak {max(samples):.1f} MB, steady {steady:.1f} MB"
        )
    imported = import_time()
    print(f"import sep2gw.cli + commands.run + gateway: {imported:.3f} s (best of 5)")
    peak = max(samples)
    print(
        json.dumps(
            {
                "rss_mb": round(peak, 1),
                "rss_steady_mb": round(steady, 1),
                "import_s": round(imported, 3),
                "metrics": args.metrics,
            }
        )
    )
    return 0 if peak <= RSS_TARGET_MB and imported <= IMPORT_TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
