from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from kgrec.errors import ConfigError
from kgrec.graph.pseudonym import KEY_ENV, Pseudonymizer


def test_same_key_same_pseudonym_and_no_raw_id() -> None:
    a = Pseudonymizer(b"k" * 16).pseudonymize(["alice", "bob", "alice"])
    b = Pseudonymizer(b"k" * 16).pseudonymize(["alice"])
    assert a[0] == a[2] == b[0] and a[0] != a[1]
    assert a[0].startswith("u_") and "alice" not in a[0]
    assert Pseudonymizer(b"x" * 16).pseudonymize(["alice"])[0] != a[0]


def test_key_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(KEY_ENV, "a-secret-from-the-environment")
    p = Pseudonymizer.from_environment(tmp_path)
    assert p.pseudonymize(["x"])[0] == Pseudonymizer(
        b"a-secret-from-the-environment").pseudonymize(["x"])[0]
    assert not (tmp_path / "pseudonym.key").exists()


def test_key_file_created_once_owner_only_and_reused(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    with caplog.at_level(logging.WARNING):
        first = Pseudonymizer.from_environment(tmp_path).pseudonymize(["alice"])[0]
    assert "created a random pseudonym key" in caplog.text
    key_file = tmp_path / "pseudonym.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert key_file.read_text() not in caplog.text  # the key is never logged
    assert Pseudonymizer.from_environment(tmp_path).pseudonymize(["alice"])[0] == first


def test_readable_key_file_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    Pseudonymizer.from_environment(tmp_path)
    os.chmod(tmp_path / "pseudonym.key", 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        Pseudonymizer.from_environment(tmp_path)


def test_short_key_and_missing_place_are_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="at least 16 bytes"):
        Pseudonymizer(b"short")
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(ConfigError, match=KEY_ENV):
        Pseudonymizer.from_environment(None)
    assert "key" not in repr(Pseudonymizer(b"k" * 16)).replace("key=<hidden>", "")


def test_fingerprint_identifies_the_key_without_revealing_it() -> None:
    key = b"a-secret-key-0123456789"
    fp = Pseudonymizer(key).fingerprint()
    assert fp == Pseudonymizer(key).fingerprint() and len(fp) == 32
    assert fp != Pseudonymizer(b"another-key-0123456789").fingerprint()
    assert key.hex() not in fp and "a-secret" not in fp
    # not the pseudonym of any id: the label is fixed and the output is not u_-prefixed
    assert not fp.startswith("u_")


def test_open_store_refuses_another_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from kgrec.errors import KeyMismatchError
    from kgrec.graph.ingest import ingest_tables
    from kgrec.graph.open import open_store
    from tests.contract import tiny_catalog

    monkeypatch.setenv(KEY_ENV, "the-original-key-0123456789")
    store, pseudo = open_store(f"embedded:{tmp_path}")
    ingest_tables(tiny_catalog(), store, pseudo)
    manifest = (tmp_path / "kgrec-store.json").read_text()
    assert "the-original-key" not in manifest and pseudo.fingerprint() in manifest
    monkeypatch.setenv(KEY_ENV, "a-different-key-0123456789")
    with pytest.raises(KeyMismatchError, match=KEY_ENV):
        open_store(f"embedded:{tmp_path}")
    open_store(f"embedded:{tmp_path}", verify_key=False)  # a caller about to clear it
    monkeypatch.setenv(KEY_ENV, "the-original-key-0123456789")
    open_store(f"embedded:{tmp_path}")
