"""The GPU path as far as a CPU machine can run it: bf16 autocast trains on CPU, fp16 is refused off CUDA
(`--use-gpu` asking NCCL and one GPU per worker: tests/test_distributed.py). `scripts/gpu_check.sh` runs the
rest on a GPU."""

import pytest

from raysearch.config import TrainConfig
from raysearch.data.protocols import make_split
from raysearch.errors import ConfigError
from raysearch.testing.datasets import tiny_dataset
from raysearch.train.fusion_gcn import run_epochs

TINY = dict(epochs=3, embedding_dim=8, batch_size=16, num_negatives=4, contrastive_pairs=8, topk=[5], metric="ndcg@5")


def test_bf16_autocast_trains_on_cpu_close_to_float32():
    dataset = tiny_dataset()
    split = make_split(dataset, "warm", 42)
    full, mixed = (run_epochs(TrainConfig.from_dict({**TINY, "mixed_precision": p}), dataset, split).progress.history
                   for p in ("off", "bf16"))
    losses = [(a["loss"], b["loss"]) for a, b in zip(full, mixed)]
    assert all(a != b and b == pytest.approx(a, rel=0.02) for a, b in losses)  # autocast ran, and stayed close


def test_fp16_needs_cuda():
    dataset = tiny_dataset()
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        run_epochs(TrainConfig.from_dict({**TINY, "mixed_precision": "fp16"}), dataset, make_split(dataset, "warm", 42))
    with pytest.raises(ConfigError, match="mixed_precision"):
        TrainConfig(mixed_precision="fp8")
