"""Diagnostics (sep2gw.diagnostics, sep2gw.record_log; issue 20 point 1): global logging options
on every command, a log file, JSON lines carrying the event log's seq."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from events.memory_store import MemoryEventStore
from events.registry import CATALOGUE
from sep2gw.cli import main
from sep2gw.config import ConfigError, parse_config
from sep2gw.diagnostics import (
    RECORD_LOGGER,
    LoggingOptions,
    LoggingOptionsError,
    configure,
    split_options,
)
from sep2gw.simserver import demo_scenario
from tests.sep2gw.world import CONFIG, World, deadline


@pytest.fixture(autouse=True)
def _default_logging() -> Iterator[None]:
    yield
    configure(LoggingOptions())  # the next test starts from the default handlers


def test_logging_options_are_taken_from_anywhere_on_the_line() -> None:
    options, rest = split_options(
        ["log", "-v", "tail", "x.sep2gw", "--log-level=info", "-n", "3", "--log-file", "d.log"]
    )
    assert rest == ["log", "tail", "x.sep2gw", "-n", "3"]
    assert options.level == "info" and options.file == Path("d.log") and options.shift == 1
    assert options.resolved_level() == logging.DEBUG  # info, one step more
    assert split_options(["-qq", "status", "x"])[0].resolved_level() == logging.CRITICAL
    assert split_options(["sim", "--log", "w.sep2gw"])[1] == ["sim", "--log", "w.sep2gw"]
    assert split_options(["sim", "--", "-v"])[1] == ["sim", "--", "-v"]
    with pytest.raises(LoggingOptionsError, match="--log-file needs a value"):
        split_options(["status", "--log-file"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--log-level", "loud", "status", "x"], "--log-level 'loud': choose from debug, info"),
        (["status", "x", "--log-format", "xml"], "--log-format 'xml': choose text or json"),
        (["status", "x", "--log-file", "/nonexistent/dir/d.log"], "--log-file /nonexistent"),
    ],
)
def test_a_bad_logging_option_is_bad_input_naming_it(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_json_lines_carry_the_records_seq(tmp_path: Path) -> None:
    out = tmp_path / "d.log"
    configure(LoggingOptions(level="info", file=out, format="json"))
    logging.getLogger(RECORD_LOGGER).warning(
        "COMMS LOST", extra={"seq": 42, "event": "comms.lost.v1", "stream": "controls"}
    )
    logging.getLogger("actors.link").info("plain %s", "message")
    first, second = (json.loads(line) for line in out.read_text().splitlines())
    assert first["seq"] == 42 and first["event"] == "comms.lost.v1" and first["level"] == "WARNING"
    assert first["logger"] == RECORD_LOGGER and first["message"] == "COMMS LOST"
    assert first["ts"].endswith("Z")
    assert "seq" not in second and second["message"] == "plain message"


def test_the_logging_section_is_validated(tmp_path: Path) -> None:
    text = CONFIG.format(pin="", extra='[logging]\nlevel = "info"\nformat = "json"')
    config = parse_config(text, source="s", base_dir=tmp_path, check_files=False)
    assert config.logging.level == "info" and config.logging.format == "json"
    with pytest.raises(ConfigError, match="logging.level"):
        parse_config(
            CONFIG.format(pin="", extra='[logging]\nlevel = "loud"'),
            source="s",
            base_dir=tmp_path,
            check_files=False,
        )


async def test_a_running_gateway_logs_its_records_with_their_seq(
    pki: Path, autojump_clock: trio.abc.Clock, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The file gets every record message at its level (JSON, with seq); a console that prints
    the timeline does not get them twice."""
    out = tmp_path / "gateway.jsonl"
    configure(LoggingOptions(level="info", file=out, format="json"), console_records=False)
    store = MemoryEventStore(CATALOGUE)
    with deadline(3600):
        await World(pki, demo_scenario(), store).run(300)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    about_records = [line for line in lines if "seq" in line]
    assert about_records, lines[:5]
    by_seq = {r.seq: r for r in store.read()}
    for line in about_records:
        assert CATALOGUE.tag(by_seq[line["seq"]].event) == line["event"]
    messages = [line["message"] for line in about_records]
    assert any(m.startswith("LIMITS IN FORCE") for m in messages)
    assert any(m.startswith("gateway started") for m in messages)
    assert not any(line["level"] == "DEBUG" for line in lines)  # info: no per-sample detail
    assert any(line["logger"] == "sep2gw.gateway" for line in lines)
    assert "LIMITS IN FORCE" not in capsys.readouterr().err
