"""The in-process reporter: a progress line per epoch, TensorBoard scalars, the best checkpoint on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from torch.utils.tensorboard import SummaryWriter

from raysearch.checkpoint import save_checkpoint

SHOWN = ("recall", "ndcg", "mrr", "hit")


class LocalReporter:
    """Reporter for :func:`raysearch.training.fit` when it runs outside Ray."""

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
            save_checkpoint(checkpoint(), self.out_dir / "checkpoint.pt")
        print(f"epoch {epoch:>3}/{self.max_epochs}  loss {metrics['loss']:.4f}  "
              f"valid {self.metric} {metrics[f'valid_{self.metric}']:.4f}  "
              f"{metrics['epoch_seconds']:.1f}s{'  *best' if improved else ''}", flush=True)

    def close(self) -> None:
        self.writer.close()


def metrics_table(rows: dict[str, dict[str, float]], ks: tuple[int, ...]) -> str:
    """A Markdown table: one row per part (e.g. valid, test), one column per metric@K."""
    columns = [f"{name}@{k}" for k in ks for name in SHOWN]
    return markdown_table(["part", *columns], [[part, *(values[c] for c in columns)] for part, values in rows.items()])


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table; floats get 4 decimals."""
    cell = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows])
