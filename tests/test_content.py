"""The specialists' shared content helpers: dense content vectors derived by hand, towers, the content side."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from raysearch.baselines.content import content_side, has_training, tower
from raysearch.data import features
from raysearch.data.features import content_matrix
from raysearch.data.protocols import make_split
from raysearch.testing.datasets import tiny_dataset


def test_content_matrix_is_one_mean_normalised_multi_hot_block_per_field():
    genres = features.multi("genres", [["a", "b"], [], ["b"]])  # vocab: <unk>, a, b
    year = features.categorical("year", ["1990", "1995", ""])  # vocab: <unk>, 1990, 1995
    expected = torch.tensor([[0.5, 0.5, 1.0, 0.0],
                             [0.0, 0.0, 0.0, 1.0],  # no genre: the unknown token, left out
                             [0.0, 1.0, 0.0, 0.0]])
    torch.testing.assert_close(content_matrix([genres, year]), expected)


def test_tower_widths_and_layers():
    net = tower([5, 8, 3], "tanh", batch_norm=True)
    assert [type(m).__name__ for m in net] == ["Linear", "BatchNorm1d", "Tanh", "Linear"]
    assert net(torch.zeros(4, 5)).shape == (4, 3)


@pytest.mark.parametrize("protocol, side", [("warm", "items"), ("item_cold", "items"), ("user_cold", "users")])
def test_content_side_is_the_protocols_cold_side(protocol, side):
    assert content_side(make_split(tiny_dataset(), protocol, 1)) == side


def test_has_training_marks_entities_with_a_training_pair():
    pairs = np.array([[0, 2], [3, 2]])
    assert has_training(pairs, 4, 0).tolist() == [True, False, False, True]
    assert has_training(pairs, 3, 1).tolist() == [False, False, True]
