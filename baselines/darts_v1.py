"""DARTS-V1 (first-order DARTS, Liu et al. 2019) as NB201's DARTS-V1 script runs it.

Each step: a weight step on a train batch through the softmax mixture of all ops on every edge, then a
first-order arch step (Adam on alpha) on a valid batch. Alpha starts at ``1e-3 * randn(6, 5)``.
Final cell: argmax of alpha per edge (``none`` may win).
"""

from __future__ import annotations

import torch

from nasbench_suite.method import OneShotMethod, ce_and_acc, register
from nasbench_suite.space import NUM_EDGES, NUM_OPS, Cell


class AlphaMethod(OneShotMethod):
    """Shared by the methods with a (6 x 5) alpha and an Adam arch optimiser (DARTS-V1/V2, GDAS, SETN)."""

    def setup(self, ctx):
        super().setup(ctx)
        self.alpha = torch.nn.Parameter(1e-3 * torch.randn(NUM_EDGES, NUM_OPS, device=ctx.device))
        self.a_optimizer = ctx.arch_adam([self.alpha])

    def arch_parameters(self):
        return [self.alpha]

    def derive(self, epoch: int) -> Cell:
        return Cell(tuple(self.alpha.detach().argmax(-1).tolist()))

    def arch_distribution(self):
        return torch.softmax(self.alpha.detach(), -1)  # DARTS-V1/V2, GDAS, SETN: softmax(alpha) per edge

    def state_dict(self):
        return {"alpha": self.alpha.detach().clone(), "a_optimizer": self.a_optimizer.state_dict()}

    def load_state_dict(self, state):
        with torch.no_grad():
            self.alpha.copy_(state["alpha"])
        self.a_optimizer.load_state_dict(state["a_optimizer"])

    def arch_update(self, loss: torch.Tensor) -> None:
        """One Adam step on alpha from ``loss``.

        Only alpha's gradient is computed: the reference's full backward also fills the weights' gradients, but
        the next weight step clears them unused, so skipping them changes nothing but the time (~1/3 of the
        step's backward). alpha.grad is left in place, as the reference leaves it (see KeepArchGradMixin).
        """
        (grad,) = torch.autograd.grad(loss, [self.alpha])
        self.alpha.grad = grad
        self.a_optimizer.step()


class KeepArchGradMixin:
    """The reference's weight step leaves the arch gradient of the last arch step in place (its
    ``w_optimizer.zero_grad()`` does not touch alpha), so that gradient plus this backward's enters the clip norm.
    The gradient is therefore part of the state, for an exact resume."""

    def weight_step_keep_arch_grad(self, loss: torch.Tensor) -> None:
        self.ctx.weight_step(loss, also_clip=(self.alpha,), keep_also_clip_grads=True)

    def state_dict(self):
        state = super().state_dict()
        state["alpha_grad"] = None if self.alpha.grad is None else self.alpha.grad.detach().clone()
        return state

    def load_state_dict(self, state):
        super().load_state_dict(state)
        g = state.get("alpha_grad")
        self.alpha.grad = None if g is None else g.detach().clone().to(self.alpha.device)


@register("darts-v1", aliases=("darts", "dartsv1", "darts-1st"))
class DartsV1(KeepArchGradMixin, AlphaMethod):
    display_name = "DARTS-V1"

    def search_step(self, train_batch, valid_batch, epoch, step):
        net = self.ctx.supernet
        x, y = train_batch
        loss, acc = ce_and_acc(net.forward_mixture(x, torch.softmax(self.alpha, -1)), y)
        self.weight_step_keep_arch_grad(loss)
        xv, yv = valid_batch
        arch_loss, arch_acc = ce_and_acc(net.forward_mixture(xv, torch.softmax(self.alpha, -1)), yv)
        self.arch_update(arch_loss)
        return {"train_loss": loss.item(), "train_acc": acc, "valid_loss": arch_loss.item(), "valid_acc": arch_acc}
