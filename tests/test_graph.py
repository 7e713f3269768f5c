import numpy as np
import pytest
import torch

from raysearch.model.graph import SymmetricLGConv, bipartite_adjacency


def test_adjacency_is_symmetric_normalised_over_users_then_items():
    """User 0 rated items 0 and 1, user 1 item 1; item 2 has no edge. Degrees: u0 2, u1 1, i0 1, i1 2, so
    the edge u0-i0 weighs 1/sqrt(2 * 1) and u1-i1 1/sqrt(1 * 2)."""
    adjacency, known = bipartite_adjacency(np.array([[0, 0], [0, 1], [1, 1]]), 2, 3)
    dense = adjacency.to_dense()
    assert dense.shape == (5, 5) and torch.equal(dense, dense.T)
    assert dense[0, 2] == pytest.approx(1 / np.sqrt(2)) and dense[1, 3] == pytest.approx(1 / np.sqrt(2))
    assert dense[0, 3] == pytest.approx(0.5) and dense[0, 1] == 0
    assert known.tolist() == [True, True, True, True, False]


def test_propagation_and_its_gradient_use_the_symmetric_adjacency():
    adjacency, _ = bipartite_adjacency(np.array([[0, 0], [0, 1], [1, 1]]), 2, 3)
    x = torch.randn(5, 4, requires_grad=True)
    out = SymmetricLGConv()(x, adjacency)
    assert torch.allclose(out, adjacency.to_dense() @ x)
    out.sum().backward()
    assert torch.allclose(x.grad, adjacency.to_dense().T @ torch.ones(5, 4))
