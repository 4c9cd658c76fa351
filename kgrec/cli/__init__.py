"""The ``kgrec`` command line: thin wrappers that parse arguments and call the library.

Exit codes: 0 success, 1 a ``KgrecError`` (printed as ``ErrorType: message``), 2 bad usage.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings
from collections.abc import Sequence

from kgrec.cli._common import Commands
from kgrec.errors import KgrecError

logger = logging.getLogger("kgrec.cli")

# One module per command group; each defines ``COMMANDS = {name: (add_arguments, help)}`` with
# handlers set via ``set_defaults(handler=...)``. Heavy imports happen inside the handlers.
COMMAND_MODULES: tuple[str, ...] = (
    "kgrec.cli.graph",
    "kgrec.cli.ranking",
    "kgrec.cli.update",
    "kgrec.cli.search",
    "kgrec.cli.evaluate",
    "kgrec.cli.demo",
    "kgrec.cli.serve",
)


def commands() -> Commands:
    """Every command's ``(add_arguments, help)`` by name, in the order of ``kgrec --help``."""
    found: Commands = {}
    for name in COMMAND_MODULES:
        found.update(importlib.import_module(name).COMMANDS)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kgrec", description=__doc__)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add_args, help_text) in commands().items():
        add_args(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # The CLI (not the library) configures logging for its own process.
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2),
                        format="%(levelname)s %(name)s: %(message)s")
    # A notice torch prints when PyG is imported; it says nothing about the user's work.
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")
    try:
        return int(args.handler(args))
    except KgrecError as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
