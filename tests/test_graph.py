import numpy as np
import pytest
import torch

from raysearch.model.graph import SymmetricLGConv, attribute_neighbours, bipartite_adjacency


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


def test_attribute_neighbours_by_hand():
    """Users a=[1,0,1], b=[1,0,1], c=[0,1,0] known, d=[1,1,0] cold; items x=[1,0], z=[1,1] known, y=[0,1] cold.
    Cosines: d-c 1/sqrt2 beats d-a = d-b = 1/2, so d's one neighbour is c; a and b are each other's (a node is never
    its own); c shares nothing with a or b (similarity 0: no neighbour). With k=2, the items find only z (x and y
    share nothing), and z finds x: one neighbour each, weight 1."""
    users = torch.tensor([[1.0, 0, 1], [1, 0, 1], [0, 1, 0], [1, 1, 0]])
    items = torch.tensor([[1.0, 0], [0, 1], [1, 1]])
    known = torch.tensor([True, True, True, False, True, False, True])
    matrix, transposed = attribute_neighbours([users, items], known, (1, 2))
    expected = torch.zeros(7, 7)
    for row, column in [(0, 1), (1, 0), (3, 2), (4, 6), (5, 6), (6, 4)]:
        expected[row, column] = 1.0
    assert torch.equal(matrix.to_dense(), expected) and torch.equal(transposed.to_dense(), expected.T)


def test_attribute_neighbours_keep_ties_weigh_by_cosine_and_skip_a_side_with_k_0():
    """User 0 = [1, 1]; users 1 = [1, 0] and 2 = [0, 1] tie at cosine 1/sqrt2 and are both kept at k=1 (weight 1/2
    each). With a user 3 = [1, 1] (cosine 1) and k=2, the 2nd value is the tie, so all three are kept, weighted by
    cosine."""
    users = torch.tensor([[1.0, 1], [1, 0], [0, 1], [1, 1]])
    known = torch.tensor([True, True, True, False, True])
    matrix, _ = attribute_neighbours([users[:3], torch.ones(2, 1)], known, (1, 0))
    assert matrix.to_dense()[0].tolist() == [0.0, 0.5, 0.5, 0.0, 0.0]
    assert matrix.to_dense()[3:].abs().sum() == 0  # items: k = 0
    known = torch.tensor([True, True, True, True, True])
    matrix, _ = attribute_neighbours([users, torch.ones(1, 1)], known, (2, 0))
    s = 1 / np.sqrt(2)
    assert matrix.to_dense()[0, :4].tolist() == pytest.approx([0.0, s / (1 + 2 * s), s / (1 + 2 * s), 1 / (1 + 2 * s)])
