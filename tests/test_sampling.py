"""Neighbour-sampled propagation (raysearch/model/graph.py sample_subgraph, ModelInputs.sampled_forward,
propagation=sampled training): exact where the fan-out covers every neighbour, unbiased where it does not,
and cold nodes stay attribute-only with no edge."""

import numpy as np
import pytest
import torch

from raysearch.config import TrainConfig
from raysearch.data.protocols import make_split
from raysearch.model.graph import bipartite_adjacency, sample_subgraph, segments
from raysearch.train.fit import fit
from raysearch.train.fusion_gcn import build_model
from raysearch.train.inputs import ModelInputs, select_bags
from raysearch.testing.datasets import tiny_dataset

TINY = dict(embedding_dim=8, num_layers=2, batch_size=16, epochs=30, patience=30, learning_rate=0.05,
            topk=[3], metric="ndcg@3", contrastive_pairs=16, propagation="sampled", fanout=2)


def star_graph() -> tuple[torch.Tensor, torch.Tensor]:
    """User 0 rated items 0..3, user 1 item 0, user 2 item 1; item 4 has no edge (nodes: users 0-2, items 3-7)."""
    return bipartite_adjacency(np.array([[0, 0], [0, 1], [0, 2], [0, 3], [1, 0], [2, 1]]), 3, 5)


def propagate(nodes, edge_index, weight, x):
    """One layer over a sampled subgraph: ``out[target] += weight * x[source]``."""
    return torch.zeros(len(nodes), x.shape[1]).index_add_(0, edge_index[1], weight.unsqueeze(1) * x[nodes][edge_index[0]])


def test_segments_lists_every_range_in_order():
    assert segments(torch.tensor([5, 0, 9]), torch.tensor([2, 0, 3])).tolist() == [5, 6, 9, 10, 11]
    assert segments(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long)).tolist() == []


def test_a_fanout_covering_every_neighbour_is_exact_for_every_layer():
    adjacency, _ = star_graph()
    x = torch.randn(8, 3)
    nodes, edge_index, weight = sample_subgraph(adjacency, torch.tensor([1]), 4, 3, torch.Generator().manual_seed(0))
    assert torch.equal(nodes, torch.unique(nodes))  # sorted, distinct
    dense = adjacency.to_dense()
    one, two = propagate(nodes, edge_index, weight, x), None
    row = int(torch.searchsorted(nodes, torch.tensor(1)))
    assert torch.allclose(one[row], (dense @ x)[1], atol=1e-6)
    two = torch.zeros(len(nodes), 3).index_add_(0, edge_index[1], weight.unsqueeze(1) * one[edge_index[0]])
    assert torch.allclose(two[row], (dense @ dense @ x)[1], atol=1e-6)


def test_a_small_fanout_is_an_unbiased_estimate_of_the_propagation():
    """User 0 has 4 neighbours and a fan-out of 1: one drawn with replacement, weighted by degree 4."""
    adjacency, _ = star_graph()
    x = torch.randn(8, 3)
    generator = torch.Generator().manual_seed(0)
    draws = []
    for _ in range(4000):
        nodes, edge_index, weight = sample_subgraph(adjacency, torch.tensor([0]), 1, 1, generator)
        assert edge_index.shape[1] == 1  # one neighbour kept
        draws.append(propagate(nodes, edge_index, weight, x)[0])
    assert torch.allclose(torch.stack(draws).mean(0), (adjacency.to_dense() @ x)[0], atol=0.05)


def test_a_node_without_edges_is_reached_by_none_and_reaches_none():
    adjacency, known = star_graph()
    cold = 3 + 4
    nodes, edge_index, _ = sample_subgraph(adjacency, torch.tensor([0, cold]), 10, 3, torch.Generator())
    assert not known[cold] and cold in nodes.tolist()
    row = int(torch.searchsorted(nodes, torch.tensor(cold)))
    assert row not in edge_index.reshape(-1).tolist()


def test_selected_bags_are_the_chosen_entities_bags():
    tokens, offsets = torch.tensor([1, 2, 3, 4, 5, 6]), torch.tensor([0, 1, 3, 3])  # bags [1] [2 3] [] [4 5 6]
    ((picked, starts),) = select_bags([(tokens, offsets)], torch.tensor([3, 1, 2]))
    assert picked.tolist() == [4, 5, 6, 2, 3] and starts.tolist() == [0, 3, 5]


@pytest.mark.parametrize("split", ["warm", "item_cold"])
def test_sampled_forward_with_a_covering_fanout_equals_the_full_forward(split):
    dataset = tiny_dataset()
    cut = make_split(dataset, split, 0)
    config = TrainConfig.from_dict({**TINY, "fanout": 100, "num_layers": 3})
    inputs = ModelInputs.build(dataset, cut.train)
    model = build_model(config, dataset).eval()
    full = inputs.forward(model)
    seeds = torch.tensor([0, 5, dataset.num_users + 1, dataset.num_users + 8])
    sampled, nodes = inputs.sampled_forward(model, seeds, 100, 3, torch.Generator())
    rows = torch.searchsorted(nodes, seeds)
    assert torch.allclose(sampled.nodes[rows], full.nodes[seeds], atol=1e-5)
    assert torch.allclose(sampled.attributes[rows], full.attributes[seeds], atol=1e-6)


def test_sampled_training_learns_and_ranks_cold_items_from_their_attributes(tiny):
    result = fit(TrainConfig.from_dict({**TINY, "id_dropout": 0.5}), tiny, make_split(tiny, "item_cold", 1))
    losses = [row["loss"] for row in result.history]
    assert losses[-1] < 0.6 * losses[0] and result.test["hit@3"] == pytest.approx(1.0)
