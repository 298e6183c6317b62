"""DARTS-V1 (first-order DARTS, Liu et al. 2019) as NB201's DARTS-V1 script runs it.

Each step: a weight step on a train batch through the softmax mixture of all ops on every edge, then a
first-order arch step (Adam on alpha) on a valid batch. Alpha starts at ``1e-3 * randn(6, 5)``.
Final cell: argmax of alpha per edge (``none`` may win).
"""

from __future__ import annotations

import torch

from nasbench_suite.method import ce_and_acc, register

from .alpha import AlphaMethod, KeepArchGradMixin


@register("darts-v1", aliases=("darts", "dartsv1", "darts-1st"))
class DartsV1(KeepArchGradMixin, AlphaMethod):
    display_name = "DARTS-V1"
    reference = f"{__package__}.reference.darts_v1:DartsV1Reference"  # its NB201 script on xautodl (timing, tests)

    def search_step(self, train_batch, valid_batch, epoch, step):
        net = self.ctx.supernet
        x, y = train_batch
        loss, acc = ce_and_acc(net.forward_mixture(x, torch.softmax(self.alpha, -1)), y)
        self.weight_step_keep_arch_grad(loss)
        xv, yv = valid_batch
        arch_loss, arch_acc = ce_and_acc(net.forward_mixture(xv, torch.softmax(self.alpha, -1)), yv)
        self.arch_update(arch_loss)
        return {"train_loss": loss.item(), "train_acc": acc, "valid_loss": arch_loss.item(), "valid_acc": arch_acc}
