import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from raysearch.train.checkpoint import CHECKPOINT_FILE
from raysearch.train.tensorboard import LocalReporter


def test_scalars_progress_lines_and_the_best_checkpoint(tmp_path, capsys):
    reporter = LocalReporter(tmp_path, "ndcg@10", 2)
    for epoch, value, improved in ((1, 0.3, True), (2, 0.2, False)):
        metrics = {"epoch": epoch, "loss": 1.0 / epoch, "epoch_seconds": 0.5, "valid_ndcg@10": value,
                   "best_epoch": 1, "best_value": 0.3}
        reporter(metrics, lambda e=epoch: {"epoch": e}, improved)
    reporter.close()
    assert torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True) == {"epoch": 1}  # the improved epoch only
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["epoch   1/2  loss 1.0000  valid ndcg@10 0.3000  0.5s  *best",
                     "epoch   2/2  loss 0.5000  valid ndcg@10 0.2000  0.5s"]
    (events,) = (tmp_path / "tensorboard").glob("events.out.tfevents.*")
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    assert {"loss", "valid/ndcg@10", "best_value"} <= set(accumulator.Tags()["scalars"])
    assert [e.value for e in accumulator.Scalars("valid/ndcg@10")] == pytest.approx([0.3, 0.2])
