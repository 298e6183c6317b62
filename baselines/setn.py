"""SETN (Dong & Yang, ICCV 2019, "One-shot neural architecture search via self-evaluated template network"), as
NB201's SETN script runs it.

Each step:
  * weight step on the train batch through ONE uniformly random cell for the whole network (the script's
    ``dync_genotype(True)`` + ``set_cal_mode("dynamic")``: every op on every edge uniform, ``none`` included, no
    rejection). The script's ``forward_urs`` mode (a new cell per search layer, redrawn per node until one input op
    is not ``none``) is commented out there; it is available as ``weight_sampling=urs``. Like the script, the
    weight step does NOT clip gradients (``clip_weight_grads=true`` applies the protocol's clip);
  * arch step on the valid batch through the softmax mixture of all ops on every edge (the script's "joint" mode,
    the same forward as DARTS), one Adam step on alpha.

Selection (every epoch, and so at the end): rank all 15,625 cells by the sum over edges of ``log_softmax(alpha)``,
keep the top ``select_candidates`` (100), score each on ONE validation batch of ``select_batch_size`` (512) with the
shared weights (eval mode), take the best (first best on ties, as ``np.argmax``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nasbench_suite.config import setting
from nasbench_suite.method import ce_and_acc, register
from nasbench_suite.space import EDGES, IN_EDGES, NONE, NUM_NODES, NUM_OPS, Cell, all_ops_array, sample_cell

from .alpha import AlphaMethod


def sample_urs_cell(rng: np.random.Generator) -> Cell:
    """The reference's ``forward_urs`` draw for one cell: per node, its input ops uniform, redrawn while all are
    ``none``."""
    ops = [0] * len(EDGES)
    for i in range(1, NUM_NODES):
        edges = IN_EDGES[i]
        while True:
            picks = rng.integers(0, NUM_OPS, size=len(edges))
            if (picks != NONE).any():
                break
        for e, o in zip(edges, picks):
            ops[e] = int(o)
    return Cell(tuple(ops))


def top_cells_by_log_prob(alpha: torch.Tensor, k: int) -> list[Cell]:
    """The ``k`` cells with the largest summed ``log_softmax(alpha)`` (stable order on ties)."""
    logp = torch.log_softmax(alpha.detach(), -1).cpu().numpy()  # in alpha's dtype, as the reference ranks
    ops = all_ops_array()
    scores = logp[np.arange(logp.shape[0])[None, :], ops].sum(1)
    order = np.argsort(-scores, kind="stable")[: max(0, min(k, len(ops)))]
    return [Cell(tuple(int(o) for o in ops[i])) for i in order]


@dataclass(frozen=True)
class WeightSamplingHparams:
    """How a cell-sampling method draws the cell(s) its weight step trains (SETN, RSPS)."""

    #: "dynamic" = one uniform cell for the whole network (NB201's SETN / RANDOM-NAS scripts); "urs" = one cell per
    #: search layer, each node redrawn until it has a non-none input (xautodl's forward_urs: NATS-Bench's RSPS;
    #: commented out in NB201's SETN script)
    weight_sampling: str = setting("dynamic", choices=("dynamic", "urs"))


class WeightSamplingMixin:
    """``sample_weight_cells()`` per the ``weight_sampling`` hyperparameter, from the run's generator."""

    def sample_weight_cells(self) -> Cell | list[Cell]:
        rng = self.ctx.rng
        if self.hparams.weight_sampling == "urs":
            return [sample_urs_cell(rng) for _ in range(self.ctx.supernet.num_search_cells)]
        return sample_cell(rng)


@register("setn")
class SETN(WeightSamplingMixin, AlphaMethod):
    display_name = "SETN"
    reference = f"{__package__}.reference.setn:SETNReference"  # its NB201 script on xautodl (timing, tests)

    @dataclass(frozen=True)
    class Hparams(WeightSamplingHparams):
        #: the script's SETN weight step does not clip; true applies the protocol's grad_clip
        clip_weight_grads: bool = False

    def search_step(self, train_batch, valid_batch, epoch, step):
        ctx, net = self.ctx, self.ctx.supernet
        x, y = train_batch
        loss, acc = ce_and_acc(net.forward_cell(x, self.sample_weight_cells()), y)
        ctx.weight_step(loss, clip=self.hparams.clip_weight_grads)
        xv, yv = valid_batch
        arch_loss, arch_acc = ce_and_acc(net.forward_mixture(xv, torch.softmax(self.alpha, -1)), yv)
        self.arch_update(arch_loss)
        return {"train_loss": loss.item(), "train_acc": acc, "valid_loss": arch_loss.item(), "valid_acc": arch_acc}

    def derive(self, epoch: int) -> Cell:
        cells = top_cells_by_log_prob(self.alpha, self.ctx.protocol.select_candidates)
        return self.best_of(cells, epoch)
