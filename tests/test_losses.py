import pytest
import torch

from raysearch.model.losses import bpr_loss, info_nce, sampled_softmax_loss
from raysearch.model.fusion_gcn import Representations
from raysearch.train.fusion_gcn import distill_loss, ranking_loss, rows


def test_info_nce_matches_hand_computation():
    """Two perfectly aligned unit pairs a=(1,0),(0,1): logits = I / 0.5, so each row's loss is
    -log(e^2 / (e^2 + e^0)) = log(1 + e^-2) in both directions."""
    x = torch.eye(2)
    assert info_nce(x, x, 0.5).item() == pytest.approx(torch.log1p(torch.exp(torch.tensor(-2.0))).item())


def test_ranking_losses_match_hand_computation():
    """Positive score 2, negatives [0, 1]: softmax loss = log(e^2 + e^0 + e^1) - 2 = 0.40761;
    BPR over both negatives = mean(-log sigmoid(2), -log sigmoid(1)) = (0.12693 + 0.31326) / 2;
    BPR of equal scores = log 2."""
    positive, negative = torch.tensor([2.0]), torch.tensor([[0.0, 1.0]])
    assert sampled_softmax_loss(positive, negative).item() == pytest.approx(0.407606, abs=1e-5)
    assert bpr_loss(positive, negative).item() == pytest.approx((0.126928 + 0.313262) / 2, abs=1e-5)
    assert bpr_loss(torch.tensor([0.0]), torch.tensor([0.0])).item() == pytest.approx(0.693147, abs=1e-6)


def test_losses_stay_finite_for_extreme_scores():
    """The stable forms: no overflow where a naive exp or log(sigmoid) would give inf."""
    positive, negative = torch.tensor([-500.0]), torch.tensor([[500.0, 0.0]])
    assert sampled_softmax_loss(positive, negative).item() == pytest.approx(1000.0)
    assert bpr_loss(positive, negative).item() == pytest.approx((1000.0 + 500.0) / 2)


def test_ranking_loss_scores_each_user_against_its_own_candidates():
    """Nodes u=(1,0), a=(2,0), b=(0,3): user u's candidates [a, b] score [2, 0] (positive a), so the softmax loss is
    log(e^2 + e^0) - 2 = 0.126928; gradients reach the gathered rows only."""
    nodes = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [5.0, 5.0]], requires_grad=True)
    loss = ranking_loss("softmax", rows(nodes, torch.tensor([0])), rows(nodes, torch.tensor([[1, 2]])))
    assert loss.item() == pytest.approx(0.126928, abs=1e-5)
    loss.backward()
    assert nodes.grad[3].abs().sum() == 0 and nodes.grad[0].abs().sum() > 0


def test_distill_loss_counts_each_entity_once_and_keeps_the_teacher_fixed():
    """Users 0, 1 and items 2, 3 with attribute views equal to their graph views, one-hot in 2-d: after dropping the
    repeated user 0 and item 3, each side is the aligned two-entity case of test_info_nce (log(1 + e^-2) at
    tau = 0.5), so the loss is twice that; the graph views get no gradient."""
    views = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    nodes, attributes = views.clone().requires_grad_(), views.clone().requires_grad_()
    reps = Representations(nodes, attributes, torch.ones(2, 1), torch.ones(2, 1))
    loss = distill_loss(reps, torch.tensor([0, 1, 0]), torch.tensor([2, 3, 3]), 0.5)
    assert loss.item() == pytest.approx(2 * torch.log1p(torch.exp(torch.tensor(-2.0))).item(), abs=1e-6)
    loss.backward()
    assert nodes.grad is None and attributes.grad is not None
