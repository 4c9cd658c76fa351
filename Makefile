# The two commands of the README: `make demo` and `make test`.
.PHONY: demo test unit lint neo4j-build bench clean

VENV := .venv/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export KGREC_SHARED_DATA ?= $(abspath ../shared/data)

.venv/.kgrec-installed: pyproject.toml
	bash scripts/bootstrap.sh

demo: .venv/.kgrec-installed
	$(VENV)/kgrec demo --out out/demo

neo4j-build:
	bash scripts/ensure_java.sh
	$(VENV)/python -c "from kgrec.graph.neo4j_server import Neo4jServer; Neo4jServer().build()"

lint: .venv/.kgrec-installed
	$(VENV)/ruff check kgrec tests benchmarks
	$(VENV)/mypy kgrec

unit: .venv/.kgrec-installed
	$(VENV)/python -m pytest tests/unit -q

test: .venv/.kgrec-installed neo4j-build lint
	$(VENV)/python -m pytest -q

clean:
	rm -rf out .kgrec .neo4j .pytest_cache .mypy_cache .ruff_cache
