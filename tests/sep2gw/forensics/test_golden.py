"""replay and explain on simulated worlds' logs print exactly the checked-in expected text.

To change an expected output on purpose: ``python3 -m tests.sep2gw.forensics.golden --write``,
then review the diff."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sep2gw.forensics.golden import CASES, GOLDEN_DIR, render


@pytest.fixture(scope="module")
def rendered(world_logs: dict[str, Path]) -> dict[str, str]:
    base = next(iter(world_logs.values())).parent
    return render(base)


@pytest.mark.parametrize("name", sorted(CASES))
def test_output_matches_the_checked_in_golden(name: str, rendered: dict[str, str]) -> None:
    expected = (GOLDEN_DIR / f"{name}.txt").read_text(encoding="utf-8")
    assert rendered[name] == expected, (
        f"{name} differs from {GOLDEN_DIR / name}.txt; if the change is intended run "
        "python3 -m tests.sep2gw.forensics.golden --write and review the diff"
    )


def test_every_golden_file_belongs_to_a_case() -> None:
    files = {p.name.removesuffix(".txt") for p in GOLDEN_DIR.glob("*.txt")}
    assert files == set(CASES)


def test_goldens_cover_supersession_cancel_comms_loss_and_restart() -> None:
    text = "".join((GOLDEN_DIR / f"{name}.txt").read_text(encoding="utf-8") for name in CASES)
    for needle in (
        "superseded by control 000000B1 on target_w",
        "CANCELLED",
        "COMMS LOST",
        "queued until they return",
        "gateway restarted",
        "randomisation drawn",
        "adjacent:",
        "storage_target_w 4000 W held at",
    ):
        assert needle in text
