"""Benchmark: kgrec's text encoder vs a naive transformers loop, and the embedding cache.

Reads the Amazon Industrial & Scientific items by path (never copied into the repo), composes
one text per item with ``compose_item_texts`` and measures, in one process:

* naive reference: the same model, batches of 32 in input order, no dedup, padding to the
  longest text of each batch, same ``max_length`` and mean pooling, under ``torch.no_grad``;
* kgrec: ``CachedTextEncoder(BertTextEncoder)`` with an empty cache (dedup + length-sorted
  batches + inference_mode; the time includes hashing texts and writing the cache);
* cached re-run: fresh encoder and cache objects on the same cache folder (a new process would
  do the same: the model is not even loaded when every text is cached);
* peak RSS of the process.

Usage::

    .venv/bin/python benchmarks/encode.py [--data PATH] [--limit N] [--threads T]
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from kgrec.encoders import (
    BertTextEncoder,
    CachedTextEncoder,
    EmbeddingCache,
    compose_item_texts,
)

DEFAULT_DATA = "/work/shared/data/amazon-industrial-scientific/Scientific.item.json"


def load_items(path: Path, limit: int | None) -> pd.DataFrame:
    """The Amazon item file as a canonical items table (category path joined by " > ")."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    rows = [{"item_id": k, **v} for k, v in raw.items()]
    if limit:
        rows = rows[:limit]
    df = pd.DataFrame(rows)
    cats = df["categories"].fillna("").map(lambda s: " > ".join(re.split(r",(?! )", s)) if s
                                           else None)
    return pd.DataFrame({"item_id": df["item_id"].astype(str), "title": df.get("title"),
                         "description": df.get("description"), "brand": df.get("brand"),
                         "category": cats, "price": np.nan})


def naive_encode(model_dir: Path, texts: list[str], max_length: int, batch: int) -> np.ndarray:
    """What a first script would do: input order, fixed batches, pad to each batch's longest."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch):
            enc = tok(texts[i:i + batch], padding=True, truncation=True, max_length=max_length,
                      return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
    return np.concatenate(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--data", type=Path, default=Path(DEFAULT_DATA))
    p.add_argument("--limit", type=int, default=None, help="first N items only")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=64, help="kgrec encoder batch size")
    p.add_argument("--naive-batch-size", type=int, default=32)
    p.add_argument("--cache-dir", type=Path, default=None, help="default: a temp folder")
    args = p.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    items = load_items(args.data, args.limit)
    t0 = time.perf_counter()
    texts, report = compose_item_texts(items)
    t_compose = time.perf_counter() - t0
    n = len(texts)
    print(f"items: {n} from {args.data}; unique texts {len(set(texts))}; compose "
          f"{t_compose * 1000:.0f} ms; {report.summary()}")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"max_length {args.max_length}")

    encoder = BertTextEncoder(max_length=args.max_length)
    model_dir = encoder.resolved_model_dir()
    t0 = time.perf_counter()
    encoder.load()
    print(f"model load: {time.perf_counter() - t0:.2f} s ({model_dir})")

    t0 = time.perf_counter()
    ref = naive_encode(model_dir, texts, args.max_length, args.naive_batch_size)
    t_naive = time.perf_counter() - t0
    print(f"naive loop (batch {args.naive_batch_size}, input order): {t_naive:.1f} s, "
          f"{n / t_naive:.1f} items/s")

    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = args.cache_dir or Path(tmp) / "cache"
        cold = CachedTextEncoder(encoder, EmbeddingCache(cache_dir))
        t0 = time.perf_counter()
        vecs = cold.encode(texts, batch_size=args.batch_size)
        t_cold = time.perf_counter() - t0
        print(f"kgrec encoder, cold (batch {args.batch_size}, dedup + length-sorted, cache "
              f"write incl.): {t_cold:.1f} s, {n / t_cold:.1f} items/s; "
              f"ratio vs naive {t_naive / t_cold:.2f}x (target >= 1.5x)")
        diff = float(np.abs(vecs - ref).max())
        print(f"max |kgrec - naive| per component: {diff:.2e}; shape {vecs.shape}, "
              f"norms {np.linalg.norm(vecs, axis=1).min():.4f}..")

        fresh = BertTextEncoder(max_length=args.max_length)
        warm = CachedTextEncoder(fresh, EmbeddingCache(cache_dir))
        t0 = time.perf_counter()
        again = warm.encode(texts, batch_size=args.batch_size)
        t_warm = time.perf_counter() - t0
        print(f"cached re-run (fresh objects, same folder): {t_warm * 1000:.0f} ms = "
              f"{100 * t_warm / t_cold:.2f}% of the cold run (target <= 2%); hits "
              f"{warm.last_hits}, misses {warm.last_misses}, model loaded: {fresh.is_loaded}, "
              f"identical: {bool(np.array_equal(again, vecs))}")

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak:.0f} MiB")
    if diff > 1e-4:
        print("FAIL: kgrec vectors differ from the naive reference", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
