"""Sampled propagation (raysearch/model/graph.py sample_neighbours, ModelInputs.sampled_forward, History,
propagation=sampled training): exact where the fan-out covers every neighbour and the history is fresh, unbiased
where it does not, cold nodes attribute-only with no edge, and shared negatives from a pool."""

import numpy as np
import pytest
import torch

from raysearch.config import TrainConfig
from raysearch.data.protocols import make_split
from raysearch.model.graph import bipartite_adjacency, sample_neighbours, segments, sparse_matmul
from raysearch.train.fit import fit
from raysearch.errors import ConfigError
from raysearch.train.fusion_gcn import build_model, make_optimizer, run_epochs, train_epoch
from raysearch.train.inputs import History, ModelInputs, NegativeSampler, select_bags, training_items
from raysearch.testing.datasets import tiny_dataset

TINY = dict(embedding_dim=8, num_layers=2, batch_size=16, epochs=30, patience=30, learning_rate=0.05,
            topk=[3], metric="ndcg@3", contrastive_pairs=16, propagation="sampled", fanout=2, user_neighbours=0)


def star_graph() -> tuple[torch.Tensor, torch.Tensor]:
    """User 0 rated items 0..3, user 1 item 0, user 2 item 1; item 4 has no edge (nodes: users 0-2, items 3-7)."""
    return bipartite_adjacency(np.array([[0, 0], [0, 1], [0, 2], [0, 3], [1, 0], [2, 1]]), 3, 5)


def test_segments_lists_every_range_in_order():
    assert segments(torch.tensor([5, 0, 9]), torch.tensor([2, 0, 3])).tolist() == [5, 6, 9, 10, 11]
    assert segments(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long)).tolist() == []


def test_a_fanout_covering_every_neighbour_gives_the_exact_rows_and_their_transpose():
    adjacency, _ = star_graph()
    nodes, seeds, matrix, transposed = sample_neighbours(adjacency, torch.tensor([1, 0, 1]), 4, torch.Generator())
    assert nodes.tolist() == [0, 1, 3, 4, 5, 6] and nodes[seeds].tolist() == [0, 1]  # seeds and their neighbours
    assert torch.allclose(matrix.to_dense(), adjacency.to_dense()[[0, 1]][:, nodes])
    assert torch.equal(transposed.to_dense(), matrix.to_dense().T)
    x = torch.randn(len(nodes), 3, requires_grad=True)
    sparse_matmul(matrix, transposed, x).sum().backward()
    assert torch.allclose(x.grad, matrix.to_dense().sum(0).unsqueeze(1).expand(-1, 3))


def test_a_small_fanout_is_an_unbiased_estimate_of_the_row():
    """User 0 has 4 neighbours and a fan-out of 1: one drawn with replacement, weighted by degree 4; the mean of
    4000 draws lies within 4 standard errors of the exact row (a seeded ``x``: the test does not depend on the
    global random state)."""
    adjacency, _ = star_graph()
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    generator = torch.Generator().manual_seed(0)
    draws = []
    for _ in range(4000):
        nodes, _, matrix, _ = sample_neighbours(adjacency, torch.tensor([0]), 1, generator)
        assert matrix._nnz() == 1  # one neighbour kept
        draws.append((matrix @ x[nodes])[0])
    draws = torch.stack(draws)
    error = (draws.mean(0) - (adjacency.to_dense() @ x)[0]).abs()
    assert (error < 4 * draws.std(0) / len(draws) ** 0.5).all()  # within 4 standard errors of the mean


def test_a_node_without_edges_has_an_empty_row_and_is_nobodys_neighbour():
    adjacency, known = star_graph()
    cold = 3 + 4
    nodes, seeds, matrix, _ = sample_neighbours(adjacency, torch.arange(8), 10, torch.Generator())
    assert not known[cold] and len(seeds) == 8
    dense = matrix.to_dense()
    assert not dense[cold].any() and not dense[:, int(torch.searchsorted(nodes, torch.tensor(cold)))].any()


def test_selected_bags_are_the_chosen_entities_bags():
    tokens, offsets = torch.tensor([1, 2, 3, 4, 5, 6]), torch.tensor([0, 1, 3, 3])  # bags [1] [2 3] [] [4 5 6]
    ((picked, starts),) = select_bags([(tokens, offsets)], torch.tensor([3, 1, 2]))
    assert picked.tolist() == [4, 5, 6, 2, 3] and starts.tolist() == [0, 3, 5]


@pytest.mark.parametrize("split", ["warm", "item_cold"])
def test_sampled_forward_with_a_covering_fanout_and_a_fresh_history_equals_the_full_forward(split):
    dataset = tiny_dataset()
    cut = make_split(dataset, split, 0)
    config = TrainConfig.from_dict({**TINY, "fanout": 100, "num_layers": 3})
    inputs = ModelInputs.build(dataset, cut.train)
    model = build_model(config, dataset).eval()
    full = inputs.forward(model)
    history = History(model, inputs)
    assert history.reference.shape == (22, 3, 8)  # inputs of layers 1-3 of all nodes
    seeds = torch.tensor([5, 0, dataset.num_users + 8, dataset.num_users + 1, 0])
    sampled, ids = inputs.sampled_forward(model, seeds, 100, history, torch.Generator())
    assert ids.tolist() == sorted(set(seeds.tolist()))
    assert len(sampled.user_weights) + len(sampled.item_weights) == len(ids)  # only the seeds are computed
    assert torch.allclose(sampled.nodes, full.nodes[ids], atol=1e-5)
    assert torch.allclose(sampled.attributes, full.attributes[ids], atol=1e-6)
    assert all(torch.allclose(layer[ids], fresh[ids], atol=1e-5)
               for layer, fresh in zip((history.reference + history.drift).unbind(1), full.layers))


def test_with_a_fresh_history_a_small_fanout_is_exact_too():
    """The control variates: right after the refresh nothing has drifted from the reference, so a fan-out of 1
    (one neighbour drawn of up to 6) changes nothing; an outdated history (drift) reaches the seeds through the
    sampled rows."""
    dataset = tiny_dataset()
    inputs = ModelInputs.build(dataset, make_split(dataset, "warm", 0).train)
    model = build_model(TrainConfig.from_dict({**TINY, "num_layers": 3}), dataset).eval()
    full = inputs.forward(model)
    history = History(model, inputs)
    seeds = torch.arange(0, len(inputs.known), 3)
    sampled, ids = inputs.sampled_forward(model, seeds, 1, history, torch.Generator().manual_seed(0))
    assert torch.allclose(sampled.nodes, full.nodes[ids], atol=1e-5)
    history.drift.add_(1.0)
    drifted, _ = inputs.sampled_forward(model, seeds, 1, history, torch.Generator().manual_seed(0))
    assert not torch.allclose(drifted.nodes, full.nodes[ids], atol=1e-3)


def test_without_layers_a_sampled_forward_is_the_full_one():
    dataset = tiny_dataset()
    inputs = ModelInputs.build(dataset, make_split(dataset, "warm", 0).train)
    model = build_model(TrainConfig.from_dict({**TINY, "num_layers": 0}), dataset).eval()
    seeds = torch.tensor([0, 4, dataset.num_users + 2])
    sampled, ids = inputs.sampled_forward(model, seeds, 1, History(model, inputs), torch.Generator())
    assert torch.allclose(sampled.nodes, inputs.forward(model).nodes[ids])


def test_a_sampled_step_reads_its_neighbours_inputs_from_the_history_and_writes_its_seeds_back():
    """A seed's first layer is its sampled row times its neighbours' inputs (ID + attributes), read from the
    history; an outdated history (zeros) changes it, and the step then stores the seed's new input."""
    dataset = tiny_dataset()
    inputs = ModelInputs.build(dataset, make_split(dataset, "warm", 0).train)
    model = build_model(TrainConfig.from_dict({**TINY, "fanout": 100}), dataset).eval()
    history = History(model, inputs)
    exact, _ = inputs.sampled_forward(model, torch.tensor([3]), 100, history, torch.Generator())
    history.drift[:, 0] = -history.reference[:, 0]  # every input of layer 1 outdated: zeros
    stale, _ = inputs.sampled_forward(model, torch.tensor([3]), 100, history, torch.Generator())
    assert not torch.allclose(stale.nodes, exact.nodes)
    current = history.reference + history.drift
    assert current[3, 0].abs().sum() > 0 and current[4, 0].abs().sum() == 0


def test_negatives_from_a_pool_come_from_it_and_avoid_training_positives():
    sampler = NegativeSampler(np.array([[0, 1], [0, 2], [1, 3]]), np.arange(6), 6)
    pool = torch.tensor([1, 2, 4, 5])
    drawn = sampler.sample(torch.zeros(400, dtype=torch.long), torch.Generator().manual_seed(0), retries=40, pool=pool)
    assert set(drawn.tolist()) == {4, 5}  # user 0's positives 1 and 2 are redrawn, item 3 is not in the pool


@pytest.mark.parametrize("pool", [0, 4])
def test_sampled_training_learns_and_ranks_cold_items_from_their_attributes(tiny, pool):
    config = TrainConfig.from_dict({**TINY, "id_dropout": 0.5, "negative_pool": pool})
    result = fit(config, tiny, make_split(tiny, "item_cold", 1))
    losses = [row["loss"] for row in result.history]
    assert losses[-1] < 0.6 * losses[0] and result.test["hit@3"] == pytest.approx(1.0)


def test_sparse_ids_update_only_the_id_rows_a_step_touched(tiny):
    """One step on user a's pair, then one on user b's: the second moves b's ID row and leaves a's where the first
    put it (a lazy Adam: Adam's momentum would move every row that ever had a gradient, at every step)."""
    config = TrainConfig.from_dict({**TINY, "sparse_ids": True, "id_dropout": 0.0, "batch_size": 1,
                                    "num_negatives": 1, "negative_pool": 1})
    split = make_split(tiny, "warm", 0)
    model = build_model(config, tiny)
    optimizer = make_optimizer(model, config)
    inputs = ModelInputs.build(tiny, split.train)
    sampler = NegativeSampler(split.train, training_items(tiny, split), tiny.num_items)
    train = torch.as_tensor(split.train)
    a, b = train[0], train[train[:, 0] != train[0, 0]][0]
    rows = [model.user_id.weight.detach().clone()]
    for pair in (a, b):
        train_epoch(model, optimizer, inputs, pair.unsqueeze(0), sampler, config, torch.Generator())
        rows.append(model.user_id.weight.detach().clone())
    assert model.user_id.weight.grad.is_sparse
    moved = [torch.nonzero((after != before).any(1)).squeeze(1).tolist() for before, after in zip(rows, rows[1:])]
    assert moved == [[int(a[0])], [int(b[0])]]


def test_sparse_ids_runs_resume_with_both_optimizers(tiny):
    split = make_split(tiny, "item_cold", 1)
    config = TrainConfig.from_dict({**TINY, "sparse_ids": True, "epochs": 1})
    checkpoints = []
    run_epochs(config, tiny, split, lambda metrics, checkpoint, improved: checkpoints.append(checkpoint()))
    assert len(checkpoints[0]["optimizer"]["optimizers"]) == 2  # Adam, then SparseAdam over the ID tables
    resumed = run_epochs(config.updated({"epochs": 2}), tiny, split, resume=checkpoints[0]).progress
    assert [row["epoch"] for row in resumed.history] == [2]


@pytest.mark.parametrize("change, fragment", [
    ({"propagation": "full"}, "sparse_ids' = True needs propagation=sampled"),
    ({"weight_decay": 1e-4}, "weight_decay' = 0.0001 must be 0 with sparse_ids=true"),
])
def test_sparse_ids_are_refused_where_they_cannot_work(change, fragment):
    with pytest.raises(ConfigError, match=fragment):
        TrainConfig.from_dict({**TINY, "sparse_ids": True, **change})
