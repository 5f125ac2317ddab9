"""Regenerate the state diagrams in ARCHITECTURE.md from the transition tables.

Usage: ``python3 scripts/gen_state_diagrams.py [--check]`` from the repository root. ``--check`` only
reports (exit 1) when the committed diagrams differ from the tables.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from statemachines.diagrams import replace_section

ARCHITECTURE = Path(__file__).resolve().parent.parent / "ARCHITECTURE.md"


def main(argv: list[str]) -> int:
    current = ARCHITECTURE.read_text(encoding="utf-8")
    wanted = replace_section(current)
    if "--check" in argv:
        if current != wanted:
            print("ARCHITECTURE.md state diagrams are stale: run scripts/gen_state_diagrams.py")
            return 1
        print("ARCHITECTURE.md state diagrams match the tables")
        return 0
    if current != wanted:
        ARCHITECTURE.write_text(wanted, encoding="utf-8")
        print("ARCHITECTURE.md state diagrams regenerated")
    else:
        print("ARCHITECTURE.md state diagrams already current")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
