from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from kgrec.cli import main
from kgrec.graph.pseudonym import KEY_ENV


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "cli-test-key-0123456789")


def write_files(tmp_path: Path) -> dict[str, Path]:
    items = tmp_path / "items.csv"
    pd.DataFrame({"item_id": ["a", "b", "c", ""], "title": ["A", "B", "C", "no id"],
                  "brand": ["X", "X", "Y", "Z"], "category": ["K > L"] * 4,
                  "price": ["1.5", "oops", "3", "4"]}).to_csv(items, index=False)
    inter = tmp_path / "inter.csv"
    pd.DataFrame({"user_id": ["u1", "u1", "u2", "u3"], "item_id": ["a", "c", "a", "zzz"],
                  "event": ["click", "purchase", "view", "click"],
                  "ts": ["2026-01-01", "1767225600", "bad-time", "5"]}).to_csv(inter, index=False)
    return {"items": items, "interactions": inter}


def test_ingest_reports_rejects_and_is_idempotent(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    files = write_files(tmp_path)
    store = f"embedded:{tmp_path / 'store'}"
    rejects = tmp_path / "rejects.csv"
    argv = ["ingest", "--items", str(files["items"]), "--interactions",
            str(files["interactions"]), "--store", store, "--rejects", str(rejects)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "items 2" in out and "interactions 2" in out and "rejected rows: 4" in out
    reasons = pd.read_csv(rejects)
    assert len(reasons) == 4
    assert set(reasons["field"]) == {"item_id", "price", "ts"}
    assert "unknown item" in " ".join(reasons["reason"])
    assert main(["graph", "stats", "--store", store, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["counts"]["Item"] == 2 and first["counts"]["INTERACTED"] == 2
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["graph", "stats", "--store", store, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == first


def test_kgrec_error_exits_1_with_type_and_message(capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    bad = tmp_path / "items.xlsx"
    bad.write_text("x")
    assert main(["ingest", "--items", str(bad), "--store", f"embedded:{tmp_path}"]) == 1
    assert capsys.readouterr().err.startswith("FileFormatError: ")
    assert main(["graph", "stats", "--store", "mongo:x"]) == 1
    assert "ConfigError: unknown store" in capsys.readouterr().err


def test_neo4j_store_without_settings_names_the_fix(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("NEO4J_URI", raising=False)
    assert main(["graph", "stats", "--store", "neo4j"]) == 1
    assert "NEO4J_URI" in capsys.readouterr().err


def test_help_for_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    for cmd in (["--help"], ["ingest", "--help"], ["graph", "stats", "--help"],
                ["neo4j", "--help"]):
        with pytest.raises(SystemExit) as exc:
            main(cmd)
        assert exc.value.code == 0
    assert "usage" in capsys.readouterr().out


@pytest.mark.parametrize("allow", [False, True])
def test_identifying_profile_column_is_dropped_unless_allowed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], allow: bool) -> None:
    from kgrec.graph.embedded import EmbeddedGraphStore
    from kgrec.graph.schema import NodeLabel

    users = tmp_path / "users.csv"
    pd.DataFrame({"user_id": ["u1", "u2"], "email": ["a@x.org", "b@x.org"],
                  "region": ["north", "south"]}).to_csv(users, index=False)
    argv = ["ingest", "--users", str(users), "--store", f"embedded:{tmp_path / 's'}"]
    assert main(argv + (["--allow-profile-column", "email"] if allow else [])) == 0
    out = capsys.readouterr().out
    keys = set(EmbeddedGraphStore(tmp_path / "s").nodes(NodeLabel.ATTRIBUTE)["key"])
    assert keys == ({"email", "region"} if allow else {"region"})
    if not allow:
        assert "profile column 'email' not stored" in out
        assert "--allow-profile-column email" in out  # the message names the override
    else:
        assert "not stored" not in out
