"""Shared fixtures: the real MovieLens copies (from $RAYSEARCH_DATA_DIR or ../shared/data) and a tiny graph."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from raysearch import features
from raysearch.data import Dataset, load_dataset

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


def tiny_dataset(num_users: int = 12, num_items: int = 10, seed: int = 0, skew: float = 0.0) -> Dataset:
    """Two taste groups: even users like even items, odd users odd items; attributes reveal the group.
    ``skew`` > 0 makes low item indices more popular (a user likes item i with chance 0.8 (1 - skew i / I))."""
    rng = np.random.default_rng(seed)
    pairs = [(u, i) for u in range(num_users) for i in range(num_items)
             if u % 2 == i % 2 and rng.random() < 0.8 * (1 - skew * i / num_items)]
    groups = ["even" if u % 2 == 0 else "odd" for u in range(num_users)]
    item_groups = [["even"] if i % 2 == 0 else ["odd"] for i in range(num_items)]
    return Dataset(
        name="tiny", user_ids=np.arange(1, num_users + 1), item_ids=np.arange(101, 101 + num_items),
        interactions=np.array(pairs, dtype=np.int64),
        user_fields=(features.categorical("group", groups), features.categorical("noise", ["a", "b"] * (num_users // 2))),
        item_fields=(features.multi("genres", item_groups), features.hashed_text("title", [f"film {i}" for i in range(num_items)], 16)),
        item_titles=tuple(f"film {i}" for i in range(num_items)), has_timestamps=False,
    )


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
