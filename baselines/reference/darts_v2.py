"""DARTS-V2.py (second order) on ``TinyNetworkDarts``: ``backward_step_unrolled`` (a virtual SGD step, the valid loss
at the virtual weights, a finite-difference Hessian-vector product) and an Adam step on alpha, then the weight step
(whose zero_grad leaves alpha's gradient). ``weight_step_first``: NATS-Bench's search-cell.py order instead
(network.zero_grad(), the weight step with the protocol's clip (0 there: none), network.zero_grad(), then the
unrolled arch step, which sees the updated weights)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from .base import ReferenceStep, logits


def _cat(xs) -> torch.Tensor:
    return torch.cat([x.reshape(-1) for x in xs])


class DartsV2Reference(ReferenceStep):
    network = "darts"

    def step(self, train_batch, valid_batch):
        net = self.net
        if self.hparams is not None and self.hparams.weight_step_first:
            net.zero_grad(set_to_none=self.set_to_none)
            loss = self.clipped_weight_step(*train_batch, zero_grad=False)
            net.zero_grad(set_to_none=self.set_to_none)
        else:
            self.a_optimizer.zero_grad(set_to_none=self.set_to_none)
        grad, arch_loss = self.unrolled_grad(train_batch, valid_batch)
        net.arch_parameters.grad = grad.clone()
        self.a_optimizer.step()
        if not (self.hparams is not None and self.hparams.weight_step_first):
            loss = self.clipped_weight_step(*train_batch)
        return {"train_loss": loss, "valid_loss": arch_loss}

    def unrolled_grad(self, train_batch, valid_batch) -> tuple[torch.Tensor, float]:
        """DARTS-V2.py's backward_step_unrolled + _hessian_vector_product (without the DataParallel ``.module``);
        returns (alpha's gradient, the unrolled valid loss)."""
        (x, y), (xv, yv) = train_batch, valid_batch
        ref, w_opt = self.net, self.w_optimizer
        r = 1e-2 if self.hparams is None else self.hparams.unrolled_r
        loss = F.cross_entropy(logits(ref, x), y)
        group = w_opt.param_groups[0]
        lr, wd, momentum = group["lr"], group["weight_decay"], group["momentum"]
        with torch.no_grad():
            theta = _cat(ref.get_weights())
            try:
                moment = _cat(w_opt.state[v]["momentum_buffer"] for v in ref.get_weights()).mul_(momentum)
            except KeyError:
                moment = torch.zeros_like(theta)
            dtheta = _cat(torch.autograd.grad(loss, ref.get_weights())) + wd * theta
            params = theta.sub(moment + dtheta, alpha=lr)
        unrolled = copy.deepcopy(ref)
        model_dict = unrolled.state_dict()
        offset = 0
        for k, v in ref.named_parameters():
            if "arch_parameters" in k:
                continue
            model_dict[k] = params[offset : offset + v.numel()].view(v.size())
            offset += v.numel()
        unrolled.load_state_dict(model_dict)
        unrolled.zero_grad()
        unrolled_loss = F.cross_entropy(logits(unrolled, xv), yv)
        unrolled_loss.backward()
        dalpha = unrolled.arch_parameters.grad
        vector = [v.grad.data for v in unrolled.get_weights()]
        R = (r / _cat(vector).norm()).item()
        for p, v in zip(ref.get_weights(), vector):
            p.data.add_(v, alpha=R)
        grads_p = torch.autograd.grad(F.cross_entropy(logits(ref, x), y), [ref.arch_parameters])
        for p, v in zip(ref.get_weights(), vector):
            p.data.sub_(v, alpha=2 * R)
        grads_n = torch.autograd.grad(F.cross_entropy(logits(ref, x), y), [ref.arch_parameters])
        for p, v in zip(ref.get_weights(), vector):
            p.data.add_(v, alpha=R)
        implicit = (grads_p[0] - grads_n[0]).div_(2 * R)
        return dalpha.data.sub(implicit, alpha=lr), unrolled_loss.item()
