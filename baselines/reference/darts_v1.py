"""DARTS-V1.py (first order) on ``TinyNetworkDarts``: a weight step on the train batch, then an arch step (Adam on
alpha) on the valid batch."""

from __future__ import annotations

from .base import ReferenceStep


class DartsV1Reference(ReferenceStep):
    network = "darts"

    def step(self, train_batch, valid_batch):
        loss = self.clipped_weight_step(*train_batch)
        return {"train_loss": loss, "valid_loss": self.arch_step(*valid_batch)}
