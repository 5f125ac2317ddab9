"""Issue 20 acceptance: the README's commands work as written on a fresh clone.

Every ```sh / ```bash block of README.md is run, line by line, through ``bash`` in a fresh copy of
the repository's tracked files (a fresh clone of the working tree), with a temporary ``HOME``, on
loopback, each command under a short timeout and required to exit 0. ``sep2gw`` and ``python3``
on the ``PATH`` are the test's interpreter running the copy (``python -m sep2gw``), so the lines
run exactly as a user types them after the Quick start's install.

Not run, and said so (never silently):

- a block preceded by ``<!-- readme-test: needs-site (why) -->``: it needs a real site (a utility
  server, a battery on the site's network, root and systemd); each is reported as a skip with
  its reason;
- the commands of :data:`NOT_RUN`, each with its reason (the installs: installing would change
  the interpreter the suite runs in, and ``tests/test_install_pins.py`` checks what they install).

Two commands are run bounded, as :data:`BOUNDED` says: the Quick start's demo gets ``--duration``
(it ends by itself, after its whole ~8-minute schedule at 10x: ~50 s). Servers (``sim-server``,
``sim-battery``) run in the background until the block's next server or its end, then get SIGTERM,
their normal stop (exit 0 required). The log block runs in the demo's work folder, its log as
``site.sep2gw``, its configuration as ``site.toml`` and a copy as the ``.untrusted-…`` file that
``log salvage`` reads: the site files a reader of that section has.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
NEEDS_SITE = re.compile(r"<!--\s*readme-test:\s*needs-site\s*\((?P<why>[^)]*)\)\s*-->")

#: Commands not run, with the reason, exactly as the README writes them.
NOT_RUN: dict[str, str] = {
    "python3 -m pip install -c constraints.txt -e .": (
        "installing would change the interpreter the suite runs in; tests/test_install_pins.py "
        "checks the constraints it installs"
    ),
    "python3 -m pip install -c constraints.txt -e '.[test]'": (
        "installing would change the interpreter the suite runs in (see above)"
    ),
    "python3 -m pytest": "the test suite itself, of which this test is part",
}
#: Commands run with a bound added, and why.
BOUNDED: dict[str, str] = {
    # The demo stops by itself after its schedule (~8 minutes at 10x); 60 s of demo time (6 s of
    # wall time) shows registration, a control received and the battery's first writes.
    "python3 -m sep2gw run": "python3 -m sep2gw run --duration 60",
}
#: Commands that serve until stopped.
SERVERS = ("sep2gw sim-server", "sep2gw sim-battery")
COMMAND_TIMEOUT_S = 240.0
SERVER_READY_S = 60.0


@dataclass(frozen=True)
class Block:
    line: int  # README line of the opening fence
    heading: str
    text: str
    needs_site: str | None

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-")
        return f"L{self.line}-{slug}"

    def commands(self) -> list[str]:
        return [line for line in self.text.splitlines() if line.strip()]


def readme_blocks() -> list[Block]:
    lines = README.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    heading = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        fence = re.fullmatch(r"```(\w*)\s*", line)
        if fence:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            if fence[1] in ("sh", "bash"):
                before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
                mark = NEEDS_SITE.fullmatch(before.strip())
                blocks.append(
                    Block(
                        line=i + 1,
                        heading=heading,
                        text="\n".join(lines[i + 1 : end]),
                        needs_site=mark["why"] if mark else None,
                    )
                )
            i = end
        i += 1
    return blocks


BLOCKS = readme_blocks()


def _split(command: str) -> list[str]:
    """A line's ``&&``-joined commands, its comment removed (the README comments every line)."""
    code = re.split(r"\s+#\s", command, maxsplit=1)[0].strip()
    return [part.strip() for part in code.split("&&")]


@dataclass
class Clone:
    root: Path
    bin: Path
    home: Path

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.home),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(self.root),
            "PYTHONUNBUFFERED": "1",
        }

    def workdir(self, where: Path) -> Path:
        """A folder seeing the clone's files (examples/, benchmarks/, constraints.txt) by
        symbolic links, for a block that writes files of its own."""
        where.mkdir(parents=True)
        for entry in self.root.iterdir():
            (where / entry.name).symlink_to(entry)
        return where


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Clone:
    root = tmp_path_factory.mktemp("clone")
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
    ).stdout.split(b"\0")
    for name in filter(None, tracked):
        source = ROOT / os.fsdecode(name)
        if source.is_file():  # a file deleted in the working tree is not in a clone of it
            target = root / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    bin_dir = tmp_path_factory.mktemp("bin")
    for name, command in (("sep2gw", "-m sep2gw "), ("python3", "")):
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec {sys.executable} {command}"$@"\n')
        shim.chmod(0o755)
    return Clone(root=root, bin=bin_dir, home=tmp_path_factory.mktemp("home"))


class Runner:
    """Runs one block's commands in ``cwd``; a server stays up until the next one or the end."""

    def __init__(self, clone: Clone, cwd: Path) -> None:
        self.clone, self.cwd = clone, cwd
        self.server: subprocess.Popen[str] | None = None
        self.server_command = ""
        self.transcript: list[str] = []

    def run(self, block: Block) -> None:
        try:
            for line in block.commands():
                for command in _split(line):
                    if command in NOT_RUN:
                        self.transcript.append(f"(not run: {command}: {NOT_RUN[command]})")
                        continue
                    command = BOUNDED.get(command, command)
                    if command.startswith(SERVERS):
                        self._serve(command)
                    else:
                        self._run(command)
        finally:
            self._stop_server()

    def _run(self, command: str) -> None:
        started = time.monotonic()
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=self.cwd,
            env=self.clone.env(),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )
        took = time.monotonic() - started
        self.transcript.append(f"$ {command}  # exit {done.returncode}, {took:.1f} s")
        assert done.returncode == 0, (
            f"README command failed (exit {done.returncode}): {command}\n"
            f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
        )
        for text in (done.stdout, done.stderr):
            assert "Traceback" not in text, f"{command}:\n{text[-3000:]}"

    def _serve(self, command: str) -> None:
        self._stop_server()
        server = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=self.cwd,
            env=self.clone.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.server, self.server_command = server, command
        assert server.stdout is not None
        ready, _, _ = select.select([server.stdout], [], [], SERVER_READY_S)
        first = server.stdout.readline() if ready else ""
        assert first and server.poll() is None, (
            f"README server did not start: {command}\n{first}"
            f"{server.stdout.read() if server.poll() is not None else ''}"
        )
        self.transcript.append(f"$ {command}  # serving: {first.strip()}")

    def _stop_server(self) -> None:
        server, self.server = self.server, None
        if server is None:
            return
        server.send_signal(signal.SIGTERM)  # the servers' normal stop
        try:
            out, _ = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            out, _ = server.communicate()
            raise AssertionError(f"{self.server_command} did not stop on SIGTERM") from None
        assert server.returncode == 0, (
            f"{self.server_command} exited {server.returncode} on SIGTERM:\n{out[-3000:]}"
        )


def _site_folder(clone: Clone, demo: Path, where: Path) -> Path:
    """The demo's work folder as a site: its log as site.sep2gw, its configuration as site.toml,
    and a copy of the log named as a log the gateway set aside (for ``log salvage``)."""
    shutil.copytree(demo, where)
    logs = sorted(where.glob("demo-*.sep2gw"))
    assert logs, f"the demo wrote no log in {demo}"
    for name in ("site.sep2gw", "site.sep2gw.untrusted-20251126T031500Z"):
        for suffix in ("", "-wal"):  # the log with its WAL, as SQLite keeps it
            source = logs[-1].with_name(logs[-1].name + suffix)
            if source.exists():
                shutil.copy(source, where / (name + suffix))
    shutil.copy(where / "demo.toml", where / "site.toml")
    return where


def test_the_readme_starts_with_a_two_command_quick_start() -> None:
    text = README.read_text(encoding="utf-8")
    first = BLOCKS[0]
    assert text.index("## Quick start") < text.index("```") and first.heading == "Quick start"
    assert len(first.commands()) == 2 and first.needs_site is None


def test_every_not_run_or_bounded_command_is_in_the_readme() -> None:
    """The lists above cannot keep a command the README no longer has (or hide a new one)."""
    commands = {part for block in BLOCKS for line in block.commands() for part in _split(line)}
    assert set(NOT_RUN) <= commands and set(BOUNDED) <= commands


@pytest.fixture(scope="module")
def quick_start(clone: Clone) -> Iterator[Runner]:
    runner = Runner(clone, clone.root)
    runner.run(BLOCKS[0])
    yield runner


def test_quick_start_demo_runs_on_a_fresh_clone(quick_start: Runner, clone: Clone) -> None:
    demo = clone.root / "sep2gw-demo"
    assert sorted(demo.glob("demo-*.sep2gw")), quick_start.transcript


def _cases() -> list[object]:
    cases: list[object] = []
    for block in BLOCKS[1:]:
        marks = []
        if block.needs_site is not None:
            marks.append(pytest.mark.skip(reason=f"README marks it needs-site: {block.needs_site}"))
        cases.append(pytest.param(block, id=block.id, marks=marks))
    return cases


@pytest.mark.parametrize("block", _cases())
def test_readme_block_runs_as_written(
    block: Block, clone: Clone, quick_start: Runner, tmp_path: Path
) -> None:
    if block.heading == "Reading an event log":
        cwd = _site_folder(clone, clone.root / "sep2gw-demo", tmp_path / "site")
    else:
        cwd = clone.workdir(tmp_path / "work")
    runner = Runner(clone, cwd)
    runner.run(block)
    assert runner.transcript
