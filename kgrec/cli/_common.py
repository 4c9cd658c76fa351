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
