"""GDAS.py on ``TinyNetworkGDAS`` (its forward: a Gumbel sample, the hard one-hot, ``forward_gdas``): a weight step,
then an arch step; tau set per epoch as the script sets it."""

from __future__ import annotations

from .base import ReferenceStep


class GDASReference(ReferenceStep):
    network = "gdas"

    def __init__(self, protocol, hparams=None, **kwargs):
        super().__init__(protocol, hparams, **kwargs)
        self.begin_epoch(0)

    def begin_epoch(self, epoch):
        # GDAS.py: tau_max - (tau_max - tau_min) * epoch / (total_epoch - 1)
        tau_max, tau_min = (10.0, 0.1) if self.hparams is None else (self.hparams.tau_max, self.hparams.tau_min)
        total = self.protocol.epochs
        self.net.set_tau(tau_max - (tau_max - tau_min) * epoch / (total - 1) if total > 1 else tau_max)

    def step(self, train_batch, valid_batch):
        loss = self.clipped_weight_step(*train_batch)
        return {"train_loss": loss, "valid_loss": self.arch_step(*valid_batch)}
