"""Benchmark: load a saved model and answer one ``recommend`` (issue "production path").

Amazon Industrial & Scientific is ingested into a temporary embedded store, a model is trained
with the real BERT encoder (``--epochs``, short: only loading is measured) and saved. Then, in a
fresh Python process each time (imports are timed separately):

* in process: ``Recommender.load`` + ``recommend`` for one user (k = 20), and how many item
  texts were encoded (target: none, <= 2 s);
* the CLI: ``kgrec recommend --model-dir --store --user ID --k 20`` wall time (target <= 10 s).

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/load.py [--epochs 2] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_IN_PROCESS_S, TARGET_CLI_S = 2.0, 10.0
CHILD = """
import json, sys, time
t0 = time.perf_counter()
from kgrec.encoders import CachedTextEncoder
from kgrec.graph.open import open_store
from kgrec.ranking.recommender import Recommender
t1 = time.perf_counter()
store, pseudo = open_store(sys.argv[1])
rec = Recommender.load(sys.argv[2], store, pseudonymizer=None)
encoder = rec.model_.text_.encoder
ids, scores = rec.recommend(sys.argv[3], k=20)
t2 = time.perf_counter()
inner = encoder.encoder if isinstance(encoder, CachedTextEncoder) else encoder
print(json.dumps({"import_s": t1 - t0, "load_and_recommend_s": t2 - t1,
                  "texts_encoded": rec.model_.text_.n_encoded,
                  "bert_loaded": bool(getattr(inner, "is_loaded", False)), "top": str(ids[0])}))
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" /
                                          "data" / "amazon-industrial-scientific"))
    args = ap.parse_args(argv)
    os.environ.setdefault("KGREC_PSEUDONYM_KEY", "benchmark-load-key-0123456789")
    from kgrec.coldstart import ModelConfig
    from kgrec.encoders import make_text_encoder
    from kgrec.graph.adapters import load_dataset, load_tables
    from kgrec.graph.ingest import ingest
    from kgrec.graph.open import open_store
    from kgrec.ranking.recommender import Recommender

    root = Path(tempfile.mkdtemp(prefix="kgrec-load-"))
    spec, model_dir = f"embedded:{root / 'store'}", root / "model"
    store, pseudo = open_store(spec)
    raw = load_dataset(args.data)
    ingest(raw, store, pseudo, rejects_path=root / "rejects.csv")
    raw_user = str(load_tables(args.data).interactions["user_id"].iloc[0])
    encoder = make_text_encoder("bert", cache_dir=Path.home() / ".cache" / "kgrec" / "text")
    rec = Recommender(ModelConfig(epochs=args.epochs, patience=args.epochs),
                      pseudonymizer=pseudo, text_encoder=encoder, num_threads=2).fit(store)
    rec.save(model_dir)
    user = str(pseudo.pseudonymize([raw_user])[0])  # the child passes graph ids
    runs = []
    for _ in range(args.runs):
        out = subprocess.run([sys.executable, "-c", CHILD, spec, str(model_dir), user],
                             capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "kgrec.cli", "recommend", "--model-dir",
                        str(model_dir), "--store", spec, "--user", raw_user, "--k", "20"],
                       capture_output=True, text=True, check=True,
                       env={**os.environ, "KGREC_PSEUDONYM_KEY": "benchmark-load-key-0123456789"})
        runs[-1]["cli_s"] = time.perf_counter() - t0
    best = min(r["load_and_recommend_s"] for r in runs)
    cli = min(r["cli_s"] for r in runs)
    print(json.dumps({"runs": runs, "load_average": os.getloadavg()[0],
                      "load_and_recommend_s": best,
                      "ratio_to_target_in_process": best / TARGET_IN_PROCESS_S,
                      "cli_s": cli, "ratio_to_target_cli": cli / TARGET_CLI_S}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
