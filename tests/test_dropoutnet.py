"""DropoutNet: frozen BPR-MF preferences (zero for cold entities) and towers that drop them in training."""

from __future__ import annotations

import torch

from raysearch.baselines.dropoutnet import DropoutNet, backbone
from raysearch.config import TrainConfig
from raysearch.data.features import content_matrix
from raysearch.data.protocols import make_split
from raysearch.testing.datasets import tiny_dataset


def test_backbone_gives_cold_items_zero_preference():
    dataset = tiny_dataset(num_users=20, num_items=15)
    split = make_split(dataset, "item_cold", 2)
    config = TrainConfig.from_dict({"model": "dropoutnet", "split": "item_cold", "embedding_dim": 8,
                                    "backbone_epochs": 2})
    users, items = backbone(config, dataset, split)
    assert users.shape == (20, 8) and items.shape == (15, 8)
    cold = torch.as_tensor(split.cold_items["test"])
    assert items[cold].abs().sum() == 0
    warm = torch.unique(torch.as_tensor(split.train[:, 1]))
    assert (items[warm].abs().sum(1) > 0).all()


def test_a_dropped_preference_is_scored_like_a_cold_entity():
    dataset = tiny_dataset()
    contents = (content_matrix(dataset.user_fields), content_matrix(dataset.item_fields))
    preferences = (torch.randn(dataset.num_users, 4), torch.zeros(dataset.num_items, 4))
    model = DropoutNet(preferences, contents, embedding_dim=3, hidden=(6,)).eval()
    rows = torch.arange(5)
    dropped = model.encode(0, rows, keep=torch.zeros(5, dtype=torch.bool))
    cold = model.towers[0](torch.cat([torch.zeros(5, 4), contents[0][rows]], 1))
    torch.testing.assert_close(dropped, cold)
    users, items = model.vectors()
    assert users.shape == (dataset.num_users, 3) and items.shape == (dataset.num_items, 3)
