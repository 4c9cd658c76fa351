"""CLI commands of the ranking layer: train, recommend, rank-new, explain, candidates.

Heavy imports (torch, the model) happen inside the handlers, so ``kgrec --help`` stays fast.
Every handler returns an exit code; a ``KgrecError`` is printed by the main CLI.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kgrec.cli._common import Commands, model_args, model_overrides, ray_args, store_arg


def _model_dir(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--model-dir", required=required, help="folder written by `kgrec train`")


def _load(args: argparse.Namespace) -> Any:
    from kgrec.graph.open import open_store
    from kgrec.ranking.recommender import Recommender

    store, pseudonymizer = open_store(args.store)
    rec = Recommender.load(args.model_dir, store, pseudonymizer=pseudonymizer)
    return rec, store


def _write_frame(frame: Any, out: str | None) -> None:
    if out is None:
        print(frame.to_csv(index=False), end="")
        return
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix in (".jsonl", ".ndjson"):
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_csv(path, index=False)
    print(f"wrote {len(frame):,} rows to {path}")


def _read_ids(path: str, kind: str = "users") -> list[str]:
    from kgrec.errors import FileFormatError

    p = Path(path)
    col = "user_id" if kind == "users" else "item_id"
    if p.suffix in (".csv", ".parquet", ".jsonl", ".tsv"):
        from kgrec.graph.readers import read_table

        frame = read_table(p, kind).frame
        return [str(v) for v in frame[col].dropna()]
    try:
        return [line.strip() for line in p.read_text(encoding="utf-8").splitlines()
                if line.strip()]
    except OSError as e:
        raise FileFormatError(f"cannot read {p}: {e}") from e


# -- train --------------------------------------------------------------------------------------
def _train_args(p: argparse.ArgumentParser) -> None:
    store_arg(p)
    _model_dir(p)
    model_args(p)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--init-from", metavar="MODEL_DIR",
                   help="warm-start from this trained model (its settings, weights and text "
                        "vectors) and fine-tune on the store's grown graph with the fine-tune "
                        "recipe (ModelConfig.fine_tune: 5 epochs, 100 refit steps, 25 "
                        "calibration negatives; flags given override it)")
    ray_args(p, "training (PyTorch DDP under Ray Train's TorchTrainer)")
    p.add_argument("--ray-storage", metavar="PATH|URI",
                   help="Ray Train checkpoint storage every node and this machine can reach "
                        "(a shared folder, s3://...); default a local temporary folder")
    p.set_defaults(handler=_train)


def _train_on_ray(args: argparse.Namespace) -> int:
    from kgrec.coldstart import ModelConfig
    from kgrec.distributed import StoreSpec, ray_train
    from kgrec.errors import ConfigError
    from kgrec.graph.open import open_store

    if args.init_from:
        raise ConfigError("--init-from is not supported with --ray; fine-tune without --ray")
    store, _ = open_store(args.store)  # the pseudonym key is checked here, once
    getattr(getattr(store, "driver", None), "close", lambda: None)()
    config = ModelConfig().replace(**model_overrides(args))
    print(f"model settings: {config.describe()}")
    run = ray_train(StoreSpec.from_environment(args.store), args.model_dir, config,
                    workers=args.workers, encoder=args.encoder, address=args.ray or None,
                    storage=args.ray_storage, threads=args.threads or 1)
    last = run.history[-1]["loss"] if run.history else float("nan")
    print(f"trained {len(run.history)} epochs on {run.workers} Ray workers in "
          f"{run.seconds:.1f}s; last loss {last:.4f}")
    print(f"model {run.model_version} saved to {run.model_dir}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from kgrec.coldstart import ModelConfig
    from kgrec.encoders import make_text_encoder
    from kgrec.graph.open import open_store
    from kgrec.ranking.recommender import Recommender

    if args.ray is not None:
        return _train_on_ray(args)
    store, pseudonymizer = open_store(args.store)
    model_dir = Path(args.model_dir)
    init = None
    if args.init_from:
        init = Recommender.load(args.init_from, store, pseudonymizer=pseudonymizer,
                                num_threads=args.threads)
    base = init.model_.config_.fine_tune() if init is not None else ModelConfig()
    config = base.replace(**model_overrides(args))
    print(f"model settings: {config.describe()}")
    encoder = init.model_.text_.encoder if init is not None else \
        make_text_encoder(args.encoder, cache_dir=model_dir / "text-cache")
    rec = Recommender(config, pseudonymizer=pseudonymizer, text_encoder=encoder,
                      num_threads=args.threads, show_progress=True)
    rec.fit(store, init_from=init)
    rec.save(model_dir)
    hist = rec.model_.history_
    cal = rec.model_.calibration_
    print(f"trained {len(hist)} epochs; last loss {hist[-1]['loss']:.4f}" if hist else "trained")
    if "ece" in cal:
        print(f"calibration (held out): ECE {cal['ece']:.4f}, log-loss {cal['log_loss']:.4f}")
    print(f"model {rec.model_version_} saved to {model_dir}")
    return 0


# -- recommend ----------------------------------------------------------------------------------
def _recommend_args(p: argparse.ArgumentParser) -> None:
    _model_dir(p)
    store_arg(p)
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", nargs="+", help="raw user id(s)")
    who.add_argument("--users", help="file of raw user ids (one per line, or a user_id column)")
    p.add_argument("--candidates", help="file of item ids to choose from (default all)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--include-seen", action="store_true",
                   help="do not exclude items the user has interacted with")
    p.add_argument("--out", help="FILE.csv|.parquet|.jsonl (default: CSV to stdout)")
    p.set_defaults(handler=_recommend)


def _recommend(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    rec, _ = _load(args)
    users = args.user or _read_ids(args.users)
    cands = None
    if args.candidates:
        cands = _read_ids(args.candidates, "items")
    ids, scores = rec.recommend(users, k=args.k, candidates=cands,
                                exclude_seen=not args.include_seen)
    k = ids.shape[1]
    frame = pd.DataFrame({"user_id": np.repeat(np.asarray(users, dtype=object), k),
                          "item_id": ids.reshape(-1), "rank": np.tile(np.arange(1, k + 1),
                                                                      len(users)),
                          "score": scores.reshape(-1)})
    _write_frame(frame[frame["item_id"].notna()], args.out)
    return 0


# -- rank-new -----------------------------------------------------------------------------------
def _rank_new_args(p: argparse.ArgumentParser) -> None:
    _model_dir(p)
    store_arg(p)
    p.add_argument("--items", required=True, help="new SKUs (.jsonl/.csv/.parquet; canonical "
                                                  "item columns)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--by", choices=["user", "item"], default="user",
                   help="per user the best new SKUs (default), or per SKU the likeliest users")
    p.add_argument("--out", help="FILE.csv|.parquet|.jsonl (default: CSV to stdout)")
    p.set_defaults(handler=_rank_new)


def _rank_new(args: argparse.Namespace) -> int:
    from kgrec.graph.readers import read_table

    rec, _ = _load(args)
    items = read_table(Path(args.items), "items").frame
    result = rec.rank_new_items(items, k=args.k)
    frame = result.by_user if args.by == "user" else result.by_item
    _write_frame(frame, args.out)
    return 0


# -- explain ------------------------------------------------------------------------------------
def _explain_args(p: argparse.ArgumentParser) -> None:
    _model_dir(p)
    store_arg(p)
    p.add_argument("--user", required=True, help="raw user id")
    p.add_argument("--item", required=True, help="item id")
    p.add_argument("--max-paths", type=int, default=3)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_explain)


def _explain(args: argparse.Namespace) -> int:
    import json

    rec, _ = _load(args)
    exp = rec.explain(args.user, args.item, max_paths=args.max_paths)
    if args.json:
        print(json.dumps({"user_id": exp.user_id, "item_id": exp.item_id, "score": exp.score,
                          "paths": [p.to_dict() for p in exp.paths]}, indent=2))
    else:
        print(exp)
    return 0


# -- candidates ---------------------------------------------------------------------------------
def _candidates_args(p: argparse.ArgumentParser) -> None:
    _model_dir(p)
    store_arg(p)
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--to", action="append", required=True,
                   help="parquet:PATH and/or neo4j (or store: the --store itself); repeatable")
    p.add_argument("--explain", help="also write the top paths of every candidate to "
                                     "FILE.jsonl|.parquet")
    p.add_argument("--rerank-n", type=int, default=None,
                   help="items retrieved per user before re-ranking (default: the model's)")
    p.add_argument("--user-chunk", type=int, default=None, help="users per block/transaction")
    ray_args(p, "the job over user shards with Ray Data (parquet:PATH and --explain are then "
                "folders of part-NNNNN files, one per shard)")
    p.add_argument("--shards", type=int, default=None,
                   help="user shards with --ray (default: --workers)")
    p.set_defaults(handler=_candidates)


def _targets(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """(the Parquet path, the store spec to write CANDIDATE edges to) of the --to options."""
    from kgrec.errors import ConfigError

    parquet = target = None
    for to in args.to:
        if to.startswith("parquet:"):
            parquet = to.partition(":")[2]
        elif to == "store":
            target = args.store
        elif to == "neo4j" or to.startswith(("neo4j:", "neo4j/")):
            target = to
        else:
            raise ConfigError(f"unknown --to {to!r}; use parquet:PATH, neo4j or store")
    return parquet, target


def _candidates_on_ray(args: argparse.Namespace) -> int:
    from kgrec.distributed import StoreSpec, ray_candidates
    from kgrec.graph.open import open_store

    parquet, target = _targets(args)
    for spec in dict.fromkeys(s for s in (args.store, target) if s is not None):
        store, _ = open_store(spec)  # the pseudonym key is checked here, once
        getattr(getattr(store, "driver", None), "close", lambda: None)()
    source = StoreSpec.from_environment(args.store)
    run = ray_candidates(args.model_dir, source, k=args.k, parquet=parquet,
                         target=None if target is None else StoreSpec.from_environment(target),
                         explain_to=args.explain, workers=args.workers, shards=args.shards,
                         address=args.ray or None, rerank_n=args.rerank_n,
                         user_chunk=args.user_chunk)
    print(run.summary())
    return 0


def _candidates(args: argparse.Namespace) -> int:
    from kgrec.graph.open import open_store

    if args.ray is not None:
        return _candidates_on_ray(args)
    parquet, spec = _targets(args)
    rec, store = _load(args)
    if args.rerank_n is not None:
        rec.rerank_n = args.rerank_n
    if args.user_chunk is not None:
        rec.user_chunk = args.user_chunk
    target = None if spec is None else store if spec == args.store else open_store(spec)[0]
    run = rec.write_candidates(k=args.k, parquet=parquet, store=target, explain_to=args.explain,
                               show_progress=True)
    print(run.summary())
    return 0


COMMANDS: Commands = {
    "train": (_train_args, "train the cold-start model on a store and save it"),
    "recommend": (_recommend_args, "top-k items for users (user_id,item_id,rank,score)"),
    "rank-new": (_rank_new_args, "rank new SKUs (not in the graph) for users, no retraining"),
    "explain": (_explain_args, "graph paths that support an item for a user"),
    "candidates": (_candidates_args, "batch top-k candidates to Parquet and/or CANDIDATE edges"),
}
