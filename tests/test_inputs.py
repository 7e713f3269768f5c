import numpy as np
import torch

from raysearch.data.protocols import make_split
from raysearch.train.inputs import ModelInputs, NegativeSampler, training_items


def test_sampler_never_returns_training_positives(tiny):
    split = make_split(tiny, "warm", 0)
    sampler = NegativeSampler(split.train, np.arange(tiny.num_items), tiny.num_items)
    users = torch.as_tensor(split.train[:, 0]).repeat(20)
    items = sampler.sample(users, torch.Generator().manual_seed(0))
    keys = set((users * tiny.num_items + items).tolist())
    assert not keys & set((split.train[:, 0] * tiny.num_items + split.train[:, 1]).tolist())
    grid = sampler.sample(users.view(20, -1), torch.Generator().manual_seed(0))
    assert grid.shape == (20, len(split.train)) and grid.reshape(-1).equal(items)  # any shape, the same draws


def test_training_steps_never_touch_cold_items(tiny):
    split = make_split(tiny, "item_cold", 1)
    allowed = training_items(tiny, split)
    cold = np.concatenate(list(split.cold_items.values()))
    assert len(allowed) + len(cold) == tiny.num_items and not np.isin(cold, allowed).any()
    sampler = NegativeSampler(split.train, allowed, tiny.num_items)
    drawn = sampler.sample(torch.zeros(500, dtype=torch.long), torch.Generator().manual_seed(1))
    assert not np.isin(drawn.numpy(), cold).any()


def test_model_inputs_hold_the_graph_and_every_field(tiny):
    split = make_split(tiny, "user_cold", 0)
    inputs = ModelInputs.build(tiny, split.train)
    assert inputs.adjacency.shape == (tiny.num_users + tiny.num_items,) * 2 and inputs.num_users == tiny.num_users
    assert len(inputs.user_bags) == len(tiny.user_fields) and len(inputs.item_bags) == len(tiny.item_fields)
    cold = split.cold_users["test"]
    assert not inputs.known[torch.as_tensor(cold)].any() and inputs.to(torch.device("cpu")).known.equal(inputs.known)
