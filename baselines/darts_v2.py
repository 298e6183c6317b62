"""DARTS-V2 (second-order DARTS, Liu et al. 2019) as NB201's DARTS-V2 script runs it.

Each step: FIRST the arch step with the unrolled gradient on a valid batch, THEN the weight step on the train batch
(same as DARTS-V1). The unrolled gradient, as the reference's ``backward_step_unrolled``:

1. one virtual SGD step of the weights on the train batch,
   ``w' = w - lr * (momentum * buf + dL_train/dw + wd * w)`` with the weight optimiser's lr, momentum, weight
   decay and momentum buffers (all buffers, or zeros when any is missing, e.g. at the first step). Like the
   reference this is plain heavy-ball momentum although the real optimiser is Nesterov;
2. ``dalpha = dL_valid(w', alpha)/dalpha`` and ``v = dL_valid(w', alpha)/dw'``;
3. the finite-difference Hessian-vector product ``(dL_train(w + R v)/dalpha - dL_train(w - R v)/dalpha) / 2R``
   with ``R = unrolled_r / ||v||``, computed by moving the real weights in place (``+R v``, ``-2R v``, ``+R v``,
   which, as in the reference, restores them only up to float rounding);
4. ``alpha.grad = dalpha - lr * hvp``, one Adam step.

NATS-Bench's search-cell.py takes the weight step FIRST and then the arch step (``weight_step_first=true``), so its
unrolled gradient sees the weights after this step's update.

Every forward runs the real network in train mode in the same order as the reference, so BN running statistics
(when the protocol records them) see the same batches; the unrolled network is a copy that is thrown away.
Final cell: argmax of alpha per edge.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nasbench_suite.config import setting
from nasbench_suite.method import ce_and_acc, register

from .alpha import AlphaMethod, KeepArchGradMixin


@register("darts-v2", aliases=("dartsv2", "darts-2nd"))
class DartsV2(KeepArchGradMixin, AlphaMethod):
    display_name = "DARTS-V2"
    reference = f"{__package__}.reference.darts_v2:DartsV2Reference"  # its NB201 script on xautodl (timing, tests)

    @dataclass(frozen=True)
    class Hparams:
        #: finite-difference step of the Hessian-vector product: R = unrolled_r / ||dL_valid/dw'||
        unrolled_r: float = setting(0.01, gt=0, le=1e6)
        #: NATS-Bench's order (weight step, then arch step); NB201's DARTS-V2.py: arch step first
        weight_step_first: bool = False

    def unrolled_arch_grad(self, train_batch, valid_batch) -> tuple[torch.Tensor, torch.Tensor, float]:
        """The reference's unrolled gradient of alpha; returns (grad, valid loss at w', valid accuracy)."""
        net, alpha, opt = self.ctx.supernet, self.alpha, self.ctx.w_optimizer
        group = opt.param_groups[0]
        lr, wd, momentum = group["lr"], group["weight_decay"], group["momentum"]
        weights = list(net.parameters())
        x, y = train_batch
        xv, yv = valid_batch

        # 1. the virtual step
        loss = F.cross_entropy(net.forward_mixture(x, torch.softmax(alpha, -1)), y)
        grads = torch.autograd.grad(loss, weights)
        bufs = [opt.state.get(p, {}).get("momentum_buffer") for p in weights]
        with torch.no_grad():
            if any(b is None for b in bufs):
                bufs = [torch.zeros_like(p) for p in weights]
            new_weights = [p - lr * (b * momentum + (g + wd * p)) for p, b, g in zip(weights, bufs, grads)]
        # a copy taken after that forward, so its BN buffers are the real ones' (as the reference's deepcopy)
        unrolled = copy.deepcopy(net)
        with torch.no_grad():
            for q, w in zip(unrolled.parameters(), new_weights):
                q.copy_(w)
                q.grad = None

        # 2. gradient at the unrolled weights
        u_weights = list(unrolled.parameters())
        u_logits = unrolled.forward_mixture(xv, torch.softmax(alpha, -1))
        u_loss, u_acc = ce_and_acc(u_logits, yv)
        dalpha, *vector = torch.autograd.grad(u_loss, [alpha, *u_weights], allow_unused=True)
        vector = [torch.zeros_like(p) if v is None else v for p, v in zip(weights, vector)]
        del unrolled, u_weights

        # 3. finite-difference Hessian-vector product on the real weights
        R = self.hparams.unrolled_r / torch.cat([v.reshape(-1) for v in vector]).norm()
        grads_pn = []
        for sign in (1.0, -2.0):
            with torch.no_grad():
                for p, v in zip(weights, vector):
                    p.add_(v * (sign * R))
            loss = F.cross_entropy(net.forward_mixture(x, torch.softmax(alpha, -1)), y)
            grads_pn.append(torch.autograd.grad(loss, [alpha])[0])
        with torch.no_grad():
            for p, v in zip(weights, vector):
                p.add_(v * R)
        hvp = (grads_pn[0] - grads_pn[1]).div_(2 * R)
        return dalpha - lr * hvp, u_loss.detach(), u_acc

    def search_step(self, train_batch, valid_batch, epoch, step):
        net = self.ctx.supernet
        x, y = train_batch
        if self.hparams.weight_step_first:
            loss, acc = ce_and_acc(net.forward_mixture(x, torch.softmax(self.alpha, -1)), y)
            self.weight_step_keep_arch_grad(loss)
        self.a_optimizer.zero_grad(set_to_none=True)
        grad, arch_loss, arch_acc = self.unrolled_arch_grad(train_batch, valid_batch)
        self.alpha.grad = grad
        self.a_optimizer.step()
        if not self.hparams.weight_step_first:
            loss, acc = ce_and_acc(net.forward_mixture(x, torch.softmax(self.alpha, -1)), y)
            self.weight_step_keep_arch_grad(loss)
        return {"train_loss": loss.item(), "train_acc": acc, "valid_loss": arch_loss.item(), "valid_acc": arch_acc}
