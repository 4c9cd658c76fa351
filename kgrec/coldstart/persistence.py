"""Save and load a fitted model directory: JSON + safetensors, never pickle.

Layout of a model directory::

    config.json          the ModelConfig, derived sizes, edge types, price scaler,
                         calibration, kgrec version, text-encoder identity
    vocab.json           external ids of Brand / Category / Attribute in embedding-row order
    weights.safetensors  GNN weights (prefix ``encoder.``), CTR head weights (``head.``), and
                         the item text vectors of training (``text.keys`` sha256 of each text,
                         ``text.vectors``), so a load encodes only new or changed texts

Why these checks: the weights only mean something together with the exact text vectors they
were trained on and with the code that built them, so a model from another kgrec ``major.minor``
or made with another text encoder raises :class:`~kgrec.errors.IncompatibleModelError`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from kgrec._version import __version__
from kgrec.errors import IncompatibleModelError, ModelError

if TYPE_CHECKING:
    from kgrec.coldstart.estimator import ColdStartModel

logger = logging.getLogger(__name__)

CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE = "config.json", "vocab.json", "weights.safetensors"
# the item text vectors the model was trained with, beside its weights (sha256 keys of texts)
TEXT_KEYS, TEXT_VECTORS = "text.keys", "text.vectors"
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


def save_model(model: ColdStartModel, path: str | Path) -> Path:
    """Write a fitted model's directory: settings, sizes, calibration, weights, vocabularies."""
    config = {
        "config": model.config_.to_dict(),
        "text_dim": model.text_dim_,
        "edge_types": [list(et) for et in model.edge_types_],
        "price": None if model.price_ is None else
        {"mean": model.price_.mean, "std": model.price_.std},
        "calibration": {k: v for k, v in model.calibration_.items()
                        if not isinstance(v, float) or math.isfinite(v)},
        "encoder_identity": model.encoder_identity_,
        "history": model.history_,
    }
    weights = {f"encoder.{k}": v.cpu() for k, v in model.encoder_.state_dict().items()}
    weights.update({f"head.{k}": v.cpu() for k, v in model.head_.state_dict().items()})
    keys, vectors = model.text_.snapshot()  # the text vectors it was trained with: a load
    weights[TEXT_KEYS] = torch.from_numpy(keys.view(np.uint8).reshape(len(keys), -1).copy())
    weights[TEXT_VECTORS] = torch.from_numpy(vectors)  # encodes only new or changed texts
    vocab = {t: v.ids for t, v in model.vocabs_.items()}
    return save_dir(path, config, vocab, weights)


def restore_state(model: ColdStartModel, config: dict[str, Any],
                  weights: dict[str, torch.Tensor], path: str | Path) -> None:
    """Put saved weights, calibration and history into a model whose modules are built.

    Raises:
        ModelError: the weights do not fit the saved configuration.
    """
    from kgrec.coldstart.calibration import PlattCalibrator

    try:
        model.encoder_.load_state_dict(
            {k[8:]: v for k, v in weights.items() if k.startswith("encoder.")})
        model.head_.load_state_dict(
            {k[5:]: v for k, v in weights.items() if k.startswith("head.")})
    except RuntimeError as e:
        raise ModelError(f"weights in {path} do not fit the saved config: {e}") from e
    model.encoder_.eval()
    model.head_.eval()
    cal = config["calibration"]
    model.calibrator_ = PlattCalibrator()
    model.calibrator_.a_, model.calibrator_.b_ = float(cal["a"]), float(cal["b"])
    model.calibration_ = cal
    model.regime_calibrators_ = {}
    for name, report in cal.get("regimes", {}).items():
        model.regime_calibrators_[name] = PlattCalibrator()
        model.regime_calibrators_[name].a_ = float(report["a"])
        model.regime_calibrators_[name].b_ = float(report["b"])
    model.encoder_identity_ = config["encoder_identity"]
    model.history_ = config.get("history", [])
    if TEXT_KEYS in weights and TEXT_VECTORS in weights:
        keys = weights[TEXT_KEYS].numpy().copy().view("S64").reshape(-1)
        model.text_.preload(keys, weights[TEXT_VECTORS].numpy())


def model_version(model: ColdStartModel) -> str:
    """``kgrec-<version>-<12 hex digits of a hash of the weights and calibration>``."""
    h = hashlib.sha256()
    for module in (model.encoder_, model.head_):
        for name, t in sorted(module.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    h.update(json.dumps([model.calibrator_.a_, model.calibrator_.b_]).encode())
    for name, cal in sorted(getattr(model, "regime_calibrators_", {}).items()):
        h.update(json.dumps([name, cal.a_, cal.b_]).encode())
    return f"kgrec-{__version__}-{h.hexdigest()[:12]}"
