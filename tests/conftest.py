"""Shared fixtures: the real MovieLens copies (from $RAYSEARCH_DATA_DIR or ../shared/data), a tiny graph, and
the session's local Ray."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from raysearch.data.movielens import Dataset, load_dataset
from raysearch.testing.datasets import tiny_dataset

ROOT = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("RAYSEARCH_DATA_DIR", ROOT.parent / "shared" / "data")).resolve()

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not (DATA_ROOT / "ml-100k" / "u.data").is_file():
        pytest.fail(f"MovieLens data not found under {DATA_ROOT}; set RAYSEARCH_DATA_DIR")
    return DATA_ROOT


@pytest.fixture(scope="session")
def ml100k(data_root: Path) -> Dataset:
    return load_dataset("ml-100k", data_root / "ml-100k")


@pytest.fixture
def tiny() -> Dataset:
    return tiny_dataset()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run ``own_ray`` tests (they start and stop their own Ray) first, before the session's local Ray
    exists: two Ray instances on one machine break Ray's placement-group cleaner."""
    items.sort(key=lambda item: item.get_closest_marker("own_ray") is None)


@pytest.fixture(scope="session")
def ray_address():
    """One local Ray for the whole test run: 2 logical CPUs, shut down at the end."""
    import ray

    os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "60")
    ray.init(address="local", num_cpus=2)  # a new instance, never a `ray start` cluster recorded in /tmp/ray
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
