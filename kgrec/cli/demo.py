"""``kgrec demo``: the end-to-end job on a generated shop or a dataset folder, with a report.

The job itself is :func:`kgrec.cli.demo_run.run_demo`; it is imported inside the handler so that
``kgrec --help`` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kgrec.cli._common import Commands


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="kgrec-demo", help="output folder (default %(default)s)")
    p.add_argument("--data", help="dataset name (amazon, movielens, completejourney) or folder "
                                  "(amazon/movielens layout, or canonical items/users/"
                                  "interactions files); default: a generated shop")
    p.add_argument("--store", default=None,
                   help="embedded:DIR (default OUT/store) or neo4j[:DATABASE][/GRAPH] (also "
                        "writes CANDIDATE relationships there)")
    p.add_argument("--encoder", choices=["bert", "hashing"], default="bert")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--users", type=int, default=None, help="generated users")
    p.add_argument("--items", type=int, default=None, help="generated items")
    p.add_argument("--interactions", type=int, default=None, help="generated interactions")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reset-store", action="store_true",
                   help="delete the nodes of kgrec's graph in a non-empty store first "
                        "(nothing else; never the default)")
    p.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from kgrec.cli.demo_run import DemoConfig, run_demo

    cfg = DemoConfig(out=Path(args.out), data=args.data, store=args.store, encoder=args.encoder,
                     seed=args.seed, reset_store=args.reset_store)
    for name in ("epochs", "users", "items", "interactions"):
        if getattr(args, name) is not None:
            setattr(cfg, name if name == "epochs" else f"n_{name}", getattr(args, name))
    result = run_demo(cfg, echo=print)
    print(f"report: {result.report}")
    return 0


COMMANDS: Commands = {
    "demo": (_demo_args, "end-to-end demo on a generated shop (or --data), with a report"),
}
