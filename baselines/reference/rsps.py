"""RANDOM-NAS.py on ``TinyNetworkRANDOM``: one random cell for the whole network (``random_genotype(True)``), a
clipped weight step; candidates scored through ``arch_cache``."""

from __future__ import annotations

from .base import ReferenceStep, structure


class RSPSReference(ReferenceStep):
    network = "random"

    def step(self, train_batch, valid_batch):
        self.set_cell(self.sample_cell())
        return {"train_loss": self.clipped_weight_step(*train_batch)}

    def set_cell(self, cell):
        self.net.arch_cache = structure(cell)  # what random_genotype(True) sets
