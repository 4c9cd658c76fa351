"""Argument helpers shared by the command modules (import-light: no pandas or torch)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

AddArguments = Callable[[argparse.ArgumentParser], None]
Commands = dict[str, tuple[AddArguments, str]]

STORE_HELP = ("embedded:DIR (default %(default)s) or neo4j[:DATABASE][/GRAPH] (NEO4J_URI, "
              "NEO4J_USER, NEO4J_PASSWORD, KGREC_NEO4J_GRAPH from the environment; kgrec reads "
              "and writes only its own GRAPH there)")


def store_arg(p: argparse.ArgumentParser, default: str = "embedded:.kgrec/store") -> None:
    p.add_argument("--store", default=default, help=STORE_HELP)


BATCH_MODES = ("auto", "full", "mini")  # ModelConfig.batch_mode (not imported: keeps the CLI light)
# Settings of ModelConfig that the CLI exposes; unset flags keep the one set of defaults.
MODEL_FLAGS: tuple[tuple[str, type], ...] = (
    ("epochs", int), ("steps_per_epoch", int), ("hidden_dim", int), ("lr", float),
    ("patience", int), ("batch_mode", str), ("batch_size", int), ("fanout", int),
    ("refit_steps", int), ("calibration_negatives", int))


def model_args(p: argparse.ArgumentParser, seed: bool = True) -> None:
    """``--epochs``, ``--hidden-dim`` ... overriding ``ModelConfig``'s defaults when given."""
    for name, kind in MODEL_FLAGS + ((("seed", int),) if seed else ()):
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=None,
                       choices=BATCH_MODES if name == "batch_mode" else None,
                       help=f"model setting {name} (default: ModelConfig's)")
    p.add_argument("--encoder", choices=["bert", "hashing"], default="bert",
                   help="item text encoder (default %(default)s; hashing is for quick checks)")


def model_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The ``ModelConfig`` settings given on the command line."""
    return {name: getattr(args, name) for name in [n for n, _ in MODEL_FLAGS] + ["seed"]
            if getattr(args, name, None) is not None}


def ray_args(p: argparse.ArgumentParser, what: str) -> None:
    """``--ray [ADDRESS]`` and ``--workers N`` (the ``ray`` extra; see ``kgrec.distributed``)."""
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help=f"run {what} on Ray: the cluster at ADDRESS (HOST:PORT of `ray start "
                        "--head`, auto, or ray://HOST:10001); without ADDRESS, RAY_ADDRESS or "
                        "a local Ray (needs pip install 'kgrec[ray]')")
    p.add_argument("--workers", type=int, default=2,
                   help="Ray workers, 1 CPU each (default %(default)s; with --ray)")
