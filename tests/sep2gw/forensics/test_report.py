"""The HTML report is one self-contained file that parses, charts the log and states its integrity."""

from __future__ import annotations

import contextlib
import io
import re
import sqlite3
from html.parser import HTMLParser
from pathlib import Path

from sep2gw.cli import main


class _Strict(HTMLParser):
    """Collects tags and checks every opened element of the chart and tables is closed."""

    VOID = frozenset({"meta", "br", "line", "rect", "circle", "path", "polyline"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1:]}>"
        self.stack.pop()


def _report(log: Path, out: Path, *extra: str) -> str:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(["report", str(log), "-o", str(out), *extra])
    assert code == 0
    return out.read_text(encoding="utf-8")


def test_the_report_needs_no_network_and_parses(
    world_logs: dict[str, Path], tmp_path: Path
) -> None:
    html = _report(world_logs["demo"], tmp_path / "r.html", "--tz", "Australia/Adelaide")
    lowered = html.lower()
    for forbidden in (
        "http://",
        "https://",
        "src=",
        "href=",
        "url(",
        "@import",
        "<script",
        "<link",
    ):
        assert forbidden not in lowered, forbidden
    parser = _Strict()
    parser.feed(html)
    parser.close()
    assert parser.stack == ["html"] or parser.stack == []
    assert parser.tags.count("svg") == 1 and "polyline" in parser.tags


def test_the_report_charts_bands_markers_and_tables(
    world_logs: dict[str, Path], tmp_path: Path
) -> None:
    html = _report(world_logs["demo"], tmp_path / "r.html")
    # A1, A2, B1, A3 each supplied a mode in force: each has a band in that mode's lane
    suppliers = set(re.findall(r"class='band' data-mode='[^']+' data-source='control:(\w+)'", html))
    assert sorted(m[-2:] for m in suppliers) == ["A1", "A2", "A3", "B1"]
    assert html.count("class='response'") == 12
    assert "cmd-export_limit_w" in html and "cmd-import_limit_w" in html
    for table in ("verdicts", "identity", "controls", "responses", "compliance"):
        assert f"<table id='{table}'>" in html
    assert "The log verified" in html and "class='bad'" not in html
    assert "more than <b>50 W</b>" in html  # the stated tolerance


def test_a_forced_report_says_the_log_did_not_verify(
    world_logs: dict[str, Path], tmp_path: Path
) -> None:
    log = tmp_path / "tampered.sep2gw"
    log.write_bytes(world_logs["demo"].read_bytes())
    with sqlite3.connect(log) as db:
        db.execute("UPDATE events SET server_time = server_time + 1 WHERE seq = 200")
    html = _report(log, tmp_path / "r.html", "--force")
    assert "THE LOG DID NOT VERIFY" in html and "record 200" in html
    assert "The log verified" not in html


def test_comms_loss_is_marked_on_the_chart(world_logs: dict[str, Path], tmp_path: Path) -> None:
    assert "class='comms-down'" in _report(world_logs["comms"], tmp_path / "c.html")
    assert "class='comms-down'" not in _report(world_logs["demo"], tmp_path / "d.html")


def test_issue18_the_report_names_the_csipaus_version_spoken_and_each_discovery_fallback(
    world_logs: dict[str, Path], tmp_path: Path
) -> None:
    html = _report(world_logs["version_unsupported_only"], tmp_path / "v.html")
    assert "<ul id='csipaus-versions'>" in html
    assert "CSIP-AUS <b>v1.3</b> (<code>csipaus.org/ns/v1.3</code>)" in html
    assert "offers only csipaus.org/ns/v9.9" in html  # the fallback, shown as a server fault
    assert "CSIP-AUS discovery fell back" in html
    assert "https://" not in html.lower()
