import pytest
import torch

from raysearch.config import TrainConfig
from raysearch.splits import make_split
from raysearch.training import ModelInputs, build_model, cross_view_loss
from raysearch.losses import bpr_loss, info_nce


@pytest.mark.parametrize("num_layers", [0, 1, 2, 4])
def test_shapes_and_fusion_weights(tiny, num_layers):
    config = TrainConfig(embedding_dim=8, num_layers=num_layers)
    model = build_model(config, tiny).eval()
    split = make_split(tiny, "warm", 0)
    reps = ModelInputs.build(tiny, split.train).forward(model)
    assert reps.nodes.shape == (tiny.num_users + tiny.num_items, 8)
    assert reps.attributes.shape == reps.nodes.shape
    assert reps.user_weights.shape == (tiny.num_users, 2) and reps.item_weights.shape == (tiny.num_items, 2)
    assert torch.allclose(reps.user_weights.sum(1), torch.ones(tiny.num_users))
    assert reps.user_weights.std(0).max() > 0  # weights differ between entities
    scores = model.score(reps, torch.tensor([0, 1]), torch.arange(tiny.num_items))
    assert scores.shape == (2, tiny.num_items)


def test_cold_items_are_represented_by_their_attributes(tiny):
    model = build_model(TrainConfig(embedding_dim=8), tiny).eval()
    split = make_split(tiny, "item_cold", 0)
    inputs = ModelInputs.build(tiny, split.train)
    reps = inputs.forward(model)
    cold = torch.as_tensor(split.cold_items["test"]) + tiny.num_users
    assert not inputs.known[cold].any()
    assert torch.equal(reps.nodes[cold], reps.attributes[cold])
    assert reps.nodes[cold].norm(dim=1).min() > 0


def test_gradients_reach_every_parameter(tiny):
    model = build_model(TrainConfig(embedding_dim=8, num_layers=2), tiny).train()
    split = make_split(tiny, "warm", 0)
    reps = ModelInputs.build(tiny, split.train).forward(model)
    users, items = torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]) + tiny.num_users
    loss = bpr_loss((reps.nodes[users] * reps.nodes[items]).sum(1), torch.zeros(3)) + cross_view_loss(reps, users, items, 0.2)
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_info_nce_matches_hand_computation():
    """Two perfectly aligned unit pairs a=(1,0),(0,1): logits = I / 0.5, so each row's loss is
    -log(e^2 / (e^2 + e^0)) = log(1 + e^-2) in both directions."""
    x = torch.eye(2)
    assert info_nce(x, x, 0.5).item() == pytest.approx(torch.log1p(torch.exp(torch.tensor(-2.0))).item())
    assert bpr_loss(torch.tensor([0.0]), torch.tensor([0.0])).item() == pytest.approx(0.693147, abs=1e-6)


def test_ranking_losses_match_hand_computation():
    """Positive score 2, negatives [0, 1]: softmax loss = log(e^2 + e^0 + e^1) - 2 = 0.40761;
    BPR over both negatives = mean(-log sigmoid(2), -log sigmoid(1)) = (0.12693 + 0.31326) / 2."""
    from raysearch.losses import sampled_softmax_loss

    positive, negative = torch.tensor([2.0]), torch.tensor([[0.0, 1.0]])
    assert sampled_softmax_loss(positive, negative).item() == pytest.approx(0.407606, abs=1e-5)
    assert bpr_loss(positive, negative).item() == pytest.approx((0.126928 + 0.313262) / 2, abs=1e-5)
