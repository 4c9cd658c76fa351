"""The head's fast paths, and the default model learning the shop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from kgrec.coldstart import ColdStartModel, CTRHead
from kgrec.graph.export import ExportedGraph
from tests.shops import HOMERS, MUGS, NEW_MUG, NEW_SHOE, RUNNERS, SHOES, shop_graph, small_model


def rows(ids: np.ndarray, wanted: list[str]) -> np.ndarray:
    pos = {v: k for k, v in enumerate(ids)}
    return np.array([pos[w] for w in wanted])


def test_indexed_and_matrix_paths_equal_pairwise_forward() -> None:
    torch.manual_seed(0)
    head = CTRHead(8, text_dim=5).eval()
    torch.nn.init.normal_(head.mlp[2].weight)  # starts at zero; make the MLP count
    hu, hi = torch.randn(6, 13), torch.randn(7, 13)
    u, i = torch.tensor([0, 5, 2, 2]), torch.tensor([6, 0, 3, 3])
    with torch.no_grad():
        want, want_tower = head(hu[u], hi[i])
        got, got_tower = head.indexed(hu, hi, u, i)
        full = head.logit_matrix(hu, hi)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got_tower, want_tower)
    torch.testing.assert_close(full[u, i], want)
    uv, iv = head.user_vectors(hu), head.item_vectors(hi)
    torch.testing.assert_close((uv @ iv.T + head.tower_bias)[u, i], want_tower)


def test_default_options_learn_the_shop_and_survive_save_load(graph: ExportedGraph,
                                                              tmp_path: Path) -> None:
    model = small_model().fit(graph)
    emb = model.transform(graph)
    new = rows(emb.item_ids, [NEW_SHOE, NEW_MUG])
    s_run = model.score_matrix(emb, rows(emb.user_ids, RUNNERS), new)
    s_home = model.score_matrix(emb, rows(emb.user_ids, HOMERS), new)
    assert (s_run[:, 0] > s_run[:, 1]).all() and (s_home[:, 1] > s_home[:, 0]).all()
    r = model.retrieval_scores(emb, rows(emb.user_ids, RUNNERS), rows(emb.item_ids, SHOES + MUGS))
    assert (r[:, :6].mean(1) > r[:, 6:].mean(1)).all()
    loaded = ColdStartModel.load(model.save(tmp_path / "m"), num_threads=1)
    np.testing.assert_array_equal(model.score_matrix(emb),
                                  loaded.score_matrix(loaded.transform(graph)))
    # fold-in of a new item and some users gives the full-graph vectors
    g = shop_graph(extra_items=[("shoe-fold", "Acme orange running shoe", "Trail shoe",
                                 "Acme", "Sports > Shoes > Running", 70.0)])
    full = model.transform(g)
    folded = model.transform(g, user_ids=RUNNERS[:2], item_ids=["shoe-fold"])
    torch.testing.assert_close(folded.item, full.item[rows(full.item_ids, ["shoe-fold"])])
    torch.testing.assert_close(folded.user, full.user[rows(full.user_ids, RUNNERS[:2])])
