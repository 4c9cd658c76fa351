# The two commands of the README: `make demo` and `make test`.
.PHONY: demo test unit lint neo4j-build bench clean

KGREC_VENV ?= .venv
export KGREC_VENV
VENV := $(KGREC_VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export KGREC_SHARED_DATA ?= $(abspath ../shared/data)

.PHONY: venv
venv:
	bash scripts/bootstrap.sh

demo: venv
	$(VENV)/kgrec demo --out out/demo

neo4j-build: venv
	bash scripts/ensure_java.sh
	$(VENV)/python -c "from kgrec.graph.neo4j_server import Neo4jServer; Neo4jServer().build()"

lint: venv
	$(VENV)/ruff check kgrec tests benchmarks
	$(VENV)/mypy kgrec

unit: venv
	$(VENV)/python -m pytest tests/unit -q

test: venv neo4j-build lint
	$(VENV)/python -m pytest -q

clean:
	rm -rf out .kgrec .neo4j .pytest_cache .mypy_cache .ruff_cache
