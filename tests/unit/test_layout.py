"""The package layout: dependencies point one way, ``cli -> distributed -> evaluation -> ranking
-> coldstart -> (encoders, graph) -> errors``, and modules stay small enough to read."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import kgrec

ROOT = Path(kgrec.__file__).parent
LEVEL = {"cli": 6, "distributed": 5, "evaluation": 4, "ranking": 3, "coldstart": 2,
         "encoders": 1, "graph": 1, "errors": 0, "_version": 0}
MAX_LINES = 520  # "under ~500": a module past this is split by concept


def _imports(path: Path) -> set[str]:
    """Every ``kgrec.<package>`` a module imports, at top level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
        found |= {n.split(".")[1] for n in names if n.startswith("kgrec.")}
    return found


MODULES = sorted(p for p in ROOT.rglob("*.py") if p.parent != ROOT or p.stem != "__init__")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_a_package_above_it(path: Path) -> None:
    package = path.relative_to(ROOT).parts[0].removesuffix(".py")
    upward = {name for name in _imports(path)
              if LEVEL.get(name, 0) > LEVEL[package] or
              (package == "encoders" and name == "graph") or
              (package == "graph" and name == "encoders")}
    assert not upward, f"{path.relative_to(ROOT)} imports {sorted(upward)} (above it)"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_stay_small(path: Path) -> None:
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(ROOT)} has {n} lines; split it by concept"


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from kgrec.cli import main\n    import kgrec.evaluation.runner\n")
    assert _imports(bad) == {"cli", "evaluation"}
