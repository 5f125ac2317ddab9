"""Regenerate docs/configuration.md from the configuration model (``sep2gw.config``).

Usage: ``python3 scripts/gen_config_reference.py --write`` from the repository root rewrites the
page; ``--check`` only reports (exit 1) when the committed page differs from the model.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sep2gw.config_reference import render

PAGE = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def main(argv: list[str]) -> int:
    if set(argv) - {"--check", "--write"} or len(argv) != 1:
        print("usage: gen_config_reference.py --check | --write", file=sys.stderr)
        return 2
    current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
    wanted = render()
    if argv == ["--check"]:
        if current != wanted:
            print(f"{PAGE} is stale: run python3 scripts/gen_config_reference.py --write")
            return 1
        print(f"{PAGE} matches the configuration model")
        return 0
    if current != wanted:
        PAGE.write_text(wanted, encoding="utf-8")
        print(f"{PAGE} regenerated")
    else:
        print(f"{PAGE} already current")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
