"""CLCRec: warm content-side entities keep their ID embeddings, cold ones get their encoding."""

from __future__ import annotations

import pytest
import torch

from raysearch.baselines.clcrec import CLCRec


@pytest.mark.parametrize("side", ["users", "items"])
def test_cold_rows_are_encoded_and_warm_rows_are_ids(side):
    content = torch.eye(4)
    known = torch.tensor([True, False, True, False])
    sizes = (4, 6) if side == "users" else (6, 4)
    model = CLCRec(*sizes, content, known, side, embedding_dim=3, hidden=5)
    users, items = model.vectors()
    own, ids = (users, model.ids[0].weight) if side == "users" else (items, model.ids[1].weight)
    torch.testing.assert_close(own[known], ids[known])
    torch.testing.assert_close(own[~known], model.encode(torch.tensor([1, 3])))
    assert users.shape == (sizes[0], 3) and items.shape == (sizes[1], 3)
