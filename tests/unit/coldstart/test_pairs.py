"""Pair (graph-path) features, matched cold negatives, held-out items and the gated head.

Hand-built inputs with answers worked out by hand: 3 items with 2-d unit texts and one brand
each, 2 users with known histories.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kgrec.coldstart.features import GraphTensors
from kgrec.coldstart.heads import CTRHead
from kgrec.coldstart.item_tables import attr_slots
from kgrec.coldstart.pairs import (
    build_pair_inputs,
    feature_names,
    gate_columns,
    pair_feature_matrix,
    pair_features,
    stable_keys,
    without_recency,
)
from kgrec.coldstart.refit import fit_combination
from kgrec.coldstart.sampling import carve_cold_items, first_clicks, match_cold_negatives

BRAND = ("Item", "HAS_BRAND", "Brand")


def tiny_tensors() -> GraphTensors:
    # item 0 = (1, 0) brand A; item 1 = (0.6, 0.8) brand A; item 2 = (0, 1) brand B
    text = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    brand = torch.tensor([[0, 1, 2], [0, 0, 1]])
    return GraphTensors(num_nodes={"User": 2, "Item": 3, "Brand": 2, "Category": 0,
                                   "Attribute": 0},
                        item_x=text, shared_index={}, edges={BRAND: brand},
                        pos=torch.zeros((2, 0), dtype=torch.long),
                        pos_time=torch.zeros(0, dtype=torch.long),
                        impressions=torch.zeros((2, 0), dtype=torch.long))


def tiny_inputs(history: torch.Tensor, times: torch.Tensor | None = None,
                max_history: int = 256):  # type: ignore[no-untyped-def]
    keys = {"Item": stable_keys("Item", np.array(["i0", "i1", "i2"])),
            "Brand": stable_keys("Brand", np.array(["A", "B"]))}
    return build_pair_inputs(tiny_tensors(), history, [BRAND], keys, text_dim=2,
                             max_history=max_history, pair_time=times)


def test_features_have_the_hand_computed_values() -> None:
    # user 0 took items 0 and 2; user 1 took nothing
    inp = tiny_inputs(torch.tensor([[0, 0], [0, 2]]))
    f = pair_features(inp, torch.tensor([0, 1]), torch.tensor([1, 1]))
    assert feature_names([BRAND]) == ["text_mean", "text_max", "share_HAS_BRAND",
                                      "item_log_degree", "has_history", "item_has_history"]
    # cos(item1, item0) = 0.6, cos(item1, item2) = 0.8; one of two history items is brand A;
    # nobody took item 1
    torch.testing.assert_close(f[0], torch.tensor([0.7, 0.8, 0.5, 0.0, 1.0, 0.0]))
    torch.testing.assert_close(f[1], torch.zeros(6))


def test_history_features_count_the_users_other_items() -> None:
    # user 0 took items 0 and 2; user 1 took only item 1; candidate 1 for both
    keys = {"Item": stable_keys("Item", np.array(["i0", "i1", "i2"])),
            "Brand": stable_keys("Brand", np.array(["A", "B"]))}
    inp = build_pair_inputs(tiny_tensors(), torch.tensor([[0, 0, 1], [0, 2, 1]]), [BRAND],
                            keys, text_dim=2, history=True)
    names = feature_names([BRAND], history=True)
    assert names[-2:] == ["history_log_len", "short_history"] and inp.n_features == len(names)
    f = pair_features(inp, torch.tensor([0, 1]), torch.tensor([1, 1]))
    # user 0: two other items (short); user 1: none besides the candidate (no history at all)
    torch.testing.assert_close(f[:, -2:], torch.tensor([[float(np.log1p(2.0)) / 10, 1.0],
                                                        [0.0, 0.0]]))
    torch.testing.assert_close(pair_feature_matrix(inp, torch.tensor([0, 1]),
                                                   torch.tensor([1]))[:, 0], f)
    assert gate_columns(names) == (4, 5, 7)
    assert gate_columns(feature_names([BRAND])) == (4, 5)


def test_recency_features_weigh_the_latest_items_most(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("kgrec.coldstart.pairs.RECENCY_MIN_HISTORY", 1)
    # user 0 took item 2 (t=1), item 0 (t=5), item 1 (t=9): most recent first 1, 0, 2
    keys = {"Item": stable_keys("Item", np.array(["i0", "i1", "i2"])),
            "Brand": stable_keys("Brand", np.array(["A", "B"]))}
    history = torch.tensor([[0, 0, 0, 1], [2, 0, 1, 2]])
    inp = build_pair_inputs(tiny_tensors(), history, [BRAND], keys, text_dim=2,
                            pair_time=torch.tensor([1, 5, 9, 3]), cooc=True, recency=True)
    names = feature_names([BRAND], cooc=True, recency=True)
    assert names[-2:] == ["text_recent", "cooc_recent"] and inp.n_features == len(names)
    f = pair_features(inp, torch.tensor([0, 0, 1]), torch.tensor([0, 1, 0]))
    # candidate 0: its own entry (j = 1) is left out; item 1 (j = 0, w 1) cos 0.6, item 2
    # (j = 2, w 1/3) cos 0 -> 0.6 / (4/3) = 0.45. Candidate 1: item 0 (j = 1, w 1/2) cos 0.6,
    # item 2 (w 1/3) cos 0.8 -> (0.3 + 0.8/3) / (5/6) = 0.68
    torch.testing.assert_close(f[:2, -2], torch.tensor([0.45, 0.68]))
    # co-occurrence: user 1 took only item 2, so 0-1 pairs co-occur once each for user 0 with
    # cosine 1 / sqrt(1 * 1) = 1, and item 2 (2 users) with 0 or 1: 1 / sqrt(1 * 2)
    half = float(1 / np.sqrt(2))
    torch.testing.assert_close(f[:2, -1], torch.tensor([(1 + half / 3) / (4 / 3),
                                                         (0.5 + half / 3) / (5 / 6)]))
    torch.testing.assert_close(f[2, -2:], torch.tensor([0.0, half]))  # user 1: item 2 alone
    # the dense matrix path computes the same values
    torch.testing.assert_close(pair_feature_matrix(inp, torch.tensor([0, 1]),
                                                   torch.tensor([0, 1]))[[0, 0, 1], [0, 1, 0]], f)
    # without the flag: no recency columns
    assert feature_names([BRAND], cooc=True)[-1] == "item_has_history"
    # muted (joint training): the columns stay, at 0
    muted = without_recency(inp)
    assert muted.n_features == inp.n_features
    torch.testing.assert_close(pair_features(muted, torch.tensor([0, 0, 1]),
                                             torch.tensor([0, 1, 0]))[:, :-2], f[:, :-2])
    both = torch.tensor([0, 1])
    assert not pair_feature_matrix(muted, both, both)[..., -2:].any()
    # by default, fewer than four other history items give 0: the means say the same
    monkeypatch.undo()
    assert not pair_features(inp, torch.tensor([0, 0, 1]), torch.tensor([0, 1, 0]))[:, -2:].any()


def test_zero_wide_inputs_silences_the_last_features_in_every_part() -> None:
    head = CTRHead(4, n_pair=5, gate_columns=(0, 1, 2), warm_part=True)
    head.zero_wide_inputs(2)
    for part in (head.wide, head.short_wide, head.warm_wide):
        assert part is not None and not part[0].weight[:, -2:].any()  # type: ignore[index]
        assert part[0].weight[:, :-2].any()  # type: ignore[index]
    pair = torch.rand(3, 5)
    moved = pair.clone()
    moved[:, -2:] = torch.rand(3, 2)
    torch.testing.assert_close(head.wide_logit(pair), head.wide_logit(moved))


def test_first_clicks_shows_one_to_three_earliest_pairs_by_turns() -> None:
    users = torch.tensor([0, 0, 1, 1, 1, 2, 2, 2, 2, 0])
    times = torch.tensor([5, 1, 9, 8, 7, 4, 3, 2, 1, 3])
    shown = first_clicks(users, times, 3, 3)
    # user 0 shows 1 (its earliest, t=1), user 1 shows 2 (t=7, 8), user 2 shows 3 (t=1..3)
    assert shown.tolist() == [False, True, False, True, True, False, True, True, True, False]


def test_a_three_flag_gate_has_a_row_per_combination() -> None:
    head = CTRHead(4, n_pair=3, gate_columns=(0, 1, 2))
    assert head.gate is not None and head.gate.num_embeddings == 8
    with torch.no_grad():
        head.gate.weight.copy_(torch.arange(8, dtype=torch.float32)[:, None] - 4)
    deep = torch.ones(2)
    pair = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])  # rows 4 + 1 = 5 and 4 + 2 = 6
    wide = head.wide_logit(pair)
    torch.testing.assert_close(head.combine(deep, pair) - wide,
                               torch.sigmoid(torch.tensor([1.0, 2.0])))


def test_short_histories_get_their_own_wide_part_after_the_split() -> None:
    torch.manual_seed(0)
    head = CTRHead(4, n_pair=3, gate_columns=(0, 1, 2))
    assert head.wide is not None and head.short_wide is not None
    with torch.no_grad():
        head.wide[2].weight.normal_()  # type: ignore[operator]
    pair = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])  # a short history, a long one
    with torch.no_grad():
        before = head.wide_logit(pair)
        head.split_parts()  # a copy: nothing changes yet
        torch.testing.assert_close(head.wide_logit(pair), before)
        head.short_wide[2].bias.fill_(5.0)  # type: ignore[operator]
        after = head.wide_logit(pair)
    assert float(after[0] - before[0]) == pytest.approx(5.0) and float(after[1]) == float(before[1])
    assert "short_split" in head.state_dict() and bool(head.state_dict()["short_split"])
    assert "short_split" not in CTRHead(4, n_pair=2, gate_columns=(0, 1)).state_dict()


def test_the_candidate_is_left_out_of_its_own_history() -> None:
    inp = tiny_inputs(torch.tensor([[0, 0], [0, 2]]))
    f = pair_features(inp, torch.tensor([0]), torch.tensor([0]))
    # only item 2 remains: cos 0, other brand; item 0 itself is warm (1 interaction)
    log_degree = float(np.log1p(1.0)) / 10
    torch.testing.assert_close(f[0], torch.tensor([0.0, 0.0, 0.0, log_degree, 1.0, 1.0]))


def test_matrix_equals_pairs_and_concatenation_keeps_rows() -> None:
    inp = tiny_inputs(torch.tensor([[0, 0, 1], [0, 2, 1]]))
    users, items = torch.tensor([1, 0]), torch.tensor([2, 0, 1])
    mat = pair_feature_matrix(inp, users, items)
    flat = pair_features(inp, users.repeat_interleave(3), items.repeat(2)).reshape(2, 3, -1)
    torch.testing.assert_close(mat, flat)
    other = tiny_inputs(torch.tensor([[1], [1]]))  # a second transform: user 1 took item 1
    both = inp.with_users(other)  # rows 2, 3 = other's users; the items are inp's
    user_side = [0, 1, 2, 4]  # item_log_degree and item_has_history are inp's items'
    torch.testing.assert_close(
        pair_features(both, torch.tensor([3]), torch.tensor([0]))[:, user_side],
        pair_features(other, torch.tensor([1]), torch.tensor([0]))[:, user_side])
    more = inp.with_items(other)
    torch.testing.assert_close(pair_features(more, torch.tensor([0]), torch.tensor([4])),
                               pair_features(inp, torch.tensor([0]), torch.tensor([1])))
    sub = inp.select(torch.tensor([0]), torch.tensor([1]))
    torch.testing.assert_close(pair_features(sub, torch.tensor([0]), torch.tensor([0])),
                               pair_features(inp, torch.tensor([0]), torch.tensor([1])))


def test_max_history_keeps_the_most_recent() -> None:
    inp = tiny_inputs(torch.tensor([[0, 0], [0, 2]]), times=torch.tensor([5, 9]), max_history=1)
    f = pair_features(inp, torch.tensor([0]), torch.tensor([1]))
    assert float(f[0, 1]) == pytest.approx(0.8)  # only item 2 (newest) is left


def test_attr_slots_pad_and_stable_keys_are_nonzero() -> None:
    keys = stable_keys("Brand", np.array(["A", "B", "C"]))
    assert (keys != 0).all() and len(set(keys.tolist())) == 3
    assert not torch.equal(keys, stable_keys("Category", np.array(["A", "B", "C"])))
    slots = attr_slots(torch.tensor([[0, 0, 2], [0, 2, 1]]), 3, keys)
    assert slots.shape == (3, 2) and (slots[1] == 0).all()
    assert set(slots[0].tolist()) == {int(keys[0]), int(keys[2])}


def test_matched_cold_negatives_come_from_edgeless_items() -> None:
    gen = torch.Generator().manual_seed(0)
    edgeless = torch.tensor([False, True, True, False, True])
    negs = torch.zeros(1000, dtype=torch.long)
    pos_items = torch.tensor([1, 0]).repeat(500)
    out = match_cold_negatives(negs, pos_items, edgeless, gen)
    assert edgeless[out[pos_items == 1]].all()
    assert (out[pos_items == 0] == 0).all()  # warm positives keep their negatives


def test_carve_cold_items_moves_every_positive_of_the_chosen_items() -> None:
    gen = torch.Generator().manual_seed(0)
    pos = torch.stack([torch.arange(2000) % 7, torch.arange(2000) % 200])
    train, val, cold = carve_cold_items(pos, torch.arange(1500), torch.arange(1500, 2000), 200,
                                        0.3, gen)
    held = set(pos[1, cold].tolist())
    assert held and not held & (set(pos[1, train].tolist()) | set(pos[1, val].tolist()))
    assert sorted(torch.cat([train, val, cold]).tolist()) == list(range(2000))
    assert len(carve_cold_items(pos, torch.arange(1500), torch.arange(1500, 2000), 200, 0.0,
                                gen)[2]) == 0
    tiny = pos[:, :40] % 20  # 20 items: 30% would be 6 (< MIN_HELD_OUT_ITEMS), so none
    assert len(carve_cold_items(tiny, torch.arange(40), torch.zeros(0, dtype=torch.long), 20,
                                0.3, gen)[2]) == 0


def test_fit_combination_learns_to_distrust_noise_on_cold_items() -> None:
    gen = torch.Generator().manual_seed(0)
    head = CTRHead(4, n_pair=5, gate_columns=(3, 4))
    n_pos, m = 400, 9  # each positive, then 9 negatives per positive
    n = n_pos * (1 + m)
    y = torch.cat([torch.ones(n_pos), torch.zeros(n_pos * m)])
    feats = torch.zeros(n, 5)
    feats[:, 1] = y * 0.5 + torch.rand(n, generator=gen) * 0.6  # text_max carries signal
    feats[:, 3] = 1.0  # users have history; items are cold (last column 0)
    deep = torch.randn(n, generator=gen) * 3  # the GNN part is noise here
    cold_item = torch.tensor([2])  # gate row of (user has history, item has none)
    before = torch.sigmoid(head.gate(cold_item)).item()
    fit_combination(head, [(deep, feats, n_pos)])
    after = torch.sigmoid(head.gate(cold_item)).item()
    # combinations absent from the data keep their value
    assert torch.sigmoid(head.gate(torch.tensor([0]))).item() == pytest.approx(before)
    assert after < before / 2
    logit = head.combine(deep, feats).detach()
    auc = float(((logit[y == 1][:, None] > logit[y == 0][None, :]).float()).mean())
    assert auc > 0.8


def test_peer_share_is_the_share_of_same_profile_users_who_took_the_item() -> None:
    # users 0, 1, 2, 4 have segment s (attribute 0), user 3 has segment t (attribute 1);
    # users 0 and 1 took item 0, user 2 item 1, user 3 item 2; user 4 took nothing, so the
    # shares of segment s are over its 3 users with history
    t = tiny_tensors()
    profile_et = ("User", "HAS_ATTRIBUTE", "Attribute")
    t.num_nodes.update({"User": 5, "Attribute": 2})
    t.edges[profile_et] = torch.tensor([[0, 1, 2, 3, 4], [0, 0, 0, 1, 0]])
    keys = {"Item": stable_keys("Item", np.array(["i0", "i1", "i2"])),
            "Brand": stable_keys("Brand", np.array(["A", "B"])),
            "Attribute": stable_keys("Attribute", np.array(["segment=s", "segment=t"]))}
    inp = build_pair_inputs(t, torch.tensor([[0, 1, 2, 3], [0, 0, 1, 2]]), [BRAND], keys,
                            text_dim=2, profile_types=[profile_et])
    assert inp.n_features == len(feature_names([BRAND], profile=True)) == 7
    f = pair_features(inp, torch.tensor([4, 4, 3]), torch.tensor([0, 2, 0]))
    peer = feature_names([BRAND], profile=True).index("peer_share")
    torch.testing.assert_close(f[:, peer], torch.tensor([2 / 3, 0.0, 0.0]))
    assert float(f[0, -2]) == 0.0  # user 4 has no history: a profile-only user
    mat = pair_feature_matrix(inp, torch.tensor([4, 3]), torch.arange(3))
    torch.testing.assert_close(mat[:, :, peer], torch.tensor([[2 / 3, 1 / 3, 0], [0, 0, 1.0]]))


def test_item_tables_give_the_same_features_as_per_pair_arithmetic() -> None:
    from kgrec.coldstart.item_tables import item_tables

    history = torch.tensor([[0, 0, 1], [0, 2, 1]])
    keys = {"Item": stable_keys("Item", np.array(["i0", "i1", "i2"])),
            "Brand": stable_keys("Brand", np.array(["A", "B"]))}
    tables = item_tables(tiny_tensors(), [BRAND], keys, text_dim=2)
    assert tables is not None
    users, items = torch.tensor([0, 0, 1, 1, 0]), torch.tensor([1, 0, 2, 1, 2])
    for cooc in (False, True):  # with co-occurrence: its rows matrix instead of the key search
        fast = build_pair_inputs(tiny_tensors(), history, [BRAND], keys, text_dim=2,
                                 tables=tables, cooc=cooc)
        plain = build_pair_inputs(tiny_tensors(), history, [BRAND], keys, text_dim=2,
                                  cooc=cooc)
        assert (fast.cooc is not None and fast.cooc.by_row is not None) == cooc
        torch.testing.assert_close(pair_features(fast, users, items),
                                   pair_features(plain, users, items), rtol=0, atol=0)


def test_text_only_tables_give_the_same_features(monkeypatch: pytest.MonkeyPatch) -> None:
    import kgrec.coldstart.item_tables as item_tables_module

    history = torch.tensor([[0, 0, 1], [0, 2, 1]])
    keys = {"Item": stable_keys("Item", np.array(["i0", "i1", "i2"])),
            "Brand": stable_keys("Brand", np.array(["A", "B"]))}
    # 3 items x 2 columns = 18 cells: over a budget of 10, the text column alone (9) fits
    monkeypatch.setattr(item_tables_module, "_TABLE_BUDGET", 10)
    tables = item_tables_module.item_tables(tiny_tensors(), [BRAND], keys, text_dim=2)
    assert tables is not None and not tables.has_attrs and tables.cells.shape == (9, 1)
    users, items = torch.tensor([0, 0, 1, 1, 0]), torch.tensor([1, 0, 2, 1, 2])
    fast = build_pair_inputs(tiny_tensors(), history, [BRAND], keys, text_dim=2,
                             tables=tables, cooc=True)
    plain = build_pair_inputs(tiny_tensors(), history, [BRAND], keys, text_dim=2, cooc=True)
    torch.testing.assert_close(pair_features(fast, users, items),
                               pair_features(plain, users, items))
    monkeypatch.setattr(item_tables_module, "_TEXT_TABLE_BUDGET", 8)  # not even the text
    assert item_tables_module.item_tables(tiny_tensors(), [BRAND], keys, text_dim=2) is None


def test_matrix_in_many_blocks_equals_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    import kgrec.coldstart.pairs as pairs

    inp = tiny_inputs(torch.tensor([[0, 0, 1], [0, 2, 1]]))
    users, items = torch.tensor([0, 1, 0, 1]), torch.tensor([2, 0, 1])
    whole = pair_feature_matrix(inp, users, items)
    monkeypatch.setattr(pairs, "_EXPANDED_BUDGET", 1)  # one user and one candidate per block
    torch.testing.assert_close(pair_feature_matrix(inp, users, items), whole)


def test_the_refit_sees_held_out_users_with_their_history_hidden(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import kgrec.coldstart.train as train
    from kgrec.coldstart import ColdStartModel, ModelConfig
    from kgrec.coldstart.pairs import GATE_FLAGS
    from kgrec.encoders import HashingEncoder
    from kgrec.graph.build import build_graph
    from kgrec.graph.export import to_hetero_data
    from kgrec.graph.synthetic import generate_catalog

    seen: list[list[tuple[torch.Tensor, torch.Tensor, int]]] = []
    monkeypatch.setattr(train, "fit_combination",
                        lambda head, parts, ranked=(), **_: seen.append(parts))
    tables = generate_catalog(800, 300, 8000, n_new_items=0, n_new_users=0, seed=1).tables
    model = ColdStartModel(ModelConfig(hidden_dim=16, epochs=1, steps_per_epoch=1),
                           text_encoder=HashingEncoder(dim=32), num_threads=1)
    model.fit(to_hetero_data(build_graph(tables)))
    (parts,) = seen
    assert len(parts) == 4  # held-out items, warm validation, new users, few clicks
    names = feature_names(model.pair_attr_types_, bool(model.pair_profile_types_),
                          model.config_.cooc_features, model.config_.lexical_features,
                          model.config_.history_features)
    history, short = names.index(GATE_FLAGS[0]), names.index("short_history")
    length = names.index("history_log_len")
    cold_items, warm, new_users, few = parts
    assert bool((new_users[1][:, history] == 0).all())  # nobody in the new-user set has history
    assert bool((warm[1][:new_users[2], history] == 1).any())
    # the few-clicks users see 1 to 3 of their own items (all but the candidate itself)
    n_hist = torch.expm1(few[1][:, length] * 10).round()
    assert bool((n_hist <= 3).all()) and bool((n_hist >= 1).any())
    assert bool((few[1][:, short] == (n_hist >= 1).float()).all())
    assert bool((warm[1][:, short] == 0).any())
    assert new_users[2] > 0 and len(new_users[0]) == len(new_users[1])


def test_recency_columns_are_learned_by_the_refit_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import kgrec.coldstart.train as train
    from kgrec.coldstart import ColdStartModel, ModelConfig
    from kgrec.encoders import HashingEncoder
    from kgrec.graph.build import build_graph
    from kgrec.graph.export import to_hetero_data
    from kgrec.graph.synthetic import generate_catalog

    seen: list[tuple[torch.Tensor, list[torch.Tensor]]] = []

    def capture(head: CTRHead, parts, ranked=(), **_):  # type: ignore[no-untyped-def]
        assert head.wide is not None
        seen.append((head.wide[0].weight.detach().clone(),  # type: ignore[index]
                     [f for _, f, _ in parts]))
    monkeypatch.setattr(train, "fit_combination", capture)
    tables = generate_catalog(800, 300, 8000, n_new_items=0, n_new_users=0, seed=1).tables
    model = ColdStartModel(ModelConfig(hidden_dim=16, epochs=2, steps_per_epoch=2,
                                       recency_features=True),
                           text_encoder=HashingEncoder(dim=32), num_threads=1)
    model.fit(to_hetero_data(build_graph(tables)))
    (weight, feats), = seen
    assert not weight[:, -2:].any() and weight[:, :-2].any()  # joint training: held at 0
    assert any(bool(f[:, -2:].any()) for f in feats)  # the refit sets: the real values
