"""A saved model of the two-segment shop (``tests/shops.py``) in an embedded store, as
``kgrec serve`` loads it: shared by the service's unit tests and its uvicorn test."""

from __future__ import annotations

import os
from pathlib import Path

from kgrec.graph.ingest import ingest_tables
from kgrec.graph.open import open_store
from tests.shops import make_recommender, shop_tables

PSEUDONYM_KEY = "serve-test-key-0123456789abcdef"
TOKEN = "serve-test-token-0123456789abcdef"


def saved_shop_model(root: Path, *, seed: int = 0) -> tuple[str, str]:
    """``(store spec, model dir)``: the shop ingested with raw user ids (pseudonymised with
    :data:`PSEUDONYM_KEY`) and a small model fitted on it and saved."""
    os.environ["KGREC_PSEUDONYM_KEY"] = PSEUDONYM_KEY
    spec = f"embedded:{root / 'store'}"
    store, pseudonymizer = open_store(spec)
    if not store.node_count():
        ingest_tables(shop_tables(with_new_items=False), store, pseudonymizer)
    model_dir = root / "model"
    rec = make_recommender(seed=seed, pseudonymizer=pseudonymizer).fit(store)
    rec.save(model_dir)
    return spec, str(model_dir)
