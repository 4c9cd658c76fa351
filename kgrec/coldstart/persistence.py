"""Save and load a fitted model directory: JSON + safetensors, never pickle.

Layout of a model directory::

    config.json          the ModelConfig, derived sizes, edge types, price scaler,
                         calibration, kgrec version, text-encoder identity
    vocab.json           external ids of Brand / Category / Attribute in embedding-row order,
                         and the TF-IDF vocabulary (``lexical.terms``, with ``lexical.idf``
                         among the weights) when the model uses lexical pair features
    weights.safetensors  GNN weights (prefix ``encoder.``), CTR head weights (``head.``), and
                         the item text vectors of training (``text.keys`` sha256 of each text,
                         ``text.vectors``), so a load encodes only new or changed texts
    manifest.json        size and SHA-256 of the three files above

Why atomic saves and a manifest: a model directory is read by serving jobs while a training job
may be replacing it, and a copy can be cut short. ``save_dir`` writes into a temp folder beside
the target, fsyncs it and renames it into place (an existing model folder is swapped out, never
half overwritten); ``load_dir`` checks every file against the manifest, so a truncated or altered
file is a :class:`~kgrec.errors.ModelError` naming it, not a raw library error or, worse, a
model that loads with wrong weights.

Why the version checks: the weights only mean something together with the exact text vectors they
were trained on and with the code that built them, so a model from another kgrec ``major.minor``
or made with another text encoder raises :class:`~kgrec.errors.IncompatibleModelError`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from kgrec._version import __version__
from kgrec.coldstart.config import ModelConfig
from kgrec.coldstart.features import SHARED_TYPES, IdVocab, PriceScaler
from kgrec.encoders.factory import encoder_for_identity
from kgrec.encoders.lexical import LexicalEncoder
from kgrec.encoders.text import TextEncoder
from kgrec.errors import IncompatibleModelError, ModelError

if TYPE_CHECKING:
    from kgrec.coldstart.estimator import ColdStartModel

logger = logging.getLogger(__name__)

CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE = "config.json", "vocab.json", "weights.safetensors"
# the item text vectors the model was trained with, beside its weights (sha256 keys of texts)
TEXT_KEYS, TEXT_VECTORS = "text.keys", "text.vectors"
LEXICAL_TERMS, LEXICAL_IDF = "lexical.terms", "lexical.idf"  # vocab.json key, weights key
MANIFEST_FILE = "manifest.json"
FORMAT = 1
_TMP_SUFFIX = ".kgrec-tmp"
_FIX = ("re-save the model (ColdStartModel.save / kgrec train) or restore the whole folder "
        "from a backup")


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a folder
        pass
    finally:
        os.close(fd)


def _is_replaceable(root: Path) -> bool:
    """Only an empty folder or a kgrec model folder may be swapped out by a save."""
    return not any(root.iterdir()) or (root / CONFIG_FILE).is_file()


def save_dir(path: str | Path, config: dict[str, Any], vocab: dict[str, list[str]],
             tensors: dict[str, torch.Tensor]) -> Path:
    """Write the model files plus a checksum manifest into ``path`` atomically; return it.

    The files are written into a temp folder beside ``path``, fsynced and renamed into place;
    an existing model folder at ``path`` is replaced only once the new one is complete.

    Raises:
        ModelError: the directory cannot be written, or ``path`` is a non-empty folder that is
            not a kgrec model folder (it is never deleted).
    """
    root = Path(path)
    if root.exists() and not (root.is_dir() and _is_replaceable(root)):
        raise ModelError(f"refusing to save the model over {root}: it exists and is not a kgrec "
                         f"model folder; choose an empty or new folder")
    tmp: Path | None = None
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=_TMP_SUFFIX,
                                    dir=root.parent))
        full = {"format": FORMAT, "kgrec_version": __version__, **config}
        (tmp / CONFIG_FILE).write_text(json.dumps(full, indent=2, sort_keys=True),
                                       encoding="utf-8")
        (tmp / VOCAB_FILE).write_text(json.dumps(vocab), encoding="utf-8")
        save_file({k: v.detach().contiguous() for k, v in tensors.items()},
                  str(tmp / WEIGHTS_FILE))
        files = {name: {"bytes": (tmp / name).stat().st_size, "sha256": _sha256(tmp / name)}
                 for name in (CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE)}
        (tmp / MANIFEST_FILE).write_text(json.dumps({"format": FORMAT, "files": files},
                                                    indent=2), encoding="utf-8")
        for name in (CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE, MANIFEST_FILE):
            _fsync(tmp / name)
        _fsync(tmp)
        old: Path | None = None
        if root.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old.", suffix=_TMP_SUFFIX,
                                        dir=root.parent))
            os.replace(root, old)  # old is an empty folder: rename replaces it
        os.replace(tmp, root)
        tmp = None
        _fsync(root.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except (OSError, SafetensorError) as e:
        raise ModelError(f"cannot save the model to {root}: {e}") from e
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("Saved cold-start model to %s", root)
    return root


def _verify(root: Path) -> None:
    """Check each file against ``manifest.json`` (models saved before it had none: skip)."""
    manifest_path = root / MANIFEST_FILE
    if not manifest_path.is_file():
        logger.warning("%s has no %s (saved by an older kgrec): its files cannot be checked "
                       "for truncation; re-save it to add one", root, MANIFEST_FILE)
        return
    try:
        files = json.loads(manifest_path.read_text(encoding="utf-8"))["files"]
        expected = {str(name): (int(v["bytes"]), str(v["sha256"])) for name, v in files.items()}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelError(f"{manifest_path} is unreadable or damaged ({e}); {_FIX}") from e
    for name, (size, sha) in expected.items():
        f = root / name
        actual = f.stat().st_size if f.is_file() else -1
        if actual != size:
            state = "missing" if actual < 0 else f"{actual:,} bytes, {size:,} were saved"
            raise ModelError(f"{f} is truncated or damaged ({state}); {_FIX}")
        if _sha256(f) != sha:
            raise ModelError(f"{f} was changed since the model was saved (SHA-256 differs from "
                             f"{manifest_path.name}); {_FIX}")


def load_dir(path: str | Path) -> tuple[dict[str, Any], dict[str, list[str]],
                                        dict[str, torch.Tensor]]:
    """Read ``(config, vocab, tensors)`` from a model directory, checking files and version.

    Raises:
        ModelError: a file is missing, truncated, altered or unreadable (the message names it).
        IncompatibleModelError: the model was saved by another kgrec ``major.minor``.
    """
    root = Path(path)
    missing = [f for f in (CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE) if not (root / f).is_file()]
    if missing:
        raise ModelError(f"{root} is not a kgrec cold-start model directory: missing "
                         f"{', '.join(missing)}; save one with ColdStartModel.save(path)")
    _verify(root)
    current = root / CONFIG_FILE
    try:
        config = json.loads(current.read_text(encoding="utf-8"))
        current = root / VOCAB_FILE
        vocab = json.loads(current.read_text(encoding="utf-8"))
        current = root / WEIGHTS_FILE
        tensors = load_file(str(current))
    except (OSError, ValueError, SafetensorError) as e:
        raise ModelError(f"cannot read {current}: {e}; {_FIX}") from e
    if not isinstance(config, dict) or not isinstance(vocab, dict):
        raise ModelError(f"{root}: config.json and vocab.json must hold JSON objects; {_FIX}")
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
    lexical = getattr(model, "lexical_", None)
    if lexical is not None:  # the TF-IDF vocabulary and IDF the model was trained with
        vocab[LEXICAL_TERMS] = lexical.terms_.tolist()
        weights[LEXICAL_IDF] = torch.from_numpy(lexical.idf_)
    return save_dir(path, config, vocab, weights)


# settings added since older models were saved, with the value those models implicitly had
ADDED_SETTINGS: dict[str, Any] = {"pair_features": False, "cooc_features": False,
                                  "lexical_features": False, "history_features": False,
                                  "ranked_refit": False, "refit_anchor": 0.0,
                                  "recency_features": False}


def read_model(path: str | Path, text_encoder: TextEncoder | None, device: str,
               num_threads: int | None) -> tuple[dict[str, Any], dict[str, list[str]],
                                                 dict[str, torch.Tensor], TextEncoder]:
    """:func:`load_dir` plus the text encoder to use: ``text_encoder``, checked against the
    saved identity, or one rebuilt from it (:func:`kgrec.encoders.encoder_for_identity`).

    Raises:
        ModelError, IncompatibleModelError: as :func:`load_dir` and :func:`check_encoder`.
    """
    config, vocab, weights = load_dir(path)
    saved = config["encoder_identity"]
    if text_encoder is None:
        text_encoder = encoder_for_identity(saved, device=device, num_threads=num_threads)
    check_encoder(saved, text_encoder.identity(), path)
    return config, vocab, weights, text_encoder


def saved_config(config: dict[str, Any]) -> ModelConfig:
    """The :class:`ModelConfig` of a model directory's ``config.json``.

    Raises:
        ModelError: an unknown setting, or a removed one that was switched on.
    """
    settings = dict(config.get("config") or config.get("params") or {})
    for key, value in ADDED_SETTINGS.items():
        settings.setdefault(key, value)
    return ModelConfig.from_dict(settings)


def restore_sizes(model: ColdStartModel, config: dict[str, Any],
                  vocab: dict[str, list[str]]) -> None:
    """What ``_build_modules`` reads: shared-id vocabularies, price scaler, edge types, text
    size."""
    model.vocabs_ = {t: IdVocab(vocab.get(t, [])) for t in SHARED_TYPES}
    model.price_ = PriceScaler(**config["price"]) if config["price"] else None
    model.edge_types_ = [(et[0], et[1], et[2]) for et in config["edge_types"]]
    model.text_dim_ = int(config["text_dim"])


def restore_state(model: ColdStartModel, config: dict[str, Any], vocab: dict[str, list[str]],
                  weights: dict[str, torch.Tensor], path: str | Path) -> None:
    """Put saved weights, calibration and history into a model whose modules are built.

    Raises:
        ModelError: the weights do not fit the saved configuration.
    """
    from kgrec.coldstart.calibration import PlattCalibrator, ScopedCalibrator

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
        regime = PlattCalibrator() if "scope_items" not in report else ScopedCalibrator(
            int(report["scope_items"]), float(report["scope_exponent"]))
        regime.a_, regime.b_ = float(report["a"]), float(report["b"])
        model.regime_calibrators_[name] = regime
    model.encoder_identity_ = config["encoder_identity"]
    model.history_ = config.get("history", [])
    model.lexical_ = None
    if model.config_.pair_features and model.config_.lexical_features:
        if LEXICAL_TERMS not in vocab or LEXICAL_IDF not in weights:
            raise ModelError(f"{path} uses TF-IDF pair features but holds no TF-IDF vocabulary; "
                             f"{_FIX}")
        model.lexical_ = LexicalEncoder.from_state(vocab[LEXICAL_TERMS],
                                                   weights[LEXICAL_IDF].numpy())
    if TEXT_KEYS in weights and TEXT_VECTORS in weights:
        keys = weights[TEXT_KEYS].numpy().copy().view("S64").reshape(-1)
        model.text_.preload(keys, weights[TEXT_VECTORS].numpy())


def model_version(model: ColdStartModel) -> str:
    """``kgrec-<version>-<12 hex digits of a hash of the weights and calibration>``."""
    from kgrec.coldstart.calibration import ScopedCalibrator

    h = hashlib.sha256()
    for module in (model.encoder_, model.head_):
        for name, t in sorted(module.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    h.update(json.dumps([model.calibrator_.a_, model.calibrator_.b_]).encode())
    for name, cal in sorted(getattr(model, "regime_calibrators_", {}).items()):
        scope = [cal.items, cal.exponent] if isinstance(cal, ScopedCalibrator) else []
        h.update(json.dumps([name, cal.a_, cal.b_, *scope]).encode())
    return f"kgrec-{__version__}-{h.hexdigest()[:12]}"


def warm_start(model: ColdStartModel, init: ColdStartModel) -> int:
    """Copy into ``model`` (modules built, not trained) every weight of ``init`` that fits:
    tensors of the same name and shape, and for each shared-id embedding (Brand, Category,
    Attribute) the rows of the ids both vocabularies know, so a grown vocabulary keeps what was
    learned; the wide part's split flags (``CTRHead.split_parts``) are not copied. Returns the
    number of tensors copied whole.

    Why: fine-tuning a few epochs from the previous weights on the grown graph costs a fraction
    of a full retrain (``kgrec train --init-from``).
    """
    copied = 0
    for mine, theirs in ((model.encoder_, init.encoder_), (model.head_, init.head_)):
        old = theirs.state_dict()
        state = mine.state_dict()
        for name, tensor in state.items():
            # the refit's split flags stay off: fine-tuning trains one wide part for everyone,
            # as a fresh fit does, and the final refit splits it again
            if name.endswith("_split"):
                continue
            if name in old and old[name].shape == tensor.shape:
                state[name] = old[name].clone()
                copied += 1
        mine.load_state_dict(state)
    with torch.no_grad():
        for t, vocab in model.vocabs_.items():
            if t not in init.vocabs_ or t not in model.encoder_.shared:
                continue
            old_rows = init.vocabs_[t].lookup(np.asarray(vocab.ids, dtype=object))
            known = old_rows > 0
            new_emb, old_emb = model.encoder_.shared[t], init.encoder_.shared[t]
            assert isinstance(new_emb, torch.nn.Embedding)
            assert isinstance(old_emb, torch.nn.Embedding)
            new_w, old_w = new_emb.weight, old_emb.weight
            if new_w.shape != old_w.shape and new_w.shape[1] == old_w.shape[1]:
                new_w[0] = old_w[0]  # the "unknown" row
                rows = torch.from_numpy(np.flatnonzero(known) + 1)
                new_w[rows] = old_w[torch.from_numpy(old_rows[known])]
    return copied
