"""Explanation paths: they exist in the graph, weights are sorted, a known path is found."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kgrec.graph.build import build_graph
from kgrec.ranking.explain import PathIndex, _significant, enumerate_paths
from kgrec.ranking.recommender import Recommender
from tests.shops import HOMERS, RUNNERS, shop_tables


def _edge_set() -> set[tuple[str, str, str, str, str]]:
    frames = build_graph(shop_tables(with_new_items=False))
    out = set()
    for rel, frame in frames.edges.items():
        for r in frame.itertuples():
            out.add((r.src_label, r.src, rel.value, r.dst_label, r.dst))
    return out


def test_paths_exist_in_graph_and_are_sorted(rec: Recommender) -> None:
    edges = _edge_set()
    for user in (RUNNERS[0], HOMERS[0]):
        ids, _ = rec.recommend(user, k=2, exclude_seen=False)
        for item in ids:
            exp = rec.explain(user, item, max_paths=3)
            assert 0 < len(exp.paths) <= 3
            weights = [p.weight for p in exp.paths]
            # heaviest first, to 5 significant digits (float noise must not reorder paths)
            keys = list(_significant(np.asarray(weights, dtype=np.float64), 5))
            assert keys == sorted(keys, reverse=True)
            for p in exp.paths:
                assert p.nodes[0].label == "User" and p.nodes[0].id == user
                assert p.nodes[-1].label == "Item" and p.nodes[-1].id == item
                for a, rel, fwd, b in zip(p.nodes[:-1], p.rels, p.forward, p.nodes[1:],
                                          strict=True):
                    s, d = (a, b) if fwd else (b, a)
                    assert (s.label, s.id, rel, d.label, d.id) in edges, str(p)


def test_known_brand_path_on_hand_built_graph(rec: Recommender) -> None:
    tables = shop_tables(with_new_items=False)
    inter = tables.interactions
    bought = inter.loc[(inter["user_id"] == RUNNERS[0]) & (inter["event"] == "purchase"),
                       "item_id"]
    target = next(s for s in [f"shoe-{k}" for k in range(6)] if s not in set(bought))
    paths = enumerate_paths(PathIndex(build_graph(tables)),
                            pd.DataFrame({"user_id": [RUNNERS[0]], "item_id": [target]}))
    brand = paths[paths["kind"] == "brand"]
    assert set(brand["hub"]) == {"Acme"}
    assert set(brand["via"]) == set(bought)
    exp = rec.explain(RUNNERS[0], target)
    assert any(p.kind in ("brand", "category", "profile") for p in exp.paths)
    for p in exp.paths:  # each path runs from this user to this item and is printed
        assert (p.nodes[0].label, p.nodes[0].id) == ("User", exp.user_id)
        assert (p.nodes[-1].label, p.nodes[-1].id) == ("Item", target)
        assert f"{p.weight:.4f}  {p}" in str(exp)
        if p.kind == "brand":  # the only brand hub between them is Acme
            assert (p.nodes[2].label, p.nodes[2].id) == ("Brand", "Acme")
            assert p.nodes[1].id in set(bought)


def test_new_sku_explanations_reach_the_new_item(rec: Recommender) -> None:
    from tests.shops import new_items

    ranking = rec.rank_new_items(new_items(), k=1)
    exp = ranking.explain(RUNNERS[1], "shoe-new")
    assert exp.paths and all(p.nodes[-1].id == "shoe-new" for p in exp.paths)
    assert exp.paths[0].kind in ("brand", "category")


def test_significant_rounding_absorbs_float32_noise() -> None:
    w = np.array([0.123456789, 0.12345679, -3.21e-7, 0.0, 1234.5678])
    np.testing.assert_allclose(_significant(w, 5), [0.12346, 0.12346, -3.21e-7, 0.0, 1234.6])
