"""A fresh install gets the versions the suite was tested with (README's commands, .ci/run)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    """The normalised project name of a PEP 508 requirement (PEP 503: case, '-', '_', '.')."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match[1]).lower()


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version.strip(), f"constraints.txt: {line!r} is not pinned with =="
            pins[_name(name)] = version.strip()
    return pins


def test_every_declared_dependency_is_pinned() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared += extra
    missing = sorted({_name(r) for r in declared} - set(_pins()))
    assert not missing, f"add to constraints.txt (scripts/update_constraints.sh): {missing}"


def test_readme_quick_start_and_ci_install_through_the_constraints() -> None:
    readme = (ROOT / "README.md").read_text()
    quick = readme[readme.index("## Quick start") :].split("```")[1]
    installs = [line for line in quick.splitlines() if "pip install" in line]
    assert len(installs) == 2 and all("-c constraints.txt" in line for line in installs)
    test_command = installs[1].strip()
    assert test_command in (ROOT / ".ci" / "run").read_text()
