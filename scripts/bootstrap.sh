#!/usr/bin/env bash
# Create (or reuse) the virtualenv in .venv and install kgrec with its dev tools.
# Re-running is cheap: pip only installs what is missing. torch from PyPI is a large download
# (several GB with its CUDA libraries) the first time on a machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.kgrec-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  touch "$stamp"
fi
