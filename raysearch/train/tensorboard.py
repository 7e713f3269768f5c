"""The in-process reporter: a progress line per epoch, TensorBoard scalars, the best checkpoint on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from torch.utils.tensorboard import SummaryWriter

from raysearch.train.checkpoint import CHECKPOINT_FILE, save_checkpoint


class LocalReporter:
    """Reporter for :func:`raysearch.train.fit.fit` when it runs outside Ray."""

    def __init__(self, out_dir: Path, metric: str, max_epochs: int) -> None:
        self.out_dir = Path(out_dir)
        self.metric = metric
        self.max_epochs = max_epochs
        self.writer = SummaryWriter(str(self.out_dir / "tensorboard"))

    def __call__(self, metrics: dict[str, float], checkpoint: Callable[[], dict], improved: bool) -> None:
        epoch = int(metrics["epoch"])
        for key, value in metrics.items():
            if key != "epoch":
                self.writer.add_scalar(key.replace("_", "/", 1) if key.startswith("valid_") else key, value, epoch)
        self.writer.flush()
        if improved:
            save_checkpoint(checkpoint(), self.out_dir / CHECKPOINT_FILE)
        print(f"epoch {epoch:>3}/{self.max_epochs}  loss {metrics['loss']:.4f}  "
              f"valid {self.metric} {metrics[f'valid_{self.metric}']:.4f}  "
              f"{metrics['epoch_seconds']:.1f}s{'  *best' if improved else ''}", flush=True)

    def close(self) -> None:
        self.writer.close()
