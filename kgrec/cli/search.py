"""``kgrec search``: personalised product search over a trained model's graph.

Heavy imports happen inside the handler, so ``kgrec --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from kgrec.cli._common import Commands, model_args, model_overrides, store_arg

if TYPE_CHECKING:
    from kgrec.coldstart import ModelConfig


def _search_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-dir", required=True, help="folder written by `kgrec train`")
    store_arg(p)
    p.add_argument("--query", required=True, help="search text (any language)")
    p.add_argument("--user", help="raw user id: personalises the ranking (unknown: not)")
    p.add_argument("--k", type=int, default=20, help="results (default %(default)s)")
    p.add_argument("--brand", nargs="+", help="keep only these brands")
    p.add_argument("--category", help="keep only this category subtree, e.g. 'A > B'")
    p.add_argument("--min-price", type=float)
    p.add_argument("--max-price", type=float)
    p.add_argument("--cache-dir", help="on-disk text-embedding cache of the BERT encoder "
                   "(re-used item vectors: the index then builds in seconds)")
    p.add_argument("--explain", action="store_true",
                   help="print the matched terms/fields and graph paths of each result")
    p.add_argument("--json", action="store_true", help="print JSON lines")
    p.set_defaults(handler=_search)


def _search(args: argparse.Namespace) -> int:
    from kgrec.graph.open import open_store
    from kgrec.ranking.recommender import Recommender

    store, pseudonymizer = open_store(args.store)
    encoder = None
    if args.cache_dir:
        from kgrec.coldstart.persistence import load_dir
        from kgrec.encoders import BertTextEncoder, CachedTextEncoder, EmbeddingCache

        saved = load_dir(Path(args.model_dir) / "model")[0]["encoder_identity"]
        if not str(saved.get("name", "")).startswith("hashing-"):
            encoder = CachedTextEncoder(BertTextEncoder(), EmbeddingCache(args.cache_dir))
    rec = Recommender.load(args.model_dir, store, pseudonymizer=pseudonymizer,
                           text_encoder=encoder)
    filters = {"brands": args.brand, "category": args.category, "min_price": args.min_price,
               "max_price": args.max_price}
    res = rec.search(args.query, user=args.user, k=args.k, filters=filters)
    titles = rec.graph_.items.set_index("item_id")["title"]
    frame = res.frame.assign(title=titles.reindex(res.frame["item_id"]).to_numpy())
    if args.json:
        for rec_row in frame.to_dict(orient="records"):
            if args.explain:
                exp = res.explain(rec_row["item_id"])
                rec_row["matched"] = {f: list(t) for f, t in exp.matched.items()}
                rec_row["paths"] = [] if exp.paths is None else [str(p) for p in exp.paths.paths]
            print(json.dumps({k: (None if v != v else v) for k, v in rec_row.items()},
                             ensure_ascii=False, default=str))
        return 0
    mode = "personalised" if res.personalised else "not personalised"
    print(f"{len(frame)} result(s) for {args.query!r} ({mode})")
    print(frame.to_string(index=False, max_colwidth=60))
    if args.explain:
        for item in frame["item_id"]:
            print(res.explain(str(item)))
    return 0


# -- evaluation (kgrec evaluate --protocol search) and weight tuning ----------------------------
def _model_config(args: argparse.Namespace) -> ModelConfig:
    from kgrec.coldstart import ModelConfig

    return ModelConfig().replace(**model_overrides(args))


def evaluate_search(args: argparse.Namespace) -> int:
    """``kgrec evaluate --protocol search``: writes results_per_seed.csv, results.csv, report.md."""
    import shlex
    import sys

    from kgrec.evaluation.search_protocol import (
        SearchEvalConfig,
        markdown_table,
        run_search_evaluation,
        search_table,
    )
    from kgrec.graph.adapters import load_tables

    config = SearchEvalConfig(seeds=tuple(args.seeds), encoder=args.encoder,
                              cache_dir=args.cache_dir if args.encoder == "bert" else None,
                              model=_model_config(args), threads=args.threads)
    name = Path(str(args.data)).name
    results = run_search_evaluation(load_tables(args.data), config, dataset=name,
                                    log=lambda m: print(m, file=sys.stderr, flush=True))
    table = search_table(results)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results.to_csv(out / "results_per_seed.csv", index=False)
    table.to_csv(out / "results.csv", index=False)
    command = "kgrec " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    (out / "report.md").write_text(
        f"# Personalised search: {name}\n\n`{command}`\n\n"
        f"Weights {config.weights}, hybrid+pop popularity weight {config.popularity_weight}, "
        f"re-rank top {config.rerank_n}; seeds {list(config.seeds)}.\n\n"
        + markdown_table(table))
    print(table.to_string(index=False))
    print(f"Report: {out / 'report.md'}")
    return 0


def _tune_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="dataset name or folder (as kgrec evaluate)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", default=".kgrec/cache/text")
    model_args(p, seed=False)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", help="write the grid as JSON here")
    p.set_defaults(handler=_tune)


def _tune(args: argparse.Namespace) -> int:
    import sys

    from kgrec.evaluation.search_protocol import SearchEvalConfig, tune_weights
    from kgrec.graph.adapters import load_tables

    config = SearchEvalConfig(seeds=(args.seed,), encoder=args.encoder,
                              cache_dir=args.cache_dir if args.encoder == "bert" else None,
                              model=_model_config(args), threads=args.threads)
    res = tune_weights(load_tables(args.data), config, seed=args.seed,
                       log=lambda m: print(m, file=sys.stderr, flush=True))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=1, default=str))
    print(json.dumps({k: res[k] for k in ("dense", "personal", "popularity")}))
    return 0


COMMANDS: Commands = {
    "search": (_search_args, "personalised product search (BM25 + dense + the graph model)"),
    "search-tune": (_tune_args, "choose the search mixing weights on a validation slice of "
                                "training purchases (never the test split)"),
}
