"""Saving and loading a recommender folder: the model (``model/``) plus ``recommender.json``.

The graph and the pseudonym key are never saved: a loaded recommender is attached to the store it
serves, and raw ids are pseudonymised with that store's key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kgrec._version import __version__
from kgrec.errors import ModelError

if TYPE_CHECKING:
    from kgrec.coldstart import ColdStartModel
    from kgrec.encoders.text import TextEncoder
    from kgrec.ranking.recommender import Recommender

STATE_FILE = "recommender.json"
MODEL_SUBDIR = "model"


def write_state(rec: Recommender, path: Path, params: dict[str, Any]) -> Path:
    """Save ``rec``'s model into ``path/model`` (atomically, checksummed), then its own
    parameters into ``path/recommender.json`` (temp file + rename)."""
    rec.model_.save(path / MODEL_SUBDIR)
    state = {"kgrec_version": __version__, "params": params,
             "model_version": rec.model_version_}
    tmp = path / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(path / STATE_FILE)
    return path


def read_state(path: Path, *, text_encoder: TextEncoder | None, device: str,
               num_threads: int | None) -> tuple[ColdStartModel, dict[str, Any]]:
    """The model of a folder written by :func:`write_state`, and the recommender's parameters.

    Raises:
        ModelError: ``recommender.json`` is missing or unreadable, or the model folder is bad.
        IncompatibleModelError: another kgrec version or text encoder.
    """
    from kgrec.coldstart import ColdStartModel

    try:
        state = json.loads((path / STATE_FILE).read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"{path / STATE_FILE} is missing or unreadable ({e}); is {path} "
                         "a folder written by Recommender.save / kgrec train?") from e
    model = ColdStartModel.load(path / MODEL_SUBDIR, text_encoder=text_encoder, device=device,
                                num_threads=num_threads)
    return model, dict(state.get("params", {}))
