"""A violating world kept as an artefact (issue 21): everything ``sep2gw sim`` needs to run the
same world again on any machine, and the log it produced to compare with.

``<out>/violations/<scenario>-seed-<seed>/`` holds ``scenario.toml``, ``pki/`` (the world's
identity: the LFDI in the log is the hash of its certificate), ``world.sep2gw`` (the log, when the
world ran to its end) and ``world.json`` (seed, scenario, code version, head hash, what broke, and
the command that reproduces it: its summary prints the same head hash).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
from pathlib import Path

import msgspec

from sep2gw.swarm.work import Pki, WorldOutcome, WorldTask

__all__ = ["ARTEFACT_SCHEMA", "reproduce_words", "save_violation"]

ARTEFACT_SCHEMA = "sep2gw.swarm.violation.v1"


def reproduce_words(folder: Path, seed: int) -> list[str]:
    return [
        "python3",
        "-m",
        "sep2gw",
        "sim",
        str(folder / "scenario.toml"),
        "--seed",
        str(seed),
        "--site",
        str(folder),
        "--log",
        str(folder / "reproduced.sep2gw"),
    ]


def save_violation(
    out: Path, task: WorldTask, pki: Pki, outcome: WorldOutcome | None, why: str | None = None
) -> Path:
    """Keep one world in ``out/violations/``; ``outcome`` is ``None`` for a world that raised
    (``why``). Written aside and renamed: a folder there is complete."""
    name = outcome.scenario if outcome is not None else f"world-{task.index}"
    slug = "".join(c if c.isalnum() else "-" for c in name).strip("-") or "world"
    target = out / "violations" / f"{slug}-seed-{task.seed}"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        (partial / "scenario.toml").write_text(task.scenario_toml)
        (partial / "pki").mkdir()
        for file_name, data in pki:
            (partial / "pki" / file_name).write_bytes(data)
        if outcome is not None and outcome.log is not None:
            (partial / "world.sep2gw").write_bytes(outcome.log)
        record = {
            "schema": ARTEFACT_SCHEMA,
            "scenario": name,
            "family": task.family,
            "seed": task.seed,
            "code_version": task.code_version,
            "head_hash": None if outcome is None else outcome.head_hash,
            "records": None if outcome is None else outcome.records,
            "faults": [] if outcome is None else list(outcome.faults),
            "findings": [] if outcome is None else msgspec.to_builtins(list(outcome.findings)),
            "raised": why,
            "worker": None if outcome is None else outcome.worker,
            "reproduce": shlex.join(reproduce_words(target, task.seed)),
        }
        (partial / "world.json").write_text(json.dumps(record, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)  # the same world again (same seed, same scenario): replaced
        os.replace(partial, target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return target
