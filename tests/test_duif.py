"""The DUIF-style content tower: its content side comes from attributes only, the other side from IDs."""

from __future__ import annotations

import pytest
import torch

from raysearch.baselines.duif import ContentTower


@pytest.mark.parametrize("side", ["users", "items"])
def test_content_side_is_the_tower_and_the_other_side_ids(side):
    content = torch.rand(5, 7)
    model = ContentTower(num_ids=9, content=content, content_side=side, embedding_dim=4, hidden=8)
    users, items = model.vectors()
    encoded, ids = (users, items) if side == "users" else (items, users)
    torch.testing.assert_close(encoded, model.tower(content))
    torch.testing.assert_close(ids, model.ids.weight)
    assert encoded.shape == (5, 4) and ids.shape == (9, 4)
