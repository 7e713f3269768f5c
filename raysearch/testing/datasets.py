"""Small synthetic datasets whose right answers are known, for tests."""

from __future__ import annotations

import numpy as np

from raysearch.data import features
from raysearch.data.movielens import Dataset


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
        item_fields=(features.multi("genres", item_groups),
                     features.hashed_text("title", [f"film {i}" for i in range(num_items)], 16)),
        item_titles=tuple(f"film {i}" for i in range(num_items)), has_timestamps=False,
    )
