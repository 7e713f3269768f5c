"""Training losses in their numerically stable forms."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bpr_loss(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Bayesian personalised ranking: ``-log sigmoid(pos - neg)``, averaged. positive [B], negative [B] or [B, K]."""
    return -F.logsigmoid(positive.unsqueeze(-1) - negative.reshape(len(positive), -1)).mean()


def sampled_softmax_loss(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the positive against its K sampled negatives: positive [B], negative [B, K]."""
    logits = torch.cat([positive.unsqueeze(1), negative.reshape(len(positive), -1)], 1)
    return (torch.logsumexp(logits, 1) - positive).mean()


def info_nce(anchor: torch.Tensor, other: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE between two views of the same B entities, in-batch negatives.

    anchor, other: [B, d]; row b of each is a positive pair, every other row a negative. Computed as
    cross-entropy over cosine similarities / temperature (stable log-sum-exp inside).
    """
    logits = F.normalize(anchor, dim=1) @ F.normalize(other, dim=1).T / temperature
    target = torch.arange(len(logits), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
