"""FusionGCN's training (raysearch/train/fusion_gcn.py) on a two-taste graph whose right answers are known."""

import pytest
import torch

from raysearch.config import TrainConfig
from raysearch.data.protocols import make_split
from raysearch.errors import TrainingDiverged
from raysearch.train.fit import fit
from raysearch.train.fusion_gcn import run_epochs, train

TINY = dict(embedding_dim=8, num_layers=2, batch_size=16, epochs=30, patience=30, learning_rate=0.05,
            topk=[3], metric="ndcg@3", contrastive_pairs=16)


def tiny_config(**changes) -> TrainConfig:
    return TrainConfig.from_dict({**TINY, **changes})


def test_loss_decreases_and_model_beats_random_on_a_tiny_graph(tiny):
    result = fit(tiny_config(), tiny, make_split(tiny, "warm", 0))
    losses = [row["loss"] for row in result.history]
    # 16-pair batches make one epoch's loss noisy (+-0.05 of the first): the last 5 epochs' mean is compared; the
    # cold-path terms (attribute views, here with attribute neighbours) keep a floor near 0.6 of the first epoch
    assert sum(losses[-5:]) / 5 < 0.7 * losses[0]
    # 5 candidate items of the user's parity among 10; a random ranker's Hit@3 is far below 1
    assert result.test["hit@3"] == pytest.approx(1.0)


@pytest.mark.parametrize("neighbours", [0, 3])
def test_cold_items_are_ranked_by_attributes(tiny, neighbours):
    result = fit(tiny_config(id_dropout=0.5, item_neighbours=neighbours), tiny, make_split(tiny, "item_cold", 1))
    assert result.test["hit@3"] == pytest.approx(1.0)


def test_bpr_with_several_negatives_learns(tiny):
    result = fit(tiny_config(rec_loss="bpr", num_negatives=4), tiny, make_split(tiny, "warm", 0))
    assert result.history[-1]["loss"] < result.history[0]["loss"] and result.test["hit@3"] == pytest.approx(1.0)


def test_same_seed_same_metrics(tiny):
    config, split = tiny_config(epochs=4), make_split(tiny, "user_cold", 0)
    first, second = fit(config, tiny, split), fit(config, tiny, split)
    timing = ("epoch_seconds", "eval_seconds")
    assert first.history == [{**row, **{k: a[k] for k in timing}} for row, a in zip(second.history, first.history)]
    assert first.test == second.test


def test_resume_continues_from_the_checkpoint_not_from_scratch(tiny):
    """Epochs 3-4 resumed from epoch 2's checkpoint: the model and optimizer come back (its loss is below a
    fresh run's first epoch), and so does the best epoch so far."""
    split = make_split(tiny, "warm", 0)
    checkpoints = []
    first = run_epochs(tiny_config(epochs=2), tiny, split,
                       lambda metrics, checkpoint, improved: checkpoints.append(checkpoint())).progress
    resumed = run_epochs(tiny_config(epochs=4), tiny, split, resume=checkpoints[-1]).progress
    assert [row["epoch"] for row in resumed.history] == [3, 4]
    steps = first.history[0]["train_steps"]
    assert [row["train_steps"] for row in resumed.history] == [3 * steps, 4 * steps]  # counted on from the checkpoint
    assert resumed.history[0]["loss"] < first.history[0]["loss"]
    assert resumed.best_value >= first.best_value and resumed.best_epoch >= first.best_epoch


def test_train_returns_the_best_epochs_scorer_and_fusion_weights(tiny):
    fitted = train(tiny_config(epochs=3), tiny, make_split(tiny, "warm", 0))
    assert fitted.best_epoch == fitted.checkpoint["epoch"] and fitted.checkpoint["optimizer"] is not None
    assert fitted.scorer(torch.tensor([0, 1]), torch.arange(4)).shape == (2, 4)
    assert fitted.fusion_weights["user"].shape == (tiny.num_users, 2)
    assert train(tiny_config(epochs=1, fusion="none", contrastive_weight=0, cold_weight=0, user_neighbours=0), tiny,
                 make_split(tiny, "warm", 0)).fusion_weights == {}


def test_a_non_finite_loss_ends_the_run_naming_epoch_loss_and_what_to_try(tiny):
    config = tiny_config(temperature=1e-300)  # logits / temperature overflow: the InfoNCE loss is NaN
    reported = []
    with pytest.raises(TrainingDiverged, match=r"training diverged at epoch 1: the mean training loss is nan "
                                               r"\(try a lower learning_rate or contrastive_weight"):
        fit(config, tiny, make_split(tiny, "warm", 0), lambda metrics, checkpoint, improved: reported.append(metrics))
    assert reported == []  # the diverged epoch is neither scored nor reported
