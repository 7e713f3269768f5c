import pytest
import torch

from raysearch.config import TrainConfig
from raysearch.data.protocols import make_split
from raysearch.model.fusion_gcn import AdaptiveFusion, FusionGCN
from raysearch.model.losses import bpr_loss
from raysearch.train.fusion_gcn import build_model, cross_view_loss
from raysearch.train.inputs import ModelInputs


@pytest.mark.parametrize("num_layers", [0, 1, 2, 4])
def test_shapes_and_fusion_weights(tiny, num_layers):
    config = TrainConfig.from_dict({"embedding_dim": 8, "num_layers": num_layers})
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


def test_mean_fusion_weighs_every_field_alike():
    fusion = AdaptiveFusion([3, 4], 8, attention=False)
    bags = [(torch.tensor([1, 2]), torch.tensor([0, 1])), (torch.tensor([3, 0]), torch.tensor([0, 1]))]
    fused, weights = fusion(bags)
    assert fused.shape == (2, 8) and torch.equal(weights, torch.full((2, 2), 0.5))


def test_mlp_tower_starts_as_the_linear_fusion_and_then_combines_fields():
    """Two fields of two values each; entities (a, b) for every pair. A linear fusion is additive in the fields, so
    its interaction contrast f(0,0) - f(0,1) - f(1,0) + f(1,1) is zero (equal weights); the MLP tower starts with
    its last layer at zero (the linear fusion exactly) and, once that layer is not zero, has a non-zero contrast."""
    torch.manual_seed(0)
    pairs = [(0, 0), (0, 1), (1, 0), (1, 1)]
    bags = [(torch.tensor([p[side] for p in pairs]), torch.arange(4)) for side in (0, 1)]
    linear = AdaptiveFusion([2, 2], 8, attention=False)
    mlp = AdaptiveFusion([2, 2], 8, attention=False, tower="mlp")
    mlp.fields.load_state_dict(linear.fields.state_dict())
    contrast = lambda fused: fused[0] - fused[1] - fused[2] + fused[3]  # noqa: E731
    assert torch.allclose(mlp(bags)[0], linear(bags)[0])
    assert contrast(linear(bags)[0]).abs().max() < 1e-6
    torch.nn.init.normal_(mlp.mlp[2].weight)
    assert contrast(mlp(bags)[0]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="tower must be one of linear, mlp"):
        AdaptiveFusion([2], 4, tower="deep")


def test_ids_only_model_has_no_fusion_and_rejects_unknown_fusions(tiny):
    model = build_model(TrainConfig.from_dict({"fusion": "none", "contrastive_weight": 0, "cold_weight": 0,
                                                "user_neighbours": 0}), tiny)
    assert len(model.fusions) == 0
    with pytest.raises(ValueError, match="fusion must be one of attention, mean, none"):
        FusionGCN(2, 2, [2], [2], fusion="sum")


def test_cold_items_are_represented_by_their_attributes(tiny):
    model = build_model(TrainConfig.from_dict({"embedding_dim": 8}), tiny).eval()
    split = make_split(tiny, "item_cold", 0)
    inputs = ModelInputs.build(tiny, split.train)
    reps = inputs.forward(model)
    cold = torch.as_tensor(split.cold_items["test"]) + tiny.num_users
    assert not inputs.known[cold].any()
    assert torch.equal(reps.nodes[cold], reps.attributes[cold])
    assert reps.nodes[cold].norm(dim=1).min() > 0


def test_attribute_neighbours_add_their_graph_views_to_a_cold_nodes_attribute_view(tiny):
    """A cold item's representation is its fused fields plus the cosine-weighted mean graph view of its most similar
    known items (the mix matrix's row); a known node keeps its graph view, and without neighbours nothing changes."""
    model = build_model(TrainConfig.from_dict({"embedding_dim": 8}), tiny).eval()
    split = make_split(tiny, "item_cold", 0)
    plain = ModelInputs.build(tiny, split.train).forward(model)
    inputs = ModelInputs.build(tiny, split.train, (3, 3))
    reps = inputs.forward(model)
    mix = inputs.neighbours[0].to_dense()
    cold = torch.as_tensor(split.cold_items["test"]) + tiny.num_users
    assert mix[cold].sum(1).allclose(torch.ones(len(cold))) and not mix[:, ~inputs.known].any()
    torch.testing.assert_close(reps.nodes[cold], plain.attributes[cold] + mix[cold] @ plain.nodes)
    torch.testing.assert_close(reps.nodes[inputs.known], plain.nodes[inputs.known])


def test_gradients_reach_every_parameter(tiny):
    model = build_model(TrainConfig.from_dict({"embedding_dim": 8, "num_layers": 2}), tiny).train()
    split = make_split(tiny, "warm", 0)
    reps = ModelInputs.build(tiny, split.train).forward(model)
    users, items = torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]) + tiny.num_users
    loss = bpr_loss((reps.nodes[users] * reps.nodes[items]).sum(1), torch.zeros(3)) + cross_view_loss(reps, users, items, 0.2)
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
