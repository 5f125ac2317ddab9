"""The golden cases: which command runs on which world's log, and how its output is normalised.

The expected outputs live in ``golden/`` and change only when someone runs, on purpose::

    python3 -m tests.sep2gw.forensics.golden --write

(then reviews the diff and commits it). The tests never write them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
import tempfile
from pathlib import Path
from typing import Final

from sep2gw.cli import main
from tests.sep2gw.forensics.worlds import NEGOTIATION, fleet_dir, logs

__all__ = ["CASES", "GOLDEN_DIR", "normalise", "render"]

GOLDEN_DIR: Final = Path(__file__).with_name("golden")

#: name -> (world, command arguments after the log path)
CASES: Final[dict[str, tuple[str, list[str]]]] = {
    # supersession (A2 by B1 on target_w) and cancel (A3), in Adelaide local time
    "demo.replay": ("demo", ["replay", "--tz", "Australia/Adelaide", "--telemetry-every", "60"]),
    "demo.replay-at": ("demo", ["replay", "--at", "2025-11-26T00:05:40Z"]),
    "demo.replay-window": (
        "demo",
        ["replay", "--from", "2025-11-26T10:33:00", "--to", "1764115410", "--tz", "+10:30"],
    ),
    "demo.explain-A2": ("demo", ["explain", "A2"]),
    "demo.explain-B1": ("demo", ["explain", "DE0000000000000000000000000000B1"]),
    "demo.explain-A3": ("demo", ["explain", "a3"]),
    "demo.explain-at": ("demo", ["explain", "--at", "2025-11-26T00:03:30Z"]),
    # comms loss across a hand-over between a randomised control and its adjacent follower
    "comms.replay": ("comms", ["replay"]),
    "comms.explain-1": ("comms", ["explain", "C0000000000000000000000000000001"]),
    "comms.explain-2": ("comms", ["explain", "C0000000000000000000000000000002"]),
    "comms.explain-at": ("comms", ["explain", "--at", "2025-11-26T00:03:30Z"]),
    # the gateway stopped and started again inside a control
    "restart.replay": ("restart", ["replay", "--at", "2025-11-26T12:02:31Z"]),
    "restart.explain-D1": ("restart", ["explain", "00000001"]),
    "restart.explain-at": ("restart", ["explain", "--at", "2025-11-26T12:03:00Z"]),
    # CSIP-AUS version negotiation (issue 18): the first 30 s (discovery, its fallback if any, the
    # version learned) and the state inside the control, with the version in force
    **{
        f"{world}.{view}": (world, args)
        for world in NEGOTIATION
        for view, args in (
            ("replay-start", ["replay", "--to", "1764115230"]),
            ("explain-at", ["explain", "--at", "2025-11-26T00:03:00Z"]),
        )
    },
    # IEEE 2030.5 Pricing: a revised retail price superseding the first, a feed-in rate beside it
    "pricing.replay": ("pricing", ["replay", "--telemetry-every", "600"]),
    "pricing.explain-at": ("pricing", ["explain", "--at", "2025-11-26T00:03:20Z"]),
    "pricing.explain-7A1": ("pricing", ["explain", "7A1"]),
    # the compressed pricing day: at 17:30 "day time" the cancelled critical peak never applied
    "pricing_day.explain-at": ("pricing_day", ["explain", "--at", "2025-11-26T00:17:30Z"]),
    "pricing_day.replay-at": ("pricing_day", ["replay", "--at", "2025-11-26T00:17:30Z"]),
    "pricing_day.explain-7106": ("pricing_day", ["explain", "7106"]),
    # CSIP-AUS v1.3 storage: a 4 kW storage target held back by a 1.5 kW export limit
    "storage.replay": ("storage", ["replay", "--telemetry-every", "60"]),
    "storage.explain-5A": ("storage", ["explain", "5A"]),
    "storage.explain-E1": ("storage", ["explain", "E1"]),
    "storage.explain-at": ("storage", ["explain", "--at", "2025-11-26T00:04:00Z"]),
    # a fleet's log directory (issue 19 point 4): the summary, which sites were compliant when;
    # at +11:55 one site's log crosses midnight; status a line per site; one site needed: refused
    "fleet.report": ("fleet", ["report", "--tz", "Australia/Adelaide"]),
    "fleet.report-two-days": ("fleet", ["report", "--tz", "+11:55"]),
    "fleet.report-json": ("fleet", ["report", "--json"]),
    "fleet.status": ("fleet", ["status"]),
    "fleet.replay-refused": ("fleet", ["replay"]),
    "fleet.explain-site": ("fleet", ["explain", "A2", "--site", "depot-north"]),
}

_HEAD = re.compile(r"\(head [0-9a-f]{64}\)")
#: The LFDI (whole, or its first 16 digits as the fleet summary shows it) and the SFDI.
_LFDI = re.compile(r"(LFDI |\"lfdi\": \")[0-9A-F]{16,40}")
_SFDI = re.compile(r"\"sfdi\": \d+")


def normalise(text: str, log: Path) -> str:
    """What differs between two runs of the same world: the log's path, and the head hash and the
    LFDI/SFDI (the site identity, hence the LFDI in each Response record, is minted afresh per test
    session)."""
    text = _HEAD.sub("(head <hash>)", text.replace(str(log), "<log>"))
    return _SFDI.sub('"sfdi": <sfdi>', _LFDI.sub(r"\1<lfdi>", text))


def render(base: Path) -> dict[str, str]:
    """Every case's normalised output (the exit code is part of it)."""
    paths = logs(base)
    paths["fleet"] = fleet_dir(base)
    out: dict[str, str] = {}
    for name, (world, args) in CASES.items():
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main([args[0], str(paths[world]), *args[1:]])
        text = stdout.getvalue() + (f"[stderr]\n{stderr.getvalue()}" if stderr.getvalue() else "")
        out[name] = normalise(text, paths[world]) + f"[exit {code}]\n"
    return out


def _write() -> None:
    GOLDEN_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in render(Path(tmp)).items():
            (GOLDEN_DIR / f"{name}.txt").write_text(text, encoding="utf-8")
            print(f"wrote {GOLDEN_DIR / name}.txt", file=sys.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="regenerate the expected outputs")
    if parser.parse_args().write:
        _write()
    else:
        parser.print_help()
