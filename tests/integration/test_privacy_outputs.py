"""No raw user id or e-mail address in anything kgrec writes: ingest -> train -> save.

The input has an ``email`` profile column, a ``contact`` column of phone numbers and rejected
rows of every kind that carries a user id; afterwards every file under the working folder
(except the input) is searched byte by byte, Parquet files also cell by cell.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from kgrec.cli import main

pytestmark = pytest.mark.integration

NAMES = ["alice", "bruno", "chiara", "dmitri", "elena", "farid", "greta", "hugo", "ines",
         "jonas", "kaori", "lukas", "maria", "nils", "olga", "pavel", "quinn", "rosa",
         "stefan", "tanja", "ugo", "vera", "wim", "xenia"]


def _raw_ids() -> list[str]:
    return [f"shopper.{n}.{k:04d}" for k, n in enumerate(NAMES)]


def _write_input(folder: Path) -> tuple[list[str], list[str], list[str]]:
    folder.mkdir()
    ids = _raw_ids()
    emails = [f"{n}.private{k}@mail-example.org" for k, n in enumerate(NAMES)]
    phones = [f"+49 170 {5550000 + k * 37}" for k in range(len(NAMES))]
    items = pd.DataFrame({"item_id": [f"sku-{i}" for i in range(12)],
                          "title": [f"{'shoe' if i < 6 else 'lamp'} model {i}" for i in range(12)],
                          "brand": ["Acme" if i < 6 else "Lumo" for i in range(12)],
                          "category": ["Sport > Shoes" if i < 6 else "Home > Lamps"
                                       for i in range(12)]})
    items.to_csv(folder / "items.csv", index=False)
    segment = ["runner" if k % 2 == 0 else "homebody" for k in range(len(ids))]
    users = pd.DataFrame({"user_id": ids, "email": emails, "contact": phones,
                          "segment": segment})
    # A conflicting duplicate: the first row is superseded and goes to the rejects file.
    users = pd.concat([users.iloc[[3]].assign(segment="unknown"), users], ignore_index=True)
    users.to_csv(folder / "users.csv", index=False)
    lines = []
    for k, uid in enumerate(ids):
        base = 0 if k % 2 == 0 else 6
        for j in range(4):
            lines.append(json.dumps({"user_id": uid, "item_id": f"sku-{base + (k + j) % 6}",
                                     "event": "purchase", "ts": 1_700_000_000 + 60 * j,
                                     "email": emails[k]}))
    lines.append(json.dumps({"user_id": ids[0], "item_id": "sku-404", "event": "purchase"}))
    lines.append(json.dumps({"user_id": ids[1], "item_id": "sku-1", "event": "liked"}))
    lines.append(json.dumps({"user_id": ids[2], "item_id": "sku-1", "event": "click",
                             "ts": "yesterday"}))
    lines.append(f'{{"user_id": "{ids[3]}", "item_id": "sku-2", "event": ')  # not JSON
    (folder / "interactions.jsonl").write_text("\n".join(lines) + "\n")
    return ids, emails, phones


def test_no_raw_user_id_or_email_in_any_output_file(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    ids, emails, phones = _write_input(tmp_path / "input")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # anything written to the current folder is searched too
    monkeypatch.delenv("KGREC_PSEUDONYM_KEY", raising=False)
    caplog.set_level(logging.DEBUG)
    inp = tmp_path / "input"
    assert main(["ingest", "--items", str(inp / "items.csv"), "--users", str(inp / "users.csv"),
                 "--interactions", str(inp / "interactions.jsonl"),
                 "--store", "embedded:store", "--rejects", "out/rejects.csv"]) == 0
    assert main(["train", "--store", "embedded:store", "--model-dir", "model", "--epochs", "2",
                 "--encoder", "hashing", "--hidden-dim", "16"]) == 0
    printed = capsys.readouterr()
    assert "profile column 'email' not stored" in printed.out
    assert "profile column 'contact' not stored" in printed.out
    assert (work / "out" / "rejects.csv").stat().st_mode & 0o777 == 0o600
    rejects = pd.read_csv(work / "out" / "rejects.csv")
    assert set(rejects["table"]) == {"users", "interactions"}
    assert len(rejects) == 5  # 1 superseded user + 4 interactions (one an unparsed line)

    files = [p for p in work.rglob("*") if p.is_file()]
    assert {"rejects.csv", "weights.safetensors", "vocab.json", "User.parquet",
            "Attribute.parquet"} <= {p.name for p in files}
    blobs = {p: p.read_bytes() for p in files}
    for p in files:
        if p.suffix == ".parquet":  # also every decoded cell, whatever the page encoding
            frame = pd.read_parquet(p)
            blobs[p] += frame.to_csv(index=False).encode("utf-8")
    secrets = ids + emails + phones + [e.split("@")[0] for e in emails]
    leaks = [(str(p.relative_to(work)), s) for p, b in blobs.items() for s in secrets
             if s.encode("utf-8") in b]
    assert leaks == []
    # The search is not blind: a kept profile value is found the same way.
    assert any(b"segment=runner" in b for b in blobs.values())
    said = printed.out + printed.err + "\n".join(r.getMessage() for r in caplog.records)
    assert [s for s in secrets if s in said] == []
