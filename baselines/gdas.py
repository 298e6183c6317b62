"""GDAS (Dong & Yang, CVPR 2019, "Searching for a robust neural architecture in four GPU hours"), as NB201's
GDAS script runs it.

Every forward samples one op per edge with the Gumbel-max trick on ``log_softmax(alpha)``, tempered by tau:
``probs = softmax((log_softmax(alpha) + g) / tau)``, ``index = argmax(probs)``, straight-through weights
``hard - probs.detach() + probs``; the noise is redrawn while any entry is inf/nan (as the reference). Only the chosen
op is computed (:meth:`Supernet.forward_hard`). Each step: a weight step on the train batch, then an arch step on
the valid batch, each through its own sample. Tau goes linearly from ``tau_max`` to ``tau_min`` over the epochs,
set at the start of each epoch. Gumbel noise comes from torch's global RNG (checkpointed by the runner), drawn with
the same call as the reference, so a seeded reference draws the same noise. Final cell: argmax of alpha per edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nasbench_suite.config import setting
from nasbench_suite.method import ce_and_acc, register

from .alpha import AlphaMethod, KeepArchGradMixin


def gumbel_hard_weights(alpha: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Straight-through hard one-hot weights (edges x ops) and the chosen op per edge, from torch's global RNG."""
    while True:
        gumbels = -torch.empty_like(alpha).exponential_().log()
        probs = torch.softmax((alpha.log_softmax(dim=1) + gumbels) / tau, dim=1)
        index = probs.max(-1, keepdim=True)[1]
        if torch.isinf(gumbels).any() or torch.isinf(probs).any() or torch.isnan(probs).any():
            continue
        hard = torch.zeros_like(probs).scatter_(-1, index, 1.0)
        return hard - probs.detach() + probs, index.view(-1)


@register("gdas")
class GDAS(KeepArchGradMixin, AlphaMethod):
    display_name = "GDAS"
    reference = f"{__package__}.reference.gdas:GDASReference"  # its NB201 script on xautodl (timing, tests)

    @dataclass(frozen=True)
    class Hparams:
        tau_max: float = setting(10.0, gt=0, le=1e6)
        tau_min: float = setting(0.1, gt=0, le=1e6)

    def setup(self, ctx):
        super().setup(ctx)
        self.tau = self.hparams.tau_max

    def begin_epoch(self, epoch: int) -> None:
        h, total = self.hparams, self.ctx.epochs
        # the reference: tau_max - (tau_max - tau_min) * epoch / (total - 1); one epoch: tau_max
        self.tau = h.tau_max - (h.tau_max - h.tau_min) * epoch / (total - 1) if total > 1 else h.tau_max

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hardwts, index = gumbel_hard_weights(self.alpha, self.tau)
        return self.ctx.supernet.forward_hard(x, hardwts, index)

    def search_step(self, train_batch, valid_batch, epoch, step):
        x, y = train_batch
        loss, acc = ce_and_acc(self.forward(x), y)
        self.weight_step_keep_arch_grad(loss)
        xv, yv = valid_batch
        arch_loss, arch_acc = ce_and_acc(self.forward(xv), yv)
        self.arch_update(arch_loss)
        return {
            "train_loss": loss.item(),
            "train_acc": acc,
            "valid_loss": arch_loss.item(),
            "valid_acc": arch_acc,
            "tau": self.tau,
        }
