"""RSPS: random search with parameter sharing (Li & Talwalkar 2019), as NB201's RANDOM-NAS script runs it.

Weight step: a new uniformly random cell every batch (one cell for the whole network). No arch step.
Final selection: ``select_candidates`` (100) random cells, each scored on the next validation batch
(``select_batch_size``, 512) with the shared weights; the best is the answer.
"""

from __future__ import annotations

import numpy as np

from nasbench_suite.method import OneShotMethod, ce_and_acc, register
from nasbench_suite.space import Cell, sample_cell


@register("rsps", aliases=("random", "random-nas"))
class RSPS(OneShotMethod):
    display_name = "RSPS"

    def search_step(self, train_batch, valid_batch, epoch, step):
        x, y = train_batch
        cell = sample_cell(self.ctx.rng)
        loss, acc = ce_and_acc(self.ctx.supernet.forward_cell(x, cell), y)
        self.ctx.weight_step(loss)
        return {"train_loss": loss.item(), "train_acc": acc}

    def derive(self, epoch: int) -> Cell:
        # Candidates come from their own generator so that deriving never changes the search trajectory.
        rng = np.random.default_rng([self.ctx.seed, epoch, 0x5E1])
        cells = [sample_cell(rng) for _ in range(self.ctx.protocol.select_candidates)]
        scores = self.score_cells(cells, self.ctx.selection_batches(epoch))
        return cells[int(np.argmax(scores))]
