"""RSPS: random search with parameter sharing (Li & Talwalkar 2019), as NB201's RANDOM-NAS script runs it.

Weight step: a new uniformly random cell every batch (one cell for the whole network). No arch step.
Final selection: ``select_candidates`` (100) random cells, each scored on the next validation batch
(``select_batch_size``, 512) with the shared weights; the best is the answer.

NATS-Bench's search-cell.py (``--algo random``) differs in two ways, both hyperparameters here: the weight step
uses ``urs`` sampling (``weight_sampling=urs``: a different random op per cell and per node, redrawn until the node
has a non-``none`` input: xautodl's ``forward_urs``), and the candidates are ``return_topK(100, True)`` =
``random.sample`` of all cells: 100 DISTINCT cells (``distinct_candidates=true``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nasbench_suite.method import OneShotMethod, ce_and_acc, register
from nasbench_suite.space import NUM_EDGES, NUM_OPS, Cell, all_ops_array, sample_cell

from .setn import WeightSamplingHparams, WeightSamplingMixin


@register("rsps", aliases=("random", "random-nas"))
class RSPS(WeightSamplingMixin, OneShotMethod):
    display_name = "RSPS"
    reference = f"{__package__}.reference.rsps:RSPSReference"  # its NB201 script on xautodl (timing, tests)

    @dataclass(frozen=True)
    class Hparams(WeightSamplingHparams):
        #: score distinct candidates (NATS-Bench: random.sample) instead of independent draws (NB201)
        distinct_candidates: bool = False

    def search_step(self, train_batch, valid_batch, epoch, step):
        x, y = train_batch
        cell = self.sample_weight_cells()
        loss, acc = ce_and_acc(self.ctx.supernet.forward_cell(x, cell), y)
        self.ctx.weight_step(loss)
        return {"train_loss": loss.item(), "train_acc": acc}

    def arch_distribution(self):
        return np.full((NUM_EDGES, NUM_OPS), 1.0 / NUM_OPS)  # RSPS samples every op of every edge uniformly

    def derive(self, epoch: int) -> Cell:
        # Candidates come from their own generator so that deriving never changes the search trajectory.
        rng = np.random.default_rng([self.ctx.seed, epoch, 0x5E1])
        n = self.ctx.protocol.select_candidates
        if self.hparams.distinct_candidates:
            ops = all_ops_array()
            picks = rng.choice(len(ops), size=min(n, len(ops)), replace=False)
            cells = [Cell(tuple(int(o) for o in ops[i])) for i in picks]
        else:
            cells = [sample_cell(rng) for _ in range(n)]
        return self.best_of(cells, epoch)
