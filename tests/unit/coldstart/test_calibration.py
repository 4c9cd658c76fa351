"""Calibration helpers on inputs with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kgrec.coldstart import PlattCalibrator, expected_calibration_error, log_loss
from kgrec.graph.tables import CatalogTables


def test_log_loss_known_values() -> None:
    assert log_loss(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(math.log(2))
    assert log_loss(np.array([1]), np.array([1.0])) == pytest.approx(0, abs=1e-6)
    w = np.array([1.0, 3.0])
    want = -(math.log(0.8) + 3 * math.log(0.9)) / 4
    assert log_loss(np.array([1, 0]), np.array([0.8, 0.1]), w) == pytest.approx(want)


def test_ece_known_values() -> None:
    y = np.array([1, 0, 1, 0])
    assert expected_calibration_error(y, np.full(4, 0.5)) == pytest.approx(0.0)
    assert expected_calibration_error(y, np.full(4, 0.9)) == pytest.approx(0.4)
    # two bins: (p=0.1, y=0,0) gap 0.1 and (p=0.9, y=1,1) gap 0.1
    assert expected_calibration_error(np.array([0, 0, 1, 1]), np.array([.1, .1, .9, .9]),
                                      n_bins=2) == pytest.approx(0.1)
    # weights move the bin share
    assert expected_calibration_error(np.array([0, 1]), np.array([0.0, 0.5]), n_bins=2,
                                      sample_weight=np.array([3.0, 1.0])) == pytest.approx(0.125)


@pytest.mark.parametrize("bad", [np.array([1.2, 0.1]), np.array([np.nan, 0.1])])
def test_probabilities_outside_unit_interval_raise(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        log_loss(np.array([1, 0]), bad)


def test_platt_recovers_known_parameters() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=50_000) * 3
    y = (rng.random(50_000) < 1 / (1 + np.exp(-(0.5 * z - 2)))).astype(float)
    cal = PlattCalibrator().fit(z, y)
    assert cal.a_ == pytest.approx(0.5, abs=0.03)
    assert cal.b_ == pytest.approx(-2.0, abs=0.06)
    assert expected_calibration_error(y, cal.predict_proba(z)) < 0.01


def test_platt_weights_restore_base_rate() -> None:
    # 1 positive per 10 sampled negatives, each negative standing for 100 real ones
    z = np.concatenate([np.ones(100), np.zeros(1000)])
    y = np.concatenate([np.ones(100), np.zeros(1000)])
    w = np.concatenate([np.ones(100), np.full(1000, 100.0)])
    p = PlattCalibrator().fit(z, y, w).predict_proba(z)
    mean_p = np.sum(w * p) / w.sum()
    assert mean_p == pytest.approx(100 / 100_100, rel=1e-3)


def test_platt_never_reverses_a_ranking(caplog: pytest.LogCaptureFixture) -> None:
    # labels fall as logits rise: the fitted slope would be negative and flip every ranking
    rng = np.random.default_rng(0)
    z = rng.normal(size=20_000)
    y = (rng.random(20_000) < 1 / (1 + np.exp(2 * z + 3))).astype(float)
    with caplog.at_level("WARNING", logger="kgrec.coldstart.calibration"):
        cal = PlattCalibrator().fit(z, y)
    assert cal.a_ == 1.0 and "slope" in caplog.text
    p = cal.predict_proba(z)
    assert (np.diff(p[np.argsort(z)]) >= 0).all()  # the logits' order is kept
    assert np.mean(p) == pytest.approx(y.mean(), rel=0.05)  # and the level is fitted


def test_calibration_keeps_the_order_far_in_the_tail() -> None:
    # chances around 1e-20: a rounding sigmoid would tie them all at 0
    cal = PlattCalibrator()
    cal.a_, cal.b_ = 1.0, -45.0
    p = cal.predict_proba(np.array([-1.0, -0.5, 0.0, 0.5]))
    assert (np.diff(p) > 0).all() and p[0] > 0
    assert p[2] == pytest.approx(math.exp(-45.0), rel=1e-12)


def test_platt_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both positive and negative"):
        PlattCalibrator().fit(np.zeros(3), np.zeros(3))


def test_new_users_get_a_calibration_of_their_own(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from kgrec.coldstart import ColdStartModel, ModelConfig
    from kgrec.coldstart.calibration import FEW_CLICKS, NEW_ITEM, NEW_USER, ScopedCalibrator
    from kgrec.encoders import HashingEncoder
    from kgrec.graph.build import build_graph
    from kgrec.graph.export import to_hetero_data
    from kgrec.graph.synthetic import generate_catalog

    tables = generate_catalog(400, 300, 8000, n_new_items=0, n_new_users=0, seed=3).tables
    model = ColdStartModel(ModelConfig(hidden_dim=16, epochs=2, steps_per_epoch=2),
                           text_encoder=HashingEncoder(dim=32), num_threads=1)
    model.fit(to_hetero_data(build_graph(tables)))
    by_length = {f"{FEW_CLICKS}_{k}" for k in (1, 2, 3)}  # one few-clicks calibration per length
    assert set(model.regime_calibrators_) == {NEW_ITEM, NEW_USER, FEW_CLICKS} | by_length
    assert set(model.calibration_["regimes"]) == {NEW_ITEM, NEW_USER, FEW_CLICKS} | by_length
    # one user's list keeps the order of its logits whatever the items' history
    emb0 = model.transform(to_hetero_data(build_graph(tables)))
    row = model.score_matrix(emb0, [0])[0]
    logits = model.predict_logits(emb0, np.zeros(len(row), dtype=np.int64), np.arange(len(row)))
    assert (np.argsort(-row, kind="stable") == np.argsort(-logits, kind="stable")).mean() > 0.99
    # the same catalogue with one item's interactions and one user's history removed
    inter = tables.interactions
    item, user = str(inter["item_id"].iloc[0]), str(inter["user_id"].iloc[-1])
    keep = (inter["item_id"] != item) & (inter["user_id"] != user)
    graph = to_hetero_data(build_graph(CatalogTables(items=tables.items, users=tables.users,
                                                     interactions=inter[keep])))
    emb = model.transform(graph)
    i_new = int(graph.index_of("Item", [item])[0])
    u_new = int(graph.index_of("User", [user])[0])
    length = (emb.pairs.hist_ptr[1:] - emb.pairs.hist_ptr[:-1]).numpy()
    u_warm = int(np.argmax(length))  # the longest history
    i_warm = int(graph.index_of("Item", [str(inter.loc[keep, "item_id"].iloc[0])])[0])
    u_few = int(np.flatnonzero((length >= 1) & (length <= 3))[0])  # one to three clicks
    few = model.regime_calibrators_[f"{FEW_CLICKS}_{length[u_few]}"]  # that length's own
    # a score matrix over new SKUs only: the new-SKU calibration; in a list that also holds
    # warm items, and for pairs scored on their own, the user's regime decides (new user, few
    # clicks or warm): items never change it inside a list
    new_item, new_user = model.regime_calibrators_[NEW_ITEM], model.regime_calibrators_[NEW_USER]
    assert isinstance(new_item, ScopedCalibrator)  # its level follows the list's length
    cases = [(u_warm, [i_new], [new_item]), (u_new, [i_new], [new_item]),
             (u_warm, [i_new, i_new], [new_item] * 2),
             (u_new, [i_warm], [new_user]), (u_warm, [i_warm], [model.calibrator_]),
             (u_warm, [i_new, i_warm], [model.calibrator_] * 2),
             (u_new, [i_new, i_warm], [new_user] * 2),
             (u_few, [i_new, i_warm], [few] * 2)]
    for u, items, calibrators in cases:
        logit = model.predict_logits(emb, [u] * len(items), items)
        # the new-SKU calibration at the list's length (ScopedCalibrator)
        want = [(c.for_scope(len(items)) if c is new_item else c).predict_proba(z)
                for c, z in zip(calibrators, logit, strict=True)]
        np.testing.assert_allclose(model.score_matrix(emb, [u], items)[0], want, rtol=1e-5)
        user_regime = model.calibrator_ if u == u_warm else \
            new_user if u == u_new else few
        np.testing.assert_allclose(model.predict_proba(emb, [u] * len(items), items),
                                   user_regime.predict_proba(logit))
    loaded = ColdStartModel.load(model.save(tmp_path / "m"), num_threads=1)
    scoped = loaded.regime_calibrators_[NEW_ITEM]  # the new-SKU calibration keeps its scope
    assert isinstance(scoped, ScopedCalibrator)
    assert (scoped.items, scoped.exponent) == (new_item.items, new_item.exponent)
    assert 0.0 <= new_item.exponent <= 1.0 and new_item.items > 0
    np.testing.assert_array_equal(loaded.score_matrix(loaded.transform(graph)),
                                  model.score_matrix(emb))


def test_warm_calibration_predicts_the_next_fifth_of_a_history() -> None:
    # 50 users x 10 of items 0..194, the latest one the validation positive; items 198 and 199
    # held out as new SKUs. The warm target hides each history's latest 2 (a fifth), leaving 8
    # shown: with logits that say nothing, the calibrated chance is 2 in the 198 - 8 candidates
    # a user has not been shown
    import torch

    from kgrec.coldstart.calibration import calibrate_warm

    gen = torch.Generator().manual_seed(0)
    users = torch.arange(50).repeat_interleave(10)
    items = torch.stack([torch.randperm(195, generator=gen)[:10] for _ in range(50)]).reshape(-1)
    pos = torch.cat([torch.stack([users, items]), torch.tensor([[0, 1], [199, 198]])], dim=1)
    time = torch.cat([torch.arange(500), torch.tensor([0, 0])])
    val_idx = torch.arange(9, 500, 10)
    train_idx = torch.tensor([k for k in range(500) if k % 10 != 9])
    seen = []

    def logit_fn_on(msg: torch.Tensor, times: torch.Tensor):  # type: ignore[no-untyped-def]
        seen.append(msg.shape[1])
        return lambda u, i: np.zeros(len(u))

    cal, report = calibrate_warm(logit_fn_on, pos, time, train_idx, val_idx,
                                 torch.tensor([500, 501]), 50, 200, 20, gen)
    assert seen == [400]  # the graph keeps each user's 8 earliest items
    assert report["n_pos"] == 50  # half of the 100 hidden positives report
    assert float(cal.predict_proba(np.zeros(1))[0]) == pytest.approx(2 / (198 - 8), rel=1e-6)


def test_scope_exponent_tells_sparse_from_dense_takers() -> None:
    import torch

    from kgrec.coldstart.calibration import scope_exponent

    gen = torch.Generator().manual_seed(0)
    # sparse: each of 2,000 users took exactly one of 100 new SKUs: the chance per SKU of a
    # user who took one is 1 / n, whatever n is listed
    one_each = torch.stack([torch.arange(2000), torch.randint(100, (2000,), generator=gen)])
    assert scope_exponent(one_each, gen) == pytest.approx(1.0, abs=0.05)
    # dense: each of 200 users took each SKU with chance 0.3: a longer list, as many per SKU
    took = torch.rand((200, 100), generator=gen) < 0.3
    assert scope_exponent(torch.nonzero(took).T, gen) == pytest.approx(0.0, abs=0.05)


def test_a_scoped_calibration_follows_the_list_length() -> None:
    from kgrec.coldstart.calibration import ScopedCalibrator

    cal = ScopedCalibrator(items=100, exponent=1.0)
    cal.a_, cal.b_ = 1.0, 0.0
    assert cal.for_scope(100).predict_proba(np.zeros(1))[0] == pytest.approx(0.5)
    # twice the items: half the odds per item
    assert cal.for_scope(200).predict_proba(np.zeros(1))[0] == pytest.approx(1 / 3)
    flat = ScopedCalibrator(items=100, exponent=0.0)
    flat.a_, flat.b_ = 1.0, 0.0
    assert flat.for_scope(200).predict_proba(np.zeros(1))[0] == pytest.approx(0.5)
