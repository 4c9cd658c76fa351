"""Save and load a fitted model directory: JSON + safetensors, never pickle.

Layout of a model directory::

    config.json          constructor parameters, derived sizes, edge types, price scaler,
                         calibration, kgrec version, text-encoder identity
    vocab.json           external ids of Brand / Category / Attribute in embedding-row order
    weights.safetensors  GNN weights (prefix ``encoder.``) and CTR head weights (``head.``)

Why these checks: the weights only mean something together with the exact text vectors they
were trained on and with the code that built them, so a model from another kgrec ``major.minor``
or made with another text encoder raises :class:`~kgrec.errors.IncompatibleModelError`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from kgrec._version import __version__
from kgrec.errors import IncompatibleModelError, ModelError

logger = logging.getLogger(__name__)

CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE = "config.json", "vocab.json", "weights.safetensors"
FORMAT = 1


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def save_dir(path: str | Path, config: dict[str, Any], vocab: dict[str, list[str]],
             tensors: dict[str, torch.Tensor]) -> Path:
    """Write the three files into ``path`` (created if needed) and return it.

    Raises:
        ModelError: the directory cannot be written.
    """
    root = Path(path)
    try:
        root.mkdir(parents=True, exist_ok=True)
        full = {"format": FORMAT, "kgrec_version": __version__, **config}
        (root / CONFIG_FILE).write_text(json.dumps(full, indent=2, sort_keys=True),
                                        encoding="utf-8")
        (root / VOCAB_FILE).write_text(json.dumps(vocab), encoding="utf-8")
        save_file({k: v.detach().contiguous() for k, v in tensors.items()},
                  str(root / WEIGHTS_FILE))
    except OSError as e:
        raise ModelError(f"cannot save the model to {root}: {e}") from e
    logger.info("Saved cold-start model to %s", root)
    return root


def load_dir(path: str | Path) -> tuple[dict[str, Any], dict[str, list[str]],
                                        dict[str, torch.Tensor]]:
    """Read ``(config, vocab, tensors)`` from a model directory, checking the kgrec version.

    Raises:
        ModelError: a file is missing or unreadable.
        IncompatibleModelError: the model was saved by another kgrec ``major.minor``.
    """
    root = Path(path)
    missing = [f for f in (CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE) if not (root / f).is_file()]
    if missing:
        raise ModelError(f"{root} is not a kgrec cold-start model directory: missing "
                         f"{', '.join(missing)}; save one with ColdStartModel.save(path)")
    try:
        config = json.loads((root / CONFIG_FILE).read_text(encoding="utf-8"))
        vocab = json.loads((root / VOCAB_FILE).read_text(encoding="utf-8"))
        tensors = load_file(str(root / WEIGHTS_FILE))
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read the model in {root}: {e}") from e
    saved = str(config.get("kgrec_version", "unknown"))
    if _major_minor(saved) != _major_minor(__version__):
        raise IncompatibleModelError(
            f"{root} was saved by kgrec {saved}, this is kgrec {__version__}; models are only "
            f"compatible within the same major.minor version: retrain with kgrec {__version__}")
    return config, vocab, tensors


def check_encoder(saved: dict[str, Any], current: dict[str, Any], where: str | Path) -> None:
    """Raise unless the text encoder identities match.

    Raises:
        IncompatibleModelError: naming both identities.
    """
    if json.dumps(saved, sort_keys=True, default=str) != \
            json.dumps(current, sort_keys=True, default=str):
        raise IncompatibleModelError(
            f"{where} was trained with text encoder {saved.get('name')!r} ({saved}), but the "
            f"encoder given is {current.get('name')!r} ({current}); pass the same encoder to "
            f"ColdStartModel.load(path, text_encoder=...) or retrain")
