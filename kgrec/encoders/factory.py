"""The one place a text encoder is built from a name (CLI, evaluation, demo, model loading).

Why one factory: five call sites used to build encoders with different thread, dimension and
cache rules, so the same ``--encoder bert`` meant different things in ``train`` and ``evaluate``.
"""

from __future__ import annotations

import os
from typing import Any

from kgrec.encoders.bert import BertTextEncoder
from kgrec.encoders.cache import CachedTextEncoder, EmbeddingCache
from kgrec.encoders.hashing import HashingEncoder
from kgrec.encoders.text import TextEncoder
from kgrec.errors import ConfigError

ENCODER_KINDS: tuple[str, ...] = ("bert", "hashing")
HASHING_DIM = 64


def make_text_encoder(kind: str = "bert", *, cache_dir: str | os.PathLike[str] | None = None,
                      num_threads: int | None = None, device: str = "cpu") -> TextEncoder:
    """A text encoder by name.

    Args:
        kind: ``"bert"`` (the local BERT-family model, see :class:`BertTextEncoder`) or
            ``"hashing"`` (character n-gram hashing, ``HASHING_DIM`` dims: fast, for tests).
        cache_dir: On-disk vector cache for the BERT encoder (hashing is cheaper than a cache
            read and is never cached); default None keeps vectors in memory only.
        num_threads: torch threads of the BERT encoder; default None keeps torch's setting.
        device: Torch device of the BERT encoder, default ``"cpu"``.

    Raises:
        ConfigError: an unknown ``kind``.
        ModelNotFoundError: the BERT model folder is missing (raised by the encoder).
    """
    if kind == "hashing":
        return HashingEncoder(dim=HASHING_DIM)
    if kind != "bert":
        raise ConfigError(f"unknown text encoder {kind!r}; choose one of {ENCODER_KINDS}")
    enc: TextEncoder = BertTextEncoder(num_threads=num_threads, device=device)
    if cache_dir is not None:
        enc = CachedTextEncoder(enc, EmbeddingCache(cache_dir))
    return enc


def encoder_for_identity(identity: dict[str, Any], *, device: str = "cpu",
                         num_threads: int | None = None) -> TextEncoder:
    """The encoder that wrote ``identity`` (a saved model's ``encoder_identity``): a hashing
    encoder of the saved size, or the default BERT encoder (a mismatch is caught by the
    caller's identity check, which names both)."""
    if str(identity.get("name", "")).startswith("hashing-"):
        return HashingEncoder(int(identity["dim"]), int(identity.get("ngram_max", 2)))
    return BertTextEncoder(num_threads=num_threads, device=device)
