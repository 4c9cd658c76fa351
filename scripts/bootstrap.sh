#!/usr/bin/env bash
# Create (or reuse) the virtualenv and install kgrec (editable) with its dev tools.
# KGREC_VENV picks the virtualenv folder (default .venv); CI points it at a per-machine folder so
# torch, a large CUDA build on PyPI, is installed once per machine and reused by every clone.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${KGREC_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
stamp=.kgrec-installed   # per clone: the editable install must point at this checkout
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || \
   ! "$VENV/bin/python" -c "import kgrec, sys; sys.exit(0 if kgrec.__file__.startswith('$PWD/') else 1)" 2>/dev/null; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e ".[dev]"
  touch "$stamp"
fi
