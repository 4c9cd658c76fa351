"""The refit's ranked set: the latest share of a user's history, ranked against every item."""

from __future__ import annotations

import copy

import pytest
import torch

from kgrec.coldstart.heads import CTRHead
from kgrec.coldstart.pairs import feature_names
from kgrec.coldstart.refit import RankedSet, fit_combination
from kgrec.coldstart.sampling import hide_latest, latest_share


def test_latest_share_holds_out_each_users_latest_fifth_and_at_least_one() -> None:
    # user 0: 10 pairs (times 9..0, shuffled order) -> its 2 latest; user 1: one pair -> it;
    # user 2: 4 pairs, two at the same latest time -> one held, the later row
    users = torch.tensor([0] * 10 + [1] + [2] * 4)
    times = torch.tensor([9, 3, 7, 0, 8, 1, 2, 6, 5, 4, 5, 1, 3, 3, 2])
    held = latest_share(users, times, 3, 0.2)
    assert held.tolist() == [True, False, False, False, True, False, False, False, False,
                             False, True, False, False, True, False]


def _signal_set(seed: int = 0) -> RankedSet:
    """30 users x 50 candidates; each user's positive is the candidate whose column 1 is
    highest, while column 0 (popularity-like, shared by every user) is noise for the ranking."""
    gen = torch.Generator().manual_seed(seed)
    n_u, n_c = 30, 50
    feats = torch.zeros(n_u, n_c, 5)
    feats[..., 0] = torch.rand(n_c, generator=gen)
    feats[..., 1] = torch.rand(n_u, n_c, generator=gen)
    feats[..., 2] = 1.0  # history
    feats[..., 3] = 1.0  # warm items
    # column 4, a short history: 0 (users with a longer history, scored by the warm part)
    deep = torch.randn(n_u, n_c, generator=gen)
    return RankedSet(deep, feats, torch.arange(n_u), feats[..., 1].argmax(1),
                     torch.zeros(n_u, n_c, dtype=torch.bool))


@pytest.mark.parametrize("anchor", [0.0, 1e-3])
def test_fit_combination_on_a_ranked_set_puts_the_signal_first(anchor: float) -> None:
    torch.manual_seed(0)
    head = CTRHead(4, n_pair=5, gate_columns=(2, 3, 4), warm_part=True)
    head.split_parts()  # as the refit does
    ranked = _signal_set()
    before = ranked.loss(head).item()
    hits_before = (head.combine(ranked.deep, ranked.feats).detach().argmax(1)
                   == ranked.target).float().mean()
    fit_combination(head, [], [ranked], anchor=anchor)
    after = ranked.loss(head).item()
    assert after < before / 2
    top = head.combine(ranked.deep, ranked.feats).detach().argmax(1)
    assert hits_before < 0.2 and (top == ranked.target).float().mean() >= 0.75


def test_the_anchor_holds_the_history_parts_near_the_jointly_trained_weights() -> None:
    torch.manual_seed(0)
    start = CTRHead(4, n_pair=5, gate_columns=(2, 3, 4), warm_part=True)
    start.split_parts()
    moved, main = {}, {}
    for anchor in (0.0, 1e-3, 10.0):
        head = copy.deepcopy(start)
        fit_combination(head, [], [_signal_set()], anchor=anchor)
        moved[anchor] = sum(float((p - q).detach().pow(2).sum()) for p, q in
                            zip(head.history_parameters(), start.history_parameters(),
                                strict=True))
        assert head.wide is not None and start.wide is not None
        main[anchor] = [p.detach().clone() for p in head.wide.parameters()]
    assert moved[10.0] < moved[1e-3] < moved[0.0]
    assert moved[10.0] < 0.05 * moved[0.0]
    # the part of users without history is not anchored (and this set does not move it)
    for anchor in (1e-3, 10.0):
        for p, q in zip(main[anchor], main[0.0], strict=True):
            assert torch.equal(p, q)


def test_a_negative_refit_anchor_is_refused() -> None:
    from kgrec.coldstart import ModelConfig

    with pytest.raises(ValueError, match="refit_anchor must be >= 0"):
        ModelConfig(refit_anchor=-1e-3).validate()


def test_refit_steps_reach_the_refit_and_zero_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import kgrec.coldstart.train as train
    from kgrec.coldstart import ColdStartModel, ModelConfig
    from kgrec.encoders import HashingEncoder
    from kgrec.graph.build import build_graph
    from kgrec.graph.export import to_hetero_data
    from kgrec.graph.synthetic import generate_catalog

    with pytest.raises(ValueError, match="refit_steps must be >= 1"):
        ModelConfig(refit_steps=0).validate()
    seen: list[int] = []
    monkeypatch.setattr(train, "fit_combination",
                        lambda *_, steps=300, **__: seen.append(steps))
    tables = generate_catalog(800, 300, 8000, n_new_items=0, n_new_users=0, seed=1).tables
    ColdStartModel(ModelConfig(hidden_dim=16, epochs=1, steps_per_epoch=1, refit_steps=7),
                   text_encoder=HashingEncoder(dim=32), num_threads=1
                   ).fit(to_hetero_data(build_graph(tables)))
    assert seen == [7]


def test_a_masked_candidate_never_competes_with_the_positive() -> None:
    head = CTRHead(4, n_pair=4, gate_columns=(2, 3))
    feats = torch.zeros(1, 3, 4)
    deep = torch.tensor([[0.0, 50.0, 0.0]])  # candidate 1 would win by far
    open_set = RankedSet(deep, feats, torch.tensor([0]), torch.tensor([0]),
                         torch.zeros(1, 3, dtype=torch.bool))
    masked = RankedSet(deep, feats, torch.tensor([0]), torch.tensor([0]),
                       torch.tensor([[False, True, False]]))
    head.eval()
    assert open_set.loss(head).item() > 10
    assert masked.loss(head).item() == pytest.approx(torch.log(torch.tensor(2.0)).item(),
                                                     abs=1e-4)


def test_the_ranked_set_hides_the_latest_fifth_and_ranks_it_against_every_item(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import kgrec.coldstart.train as train
    from kgrec.coldstart import ColdStartModel, ModelConfig
    from kgrec.encoders import HashingEncoder
    from kgrec.graph.build import build_graph
    from kgrec.graph.export import to_hetero_data
    from kgrec.graph.synthetic import generate_catalog

    seen: list[list[RankedSet]] = []
    monkeypatch.setattr(train, "fit_combination",
                        lambda head, parts, ranked=(), **_: seen.append(list(ranked)))
    tables = generate_catalog(800, 300, 8000, n_new_items=0, n_new_users=0, seed=1).tables
    model = ColdStartModel(ModelConfig(hidden_dim=16, epochs=1, steps_per_epoch=1),
                           text_encoder=HashingEncoder(dim=32), num_threads=1)
    graph = to_hetero_data(build_graph(tables))
    model.fit(graph)
    (ranked_sets,) = seen
    (ranked,) = ranked_sets
    n_items = len(graph.node_ids["Item"])
    n_users, n_cands = ranked.deep.shape
    assert n_cands == n_items  # a small catalogue: every item is a candidate
    assert ranked.feats.shape[:2] == (n_users, n_items)
    assert not bool(ranked.mask[torch.arange(len(ranked.row)), ranked.target].any())
    names = feature_names(model.pair_attr_types_, bool(model.pair_profile_types_),
                          model.config_.cooc_features, model.config_.lexical_features,
                          model.config_.history_features)
    length = names.index("history_log_len")
    shown = torch.expm1(ranked.feats[:, :, length] * 10).round()
    # a positive's row: the user's shown items (all but the held-out latest fifth, and all
    # but the candidate itself when it is one of them), plus the held ones masked
    held = torch.bincount(ranked.row, minlength=n_users)
    other = ranked.mask.float().sum(1)  # the user's other positives, shown or held
    total = (other + 1)  # every positive of the user
    n_shown = shown[ranked.row, ranked.target]
    assert torch.equal(n_shown, total - held[ranked.row].float())
    assert bool((held >= 1).all())
    off = ModelConfig(hidden_dim=16, epochs=1, steps_per_epoch=1, ranked_refit=False)
    seen.clear()
    ColdStartModel(off, text_encoder=HashingEncoder(dim=32), num_threads=1).fit(graph)
    assert seen == [[]]


def test_users_with_a_longer_history_get_their_own_wide_part_after_the_split() -> None:
    torch.manual_seed(0)
    head = CTRHead(4, n_pair=3, gate_columns=(0, 1, 2), warm_part=True)
    assert head.wide is not None and head.warm_wide is not None
    with torch.no_grad():
        head.wide[2].weight.normal_()  # type: ignore[operator]
    # no history, a short history, a longer one
    pair = torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    with torch.no_grad():
        before = head.wide_logit(pair)
        head.split_parts()  # copies: nothing changes yet
        torch.testing.assert_close(head.wide_logit(pair), before)
        head.warm_wide[2].bias.fill_(5.0)  # type: ignore[operator]
        after = head.wide_logit(pair)
    assert (after - before).tolist() == pytest.approx([0.0, 0.0, 5.0])
    assert bool(head.state_dict()["warm_split"])
    assert "warm_split" not in CTRHead(4, n_pair=3, gate_columns=(0, 1, 2)).state_dict()


def test_hide_latest_hides_the_chosen_users_latest_share_from_the_graph() -> None:
    # training pairs (user, item, time); validation pairs; users 0 and 2 chosen, user 1 not
    train_pos = torch.tensor([[0, 0, 0, 0, 1, 1, 2], [10, 11, 12, 13, 10, 11, 10]])
    train_time = torch.tensor([1, 2, 3, 4, 1, 2, 1])
    val_pos = torch.tensor([[0, 1, 2], [14, 12, 11]])
    val_time = torch.tensor([5, 3, 2])
    hidden = hide_latest(train_pos, train_time, val_pos, val_time, torch.tensor([0, 2]), 3, 0.4)
    assert hidden.pos.tolist() == [[0, 0, 0, 0, 2, 0, 2], [10, 11, 12, 13, 10, 14, 11]]
    # user 0: 5 pairs -> its 2 latest (items 13, 14); user 2: 2 pairs -> at least one (item 11)
    assert hidden.pos[:, hidden.held].tolist() == [[0, 0, 2], [13, 14, 11]]
    assert hidden.msg.tolist() == [[1, 1, 0, 0, 0, 2], [10, 11, 10, 11, 12, 10]]
    assert hidden.msg_time.tolist() == [1, 2, 1, 2, 3, 1]
