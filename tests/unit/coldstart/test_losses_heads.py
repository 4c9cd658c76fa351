"""The listwise losses, the attribute-match terms, centring and the fast head paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from kgrec.coldstart import ColdStartModel, CTRHead
from kgrec.coldstart.sampling import NegativeSampler
from kgrec.coldstart.train import TrainConfig, UserItems, cold_softmax_loss, softmax_loss
from kgrec.graph.export import ExportedGraph
from tests.shops import HOMERS, MUGS, NEW_MUG, NEW_SHOE, RUNNERS, SHOES, shop_graph, small_model


def rows(ids: np.ndarray, wanted: list[str]) -> np.ndarray:
    pos = {v: k for k, v in enumerate(ids)}
    return np.array([pos[w] for w in wanted])


def test_indexed_and_matrix_paths_equal_pairwise_forward() -> None:
    torch.manual_seed(0)
    head = CTRHead(8, text_dim=5, attr_dims=(3, 2)).eval()
    torch.nn.init.normal_(head.mlp[2].weight)  # starts at zero; make the MLP count
    hu, hi = torch.randn(6, 18), torch.randn(7, 18)
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


def test_user_items_lists_each_users_positives() -> None:
    pairs = torch.tensor([[2, 0, 2, 1], [5, 3, 1, 4]])
    r, c = UserItems(pairs, 4).rows_cols(torch.tensor([2, 3, 0]))
    assert sorted(zip(r.tolist(), c.tolist(), strict=True)) == [(0, 1), (0, 5), (2, 3)]


def test_softmax_losses_full_sampled_and_cold_are_finite_and_masked() -> None:
    torch.manual_seed(0)
    head = CTRHead(4)
    h_users, h_items = torch.randn(3, 4), torch.randn(10, 4)
    known = UserItems(torch.tensor([[0, 0, 1], [2, 3, 4]]), 3)
    users, pos = torch.tensor([0, 1]), torch.tensor([2, 4])
    sampler = NegativeSampler(10, torch.arange(10.0), 0.5)
    gen = torch.Generator().manual_seed(0)
    full = softmax_loss(head, h_users[users], h_items, pos, known, users, sampler,
                        TrainConfig(), gen)
    sampled = softmax_loss(head, h_users[users], h_items, pos, known, users, sampler,
                           TrainConfig(softmax_max_items=5, softmax_samples=6), gen)
    assert torch.isfinite(full) and torch.isfinite(sampled) and full > 0 and sampled > 0
    full.backward()
    assert head.user_tower.weight.grad is not None
    cold = torch.zeros(10, dtype=torch.bool)
    assert cold_softmax_loss(head, h_users[users], h_items, pos, known, users, cold) is None
    cold[[2, 3, 7]] = True  # user 0's other positive (3) is masked: 2 candidates remain
    loss = cold_softmax_loss(head, h_users[users], h_items, pos, known, users, cold)
    assert loss is not None and torch.isfinite(loss)


def test_attribute_match_blocks_are_brand_shares(graph: ExportedGraph) -> None:
    model = small_model(attr_match_buckets=64, epochs=2).fit(graph)
    emb = model.transform(graph)
    n_brand = len(model.vocabs_["Brand"])
    d = model.hidden_dim + 64
    # blocks follow the edge types in order: HAS_BRAND (n_brand), IN_CATEGORY, ...
    assert emb.item.shape[1] > d + n_brand
    item_brand = emb.item[:, d:d + n_brand]
    assert torch.allclose(item_brand.sum(1), torch.ones(len(emb.item)))
    shoe, mug = rows(emb.item_ids, [NEW_SHOE, NEW_MUG])
    runner = rows(emb.user_ids, RUNNERS[:1])[0]
    user_brand = emb.user[runner, d:d + n_brand]
    assert float(user_brand @ item_brand[shoe]) == 1.0  # runners bought only Acme
    assert float(user_brand @ item_brand[mug]) == 0.0


def test_new_options_learn_the_shop_and_survive_save_load(graph: ExportedGraph,
                                                          tmp_path: Path) -> None:
    model = small_model(attr_match_buckets=64, center_embeddings=True, softmax_weight=1.0,
                        cold_softmax_weight=1.0).fit(graph)
    emb = model.transform(graph)
    new = rows(emb.item_ids, [NEW_SHOE, NEW_MUG])
    s_run = model.score_matrix(emb, rows(emb.user_ids, RUNNERS), new)
    s_home = model.score_matrix(emb, rows(emb.user_ids, HOMERS), new)
    assert (s_run[:, 0] > s_run[:, 1]).all() and (s_home[:, 1] > s_home[:, 0]).all()
    r = model.retrieval_scores(emb, rows(emb.user_ids, RUNNERS), rows(emb.item_ids, SHOES + MUGS))
    assert (r[:, :6].mean(1) > r[:, 6:].mean(1)).all()
    loaded = ColdStartModel.load(model.save(tmp_path / "m"))
    np.testing.assert_array_equal(model.score_matrix(emb),
                                  loaded.score_matrix(loaded.transform(graph)))
    # fold-in with running statistics (centring) gives the full-graph vectors
    g = shop_graph(extra_items=[("shoe-fold", "Acme orange running shoe", "Trail shoe",
                                 "Acme", "Sports > Shoes > Running", 70.0)])
    full = model.transform(g)
    folded = model.transform(g, user_ids=RUNNERS[:2], item_ids=["shoe-fold"])
    torch.testing.assert_close(folded.item, full.item[rows(full.item_ids, ["shoe-fold"])])
    torch.testing.assert_close(folded.user, full.user[rows(full.user_ids, RUNNERS[:2])])


def test_attribute_blocks_are_capped_by_the_memory_budget(graph: ExportedGraph) -> None:
    model = small_model(attr_match_buckets=64, attr_match_max_floats=24 * 2, epochs=1)
    model.fit(graph)  # 24 users, budget 2 columns in all
    assert sum(n for _, n in model.attr_dims_) <= 2
    emb = model.transform(graph)
    assert emb.user.shape[1] == model.hidden_dim + 64 + sum(n for _, n in model.attr_dims_)
