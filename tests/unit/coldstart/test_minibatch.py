"""Mini-batch training and layer-wise inference (kgrec.coldstart.minibatch) on small graphs."""

from __future__ import annotations

import pytest
import torch

from kgrec.coldstart import ModelConfig
from kgrec.coldstart.config import MINI_BATCH_ABOVE
from kgrec.coldstart.features import (
    INTERACTED,
    ITEM,
    REV_INTERACTED,
    USER,
    graph_tensors,
    with_interactions,
)
from kgrec.coldstart.minibatch import (
    NeighbourSampler,
    NodeDropout,
    encode_graph,
    hashed_uniform,
    step_pair_inputs,
    trimmed_forward,
)
from kgrec.graph.export import ExportedGraph
from tests.shops import MUGS, RUNNERS, SHOES, small_model


def _edges() -> tuple[dict[tuple[str, str, str], torch.Tensor], dict[str, int]]:
    # user 0 bought items 0, 1; user 1 bought 1, 2; user 2 bought 3; item 4 has no buyer
    inter = torch.tensor([[0, 0, 1, 1, 2], [0, 1, 1, 2, 3]])
    return {INTERACTED: inter, REV_INTERACTED: inter.flip(0)}, {USER: 3, ITEM: 5}


def test_sampler_takes_every_neighbour_under_the_fanout() -> None:
    edges, n = _edges()
    nodes, sub, depth = NeighbourSampler(edges, n, fanout=10, hops=2).sample(
        {USER: torch.tensor([0])}, torch.Generator().manual_seed(0))
    # 2 hops from user 0: its items 0, 1, then item 1's other buyer, user 1
    assert nodes[USER].tolist() == [0, 1]
    assert nodes[ITEM].tolist() == [0, 1]
    assert depth[USER].tolist() == [0, 2] and depth[ITEM].tolist() == [1, 1]
    # hop 1 (into user 0): its items; hop 2 (into items 0, 1): their buyers
    rev = {(int(nodes[ITEM][i]), int(nodes[USER][u])) for i, u in sub[REV_INTERACTED].T}
    assert rev == {(0, 0), (1, 0)}
    fwd = {(int(nodes[USER][u]), int(nodes[ITEM][i])) for u, i in sub[INTERACTED].T}
    assert fwd == {(0, 0), (0, 1), (1, 1)}


def test_sampler_caps_each_node_at_the_fanout() -> None:
    hub = torch.stack([torch.arange(50), torch.zeros(50, dtype=torch.long)])  # item 0: 50 buyers
    edges = {INTERACTED: hub, REV_INTERACTED: hub.flip(0)}
    nodes, sub, _ = NeighbourSampler(edges, {USER: 50, ITEM: 1}, fanout=5, hops=1).sample(
        {ITEM: torch.tensor([0])}, torch.Generator().manual_seed(0))
    assert 1 <= sub[INTERACTED].shape[1] <= 5
    assert len(nodes[USER]) == sub[INTERACTED].shape[1]


def test_dropped_nodes_lose_their_interaction_edges() -> None:
    edges, n = _edges()
    drop = NodeDropout(user_share=0.0, item_share=0.999, gen=torch.Generator().manual_seed(1))
    nodes, sub, _ = NeighbourSampler(edges, n, fanout=10, hops=2).sample(
        {USER: torch.tensor([0, 1])}, torch.Generator(), drop)
    assert sub[INTERACTED].shape[1] == 0
    assert nodes[USER].tolist() == [0, 1]


def test_hashed_uniform_is_fixed_per_salt_and_roughly_uniform() -> None:
    idx = torch.arange(100_000)
    u = hashed_uniform(idx, 7)
    assert torch.equal(u, hashed_uniform(idx, 7))
    assert not torch.equal(u, hashed_uniform(idx, 8))
    assert ((u >= 0) & (u < 1)).all()
    assert abs(float((u < 0.3).float().mean()) - 0.3) < 0.01


@pytest.mark.parametrize("conv", ["sage", "gat", "hgt"])
def test_trimmed_forward_gives_the_seeds_the_whole_forward(conv: str,
                                                           graph: ExportedGraph) -> None:
    model = small_model(conv=conv, epochs=1).fit(graph)
    t = graph_tensors(graph, edge_types=model.edge_types_, vocabs=model.vocabs_,
                      text=model.text_, price=model.price_)
    edges = with_interactions(t, t.pos)
    seeds = {USER: torch.tensor([0]), ITEM: torch.tensor([1])}
    nodes, sub, depth = NeighbourSampler(edges, t.num_nodes, fanout=2, hops=2).sample(
        seeds, torch.Generator().manual_seed(0))
    assert int((depth[USER] == 2).sum() + (depth[ITEM] == 2).sum()) > 0  # a ring to trim
    enc = model.encoder_.eval()
    args = (t.item_x[nodes[ITEM]], {k: v[nodes[k]] for k, v in t.shared_index.items()},
            len(nodes[USER]), sub)
    whole = enc(*args, text_edges=sub[REV_INTERACTED].flip(0))
    trimmed = trimmed_forward(enc, *args, depth, text_edges=sub[REV_INTERACTED].flip(0))
    for k, v in seeds.items():
        at = torch.searchsorted(nodes[k], v)
        torch.testing.assert_close(trimmed[k][at], whole[k][at], atol=1e-5, rtol=1e-4)
    far = torch.nonzero(depth[ITEM] == 2).squeeze(1)  # not needed by any seed: left stale
    if conv != "hgt" and len(far):
        assert not torch.allclose(trimmed[ITEM][far], whole[ITEM][far])


@pytest.mark.parametrize("conv", ["sage", "gat"])
def test_layerwise_inference_equals_the_whole_graph(conv: str, graph: ExportedGraph) -> None:
    model = small_model(conv=conv, epochs=2).fit(graph)
    t = graph_tensors(graph, edge_types=model.edge_types_, vocabs=model.vocabs_,
                      text=model.text_, price=model.price_)
    whole = encode_graph(model.encoder_, t, t.pos, None)
    chunked = encode_graph(model.encoder_, t, t.pos, chunk=3)  # several chunks per type
    for k in whole:
        torch.testing.assert_close(chunked[k], whole[k], atol=1e-5, rtol=1e-4)


def test_mini_batch_training_learns_the_segments(graph: ExportedGraph) -> None:
    model = small_model(batch_mode="mini", batch_size=8, fanout=4).fit(graph)
    assert len(model.history_) > 1
    emb = model.transform(graph)
    users = [list(emb.user_ids).index(u) for u in RUNNERS]
    items = [list(emb.item_ids).index(i) for i in SHOES + MUGS]
    s = model.score_matrix(emb, users, items)
    assert s[:, :len(SHOES)].mean() > s[:, len(SHOES):].mean()


def test_batch_mode_auto_switches_at_the_documented_threshold() -> None:
    cfg = ModelConfig()
    assert cfg.batch_mode == "auto"
    assert not cfg.mini_batch(MINI_BATCH_ABOVE)
    assert cfg.mini_batch(MINI_BATCH_ABOVE + 1)
    assert ModelConfig(batch_mode="mini").mini_batch(10)
    assert not ModelConfig(batch_mode="full").mini_batch(10 * MINI_BATCH_ABOVE)


@pytest.mark.parametrize(("setting", "value", "match"), [
    ("batch_mode", "huge", "batch_mode must be one of"),
    ("batch_size", 0, "batch_size must be >= 1"),
    ("fanout", 0, "fanout must be >= 1"),
])
def test_invalid_scale_settings_raise(setting: str, value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ModelConfig(**{setting: value}).validate()  # type: ignore[arg-type]


def test_configs_saved_before_these_settings_still_load() -> None:
    old = {k: v for k, v in ModelConfig().to_dict().items()
           if k not in ("batch_mode", "batch_size", "fanout")}
    assert ModelConfig.from_dict(old) == ModelConfig()


def test_cli_batch_modes_are_the_configs() -> None:
    from kgrec.cli._common import BATCH_MODES as CLI_MODES
    from kgrec.coldstart.config import BATCH_MODES

    assert CLI_MODES == BATCH_MODES


class _AllDropped(NodeDropout):
    """Drops exactly the given users and items (a known answer instead of hashed draws)."""

    def __init__(self, users: list[int], items: list[int]) -> None:
        self.ids = {USER: torch.tensor(users, dtype=torch.long),
                    ITEM: torch.tensor(items, dtype=torch.long)}

    def dropped(self, node_type: str, idx: torch.Tensor) -> torch.Tensor:
        return torch.isin(idx, self.ids[node_type])


def test_step_pair_inputs_hide_the_dropped_nodes(graph: ExportedGraph) -> None:
    model = small_model(epochs=1).fit(graph)
    t = graph_tensors(graph, edge_types=model.edge_types_, vocabs=model.vocabs_,
                      text=model.text_, price=model.price_)
    inputs = model._pair_inputs(graph, t, t.pos, t.pos_time)
    assert inputs is not None
    users = torch.unique(t.pos[0])[:3]
    first_item = int(inputs.hist_idx[inputs.hist_ptr[users[1]]])
    items = torch.unique(t.pos[1])
    items = items[items != first_item][:4]
    drop = _AllDropped(users=[int(users[0])], items=[first_item, int(items[0])])
    step = step_pair_inputs(inputs, users, items, drop, user_share=0.0)
    assert int(step.hist_ptr[1]) == 0  # the dropped user has no history
    assert first_item not in step.hist_idx.tolist()  # nobody's history keeps a dropped item
    assert float(step.item_degree[0]) == 0.0  # a dropped item looks edgeless
    torch.testing.assert_close(step.item_degree[1:], inputs.item_degree[items[1:]])
