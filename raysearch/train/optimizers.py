"""Several torch optimizers stepped, zeroed and checkpointed as one (a lazy Adam for sparse ID tables beside Adam
for the dense parameters), so the training loop, loss scaling and checkpoints treat them like one optimizer."""

from __future__ import annotations

from typing import Any

import torch


class Optimizers:
    """``optimizers`` as one: ``step``, ``zero_grad``, ``param_groups`` (what ``GradScaler`` reads) and a state dict
    that holds each one's."""

    def __init__(self, *optimizers: torch.optim.Optimizer) -> None:
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [group for optimizer in self.optimizers for group in optimizer.param_groups]

    def step(self) -> None:
        for optimizer in self.optimizers:
            optimizer.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"optimizers": [optimizer.state_dict() for optimizer in self.optimizers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for optimizer, own in zip(self.optimizers, state["optimizers"], strict=True):
            optimizer.load_state_dict(own)


Optimizer = torch.optim.Optimizer | Optimizers
