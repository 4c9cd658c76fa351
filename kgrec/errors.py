"""The one exception tree of kgrec.

Every error kgrec raises on purpose derives from :class:`KgrecError`, so callers (and the CLI)
can catch one type. Messages name the offending file/row/field/id and say how to fix it::

    KgrecError
    ├── ConfigError              bad or missing setting (env var, path, option)
    │   └── KeyMismatchError     the pseudonym key is not the one the store was built with
    ├── DataError                input data kgrec cannot use
    │   ├── FileFormatError      a whole file in the wrong format
    │   └── ValidationError      a table that fails validation as a whole
    ├── UnknownIdError           ids not in the graph / model (also a KeyError)
    ├── NotFittedError           a model used before ``fit`` (also a ValueError)
    ├── StoreError               a graph store failed to read or write
    │   └── StoreUnavailableError the store (e.g. Neo4j) cannot be reached
    ├── Neo4jServerError         the local Neo4j launcher failed to build/start/stop
    ├── EncoderError             text/attribute encoding failed
    │   └── ModelNotFoundError   a local model directory is missing or incomplete
    └── ModelError               saving/loading/training a kgrec model failed
        └── IncompatibleModelError  a saved model from another version/encoder

Warnings: :class:`ColdStartWarning` (a new node with nothing to score it from).
"""

from __future__ import annotations

from collections.abc import Iterable


class KgrecError(Exception):
    """Root of every error kgrec raises on purpose."""


class ConfigError(KgrecError):
    """A setting (environment variable, path, option) is missing or invalid."""


class KeyMismatchError(ConfigError):
    """The pseudonym key differs from the one recorded in the store at first ingest."""


class DataError(KgrecError):
    """Input data kgrec cannot use."""


class FileFormatError(DataError):
    """A whole input file is in the wrong format (names the file and the fix)."""


class ValidationError(DataError):
    """A table fails validation as a whole (e.g. a required column is missing)."""


class UnknownIdError(KgrecError, KeyError):
    """Ids that are not in the graph or the model; ``ids`` holds (a few of) them."""

    def __init__(self, kind: str, ids: Iterable[object], *, hint: str = "") -> None:
        self.kind = kind
        self.ids = list(ids)
        shown = ", ".join(repr(i) for i in self.ids[:5])
        more = f" (and {len(self.ids) - 5} more)" if len(self.ids) > 5 else ""
        msg = f"{len(self.ids)} unknown {kind} id(s): {shown}{more}"
        if hint:
            msg += f". {hint}"
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class NotFittedError(KgrecError, ValueError):
    """A model was used before ``fit`` (or ``load``)."""


class StoreError(KgrecError):
    """A graph store failed to read or write."""


class StoreUnavailableError(StoreError):
    """The graph store (e.g. a Neo4j server) cannot be reached."""


class Neo4jServerError(KgrecError):
    """The local Neo4j launcher failed to build, start or stop the server."""


class EncoderError(KgrecError):
    """Text or attribute encoding failed."""


class ModelNotFoundError(EncoderError):
    """A local model directory is missing or incomplete."""


class ModelError(KgrecError):
    """Saving, loading or training a kgrec model failed."""


class IncompatibleModelError(ModelError):
    """A saved model was made by another kgrec version or with another encoder."""


class ColdStartWarning(UserWarning):
    """A new node has nothing (no text, no known attribute) to be scored from."""
