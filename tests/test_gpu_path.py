"""The GPU path as far as a CPU machine can run it: `--use-gpu` means NCCL and one GPU per worker,
bf16 autocast trains on CPU, fp16 is refused off CUDA. `scripts/gpu_check.sh` runs the rest on a GPU."""

import pyarrow.fs
import pytest

from conftest import tiny_dataset
from raysearch.config import Scaling, TrainConfig
from raysearch.distributed import make_trainer
from raysearch.errors import ConfigError
from raysearch.splits import make_split
from raysearch.storage import resolve
from raysearch.training import run_epochs

TINY = dict(epochs=3, embedding_dim=8, batch_size=16, num_negatives=4, contrastive_pairs=8, topk=(5,), metric="ndcg@5")


@pytest.mark.parametrize("use_gpu, backend", [(True, "nccl"), (False, "gloo")])
def test_use_gpu_asks_one_gpu_per_worker_and_nccl(use_gpu, backend, tmp_path):
    scaling = Scaling(workers_per_trial=4, use_gpu=use_gpu, placement_strategy="SPREAD")
    trainer = make_trainer(TrainConfig(), tiny_dataset(), scaling, "run", str(tmp_path))
    assert trainer.scaling_config.use_gpu is use_gpu and trainer.scaling_config.num_workers == 4
    assert trainer.scaling_config.placement_strategy == "SPREAD"
    assert trainer.backend_config.backend == backend
    assert trainer.run_config.storage_path == str(tmp_path) and trainer.run_config.storage_filesystem is None


def test_a_bucket_storage_reaches_ray_train_as_a_filesystem():
    trainer = make_trainer(TrainConfig(), tiny_dataset(), Scaling(), "run", resolve("s3://bucket/prefix", "http://127.0.0.1:9"))
    assert trainer.run_config.storage_path == "bucket/prefix"
    assert isinstance(trainer.run_config.storage_filesystem, pyarrow.fs.S3FileSystem)


def test_bf16_autocast_trains_on_cpu_close_to_float32():
    dataset = tiny_dataset()
    split = make_split(dataset, "warm", 42)
    full, mixed = (run_epochs(TrainConfig(**TINY, mixed_precision=p), dataset, split).history for p in ("off", "bf16"))
    losses = [(a["loss"], b["loss"]) for a, b in zip(full, mixed)]
    assert all(a != b and b == pytest.approx(a, rel=0.02) for a, b in losses)  # autocast ran, and stayed close


def test_fp16_needs_cuda():
    dataset = tiny_dataset()
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        run_epochs(TrainConfig(**TINY, mixed_precision="fp16"), dataset, make_split(dataset, "warm", 42))
    with pytest.raises(ConfigError, match="mixed_precision"):
        TrainConfig(mixed_precision="fp8")
