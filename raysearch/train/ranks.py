"""Where one process stands among the data-parallel ranks of a run, and what the ranks share.

Data parallelism here changes nothing but the speed: the global batch stays ``batch_size`` (each rank
takes ``batch_size // size`` pairs of its own shard per step, so an epoch has the same optimizer steps),
each rank draws its own random stream, and validation users are split across the ranks with the metric
sums added up (:meth:`Ranks.all_sum`), so every rank reports the same metrics. Rank 0 of a one-rank run
is exactly the in-process run: its seed, its shuffle, its batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    """This process's ``rank`` among ``size`` data-parallel ranks (rank 0 of 1: an in-process run)."""

    rank: int = 0
    size: int = 1

    def seed(self, seed: int) -> int:
        """The rank's own seed: ``seed`` itself on rank 0, a derived one of (seed, rank) elsewhere."""
        return seed if self.rank == 0 else int(np.random.SeedSequence([seed, self.rank]).generate_state(1)[0])

    def share(self, count: int) -> int:
        """This rank's share of ``count`` (of a batch, say), at least 1."""
        return max(1, count // self.size)

    def shard(self, length: int) -> torch.Tensor:
        """Positions ``0..length-1`` this rank owns: every ``size``-th one, the remainder dropped so every
        rank has as many (and DDP steps stay in lockstep)."""
        return torch.arange(length - length % self.size)[self.rank::self.size]

    def all_sum(self, values: dict[str, float]) -> dict[str, float]:
        """``values`` added up over the ranks (one all-reduce; the same keys on every rank)."""
        if self.size == 1:
            return values
        device = "cuda" if dist.get_backend() == "nccl" else "cpu"  # NCCL reduces GPU tensors only
        total = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
        dist.all_reduce(total)
        return dict(zip(values, total.tolist()))
