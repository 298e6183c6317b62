"""SETN.py on ``TinyNetworkSETN``: the weight step on a uniformly random cell (``dync_genotype(True)``, mode
``dynamic``) WITHOUT clipping, then the arch step in mode ``joint``; candidates scored in mode ``dynamic``."""

from __future__ import annotations

import torch.nn.functional as F

from .base import ReferenceStep, logits, structure


class SETNReference(ReferenceStep):
    network = "setn"

    def step(self, train_batch, valid_batch):
        (x, y), (xv, yv) = train_batch, valid_batch
        net = self.net
        self.set_cell(self.sample_cell())
        net.zero_grad(set_to_none=self.set_to_none)
        loss = F.cross_entropy(logits(net, x), y)
        loss.backward()
        self.w_optimizer.step()
        net.set_cal_mode("joint")
        net.zero_grad(set_to_none=self.set_to_none)
        arch_loss = F.cross_entropy(logits(net, xv), yv)
        arch_loss.backward()
        self.a_optimizer.step()
        return {"train_loss": loss.item(), "valid_loss": arch_loss.item()}

    def set_cell(self, cell):
        self.net.set_cal_mode("dynamic", structure(cell))
