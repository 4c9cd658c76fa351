"""Names shared by the CLI and the modules (import-light: no pandas, torch or scipy)."""

from __future__ import annotations

DEFAULT_KS: tuple[int, ...] = (10, 20, 50)
BASELINES: tuple[str, ...] = ("random", "popularity", "content_knn", "tfidf_knn",
                              "tfidf_bert_blend", "lightfm", "als", "ease", "item_knn")
ABLATIONS: dict[str, str] = {
    "no_text": "text vectors replaced by zeros (graph structure and ids only)",
    "no_attributes": "HAS_BRAND/IN_CATEGORY/HAS_ATTRIBUTE/RELATED/SUBCATEGORY_OF edges removed",
    "no_dropout": "item_edge_dropout = user_edge_dropout = 0 (no cold-start edge dropout)",
    "with_cooc": "cooc_features = True (adds the item co-occurrence pair features)",
    "no_pairs": "pair_features = False (the deep part alone: GNN + CTR head, no wide part)",
    "with_lexical": "lexical_features = True (adds the TF-IDF cosine pair features)",
    "no_lexical": "lexical_features = False (without the TF-IDF cosine pair features)",
    "no_cooc": "cooc_features = False (without the item co-occurrence pair features)",
    "no_history": "history_features = False (no history-size features, no short-history gate "
                  "and no few-clicks refit set)",
    "with_recency": "recency_features = True (adds the recency-weighted text and co-occurrence "
                    "matches)",
    "no_recency": "recency_features = False (without the recency-weighted matches)",
    "no_ranked_refit": "ranked_refit = False (no ranked refit set, no wide part of its own for "
                       "users with a longer history)",
    "no_refit_anchor": "refit_anchor = 0 (the refit moves the wide parts of users with a "
                       "history freely, at a constant step size)",
    "ctr_separate": "CTR head trained separately: not supported by ColdStartModel (skipped)",
}
SUPPORTED_ABLATIONS: tuple[str, ...] = ("no_text", "no_attributes", "no_history", "no_cooc",
                                         "no_pairs")
# ablations that only change settings: name -> the ModelConfig changes
CONFIG_ABLATIONS: dict[str, dict[str, object]] = {
    "no_dropout": {"item_edge_dropout": 0.0, "user_edge_dropout": 0.0},
    "with_cooc": {"cooc_features": True}, "no_cooc": {"cooc_features": False},
    "no_pairs": {"pair_features": False},
    "with_lexical": {"lexical_features": True}, "no_lexical": {"lexical_features": False},
    "no_history": {"history_features": False},
    "with_recency": {"recency_features": True}, "no_recency": {"recency_features": False},
    "no_ranked_refit": {"ranked_refit": False},
    "no_refit_anchor": {"refit_anchor": 0.0},
}
