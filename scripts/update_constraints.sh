#!/usr/bin/env bash
# Refresh constraints.txt: the exact versions a fresh install gets (README's two commands and CI use it).
# Installs the newest releases of every dependency (runtime, test and bench extras) into a throw-away
# virtual environment, runs the test suite there, and only if it passes writes what was installed.
# Usage: scripts/update_constraints.sh [python3.X]   (run it with the oldest supported Python, 3.11)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-python3}
venv=$(mktemp -d)/venv
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -e '.[test,bench]'
"$venv/bin/python" -m pytest -q -p no:cacheprovider
{
  echo "# What a fresh install of sep2gw gets: every dependency, with the extras test and bench, at the"
  echo "# versions the test suite passed with. Used by README's commands and .ci/run (pip install -c)."
  echo "# Refresh with scripts/update_constraints.sh (it installs the newest releases, runs the suite,"
  echo "# and writes this file only if the suite passed). Generated $(date -u +%Y-%m-%d) with $("$venv/bin/python" --version)."
  "$venv/bin/python" -m pip freeze --exclude-editable | grep -v '^sep2gw'
} > constraints.txt
echo "constraints.txt updated; review 'git diff constraints.txt' and commit it with the test run's result"
