"""The base of the methods with a (6 x 5) alpha and an Adam arch optimiser (DARTS-V1/V2, GDAS, SETN), and the
mixin for the reference's weight step that keeps the last arch gradient in the clip norm (DARTS-V1/V2, GDAS)."""

from __future__ import annotations

import torch

from nasbench_suite.method import OneShotMethod
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

    @staticmethod
    def group_arch_update(members: list[AlphaMethod], losses: torch.Tensor) -> None:
        """:meth:`arch_update` of every member from its seed's loss in ``losses`` (K,): one backward (seed k's
        alpha only reaches loss k), then each member's own Adam step."""
        grads = torch.autograd.grad(losses.sum(), [m.alpha for m in members])
        for m, grad in zip(members, grads):
            m.alpha.grad = grad
            m.a_optimizer.step()

    @staticmethod
    def group_softmax(members: list[AlphaMethod]) -> torch.Tensor:
        """(K, 6, 5): softmax(alpha) of every member."""
        return torch.stack([torch.softmax(m.alpha, -1) for m in members])


class KeepArchGradMixin:
    """The reference's weight step leaves the arch gradient of the last arch step in place (its
    ``w_optimizer.zero_grad()`` does not touch alpha), so that gradient plus this backward's enters the clip norm.
    The gradient is therefore part of the state, for an exact resume."""

    def weight_step_keep_arch_grad(self, loss: torch.Tensor) -> None:
        self.ctx.weight_step(loss, also_clip=(self.alpha,), keep_also_clip_grads=True)

    @staticmethod
    def group_weight_step_keep_arch_grad(group, losses: torch.Tensor) -> None:
        """:meth:`weight_step_keep_arch_grad` of every seed at once (each seed's alpha gradient in its clip norm)."""
        group.weight_step(losses, also_clip=[(m.alpha,) for m in group.members], keep_also_clip_grads=True)

    def state_dict(self):
        state = super().state_dict()
        state["alpha_grad"] = None if self.alpha.grad is None else self.alpha.grad.detach().clone()
        return state

    def load_state_dict(self, state):
        super().load_state_dict(state)
        g = state.get("alpha_grad")
        self.alpha.grad = None if g is None else g.detach().clone().to(self.alpha.device)
