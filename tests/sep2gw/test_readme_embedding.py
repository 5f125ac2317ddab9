"""Issue 20 point 6: the README's embedding example is real. Its Python block runs as written (one
change: its hour of "the runtime's own work" is shortened to a few seconds) under ``asyncio.run``
with its ``tags.toml`` block as the tag map, against a utility server that is not there: the
gateway starts, reads the PLC's tags through the TagDriver, and stops cleanly when the block
exits, its log verifying."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from events.hardware_events import TelemetrySampled
from events.registry import CATALOGUE
from events.runtime_events import GatewayStarted, GatewayStopped
from events.sqlite_store import SqliteEventStore
from sep2gw.cli import main

ROOT = Path(__file__).resolve().parents[2]
WAIT = "await asyncio.sleep(3600)"

SITE = """
[server]
url = "https://127.0.0.1:9"
pin = 111115
[tls]
certificate = "pki/device.pem"
key = "pki/device.key"
ca = "pki/ca.pem"
[battery]
driver = "tags"
tag_map = "tags.toml"
[rates]
telemetry_sample_s = 0.5
[log]
path = "site.sep2gw"
"""


def _section_blocks(heading: str) -> dict[str, str]:
    """The first fenced block of each language in the README section ``heading``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index(f"## {heading}\n") :]
    section = section[: section.index("\n## ", 1)]
    blocks: dict[str, str] = {}
    for lang, body in re.findall(r"```(\w+)\n(.*?)```", section, re.S):
        blocks.setdefault(lang, body)
    return blocks


def test_the_readme_embedding_example_runs_as_written(tmp_path: Path) -> None:
    blocks = _section_blocks("Embedding it in a gateway runtime")
    code = blocks["python"]
    assert code.count(WAIT) == 1, "the example's wait moved: update this test"
    (tmp_path / "example.py").write_text(code.replace(WAIT, "await asyncio.sleep(3)"))
    (tmp_path / "tags.toml").write_text(blocks["toml"])
    (tmp_path / "site.toml").write_text(SITE)
    assert main(["certs", "init", str(tmp_path / "pki")]) == 0
    done = subprocess.run(
        [sys.executable, "example.py"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with SqliteEventStore(tmp_path / "site.sep2gw", CATALOGUE, readonly=True) as log:
        assert log.verify().ok
        events = [r.event for r in log.read()]
    assert isinstance(events[0], GatewayStarted)
    assert any(isinstance(e, GatewayStopped) for e in events)
    samples = [e for e in events if isinstance(e, TelemetrySampled)]
    assert samples, "the gateway never read the PLC's tags"
    # The PLC's values, through the map's units: 0.4 kW exported at the meter, 55 % charged.
    assert samples[0].site_w == 400.0 and samples[0].soc_pct == 55.0
