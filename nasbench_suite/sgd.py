"""The weight step's SGD, exact per (edge, op) row of the supernet's fused parameters.

The reference network (xautodl) gives every (edge, op) its own parameters; ours fuses the convolutions of all edges
leaving a node into one tensor (:class:`nasbench_suite.supernet.NodeOps`). Plain SGD on the fused tensor would apply
weight decay and momentum to the rows of ops that the reference's SGD skips, and vice versa. What the reference's
SGD touches depends on whether a parameter's ``.grad`` is ``None``, which depends on PyTorch's ``zero_grad``:

* ``zero`` (PyTorch 1.x, under which the published NB201 and E2NAS numbers were produced): ``zero_grad()``
  zero-fills, so a parameter that has had a gradient once (from any backward, the arch step's included) keeps
  receiving weight decay and momentum on every later step, used or not; one that never had one is skipped.
* ``none`` (PyTorch >= 2.0, ``zero_grad()`` sets ``None``): only the parameters in this step's graph are updated.
  In the reference every op computed in a forward is in the graph (a ``none`` edge is a ``Zero`` op that keeps its
  input in the graph), so "in the graph" = "computed by a forward whose loss was backpropagated".

The supernet keeps, per :class:`NodeOps`, which (op, edge) units the reference would hold a non-``None`` gradient
for (``grad_units``, marked by a hook on the logits of every forward when a backward passes through them, and part of
the supernet's state dict, so checkpoints carry it). :func:`masked_sgd_step` is ``torch.optim.SGD.step`` (same
state layout, same arithmetic) restricted to those rows.
"""

from __future__ import annotations

import torch


def masked_sgd_step(
    optimizer: torch.optim.Optimizer, row_masks: dict[torch.Tensor, torch.Tensor], skip: set[torch.Tensor]
) -> None:
    """One step of ``optimizer`` (a ``torch.optim.SGD``, dampening 0) as the reference's per-op SGD takes it.

    ``row_masks``: parameter -> bool mask over its first dimension (the rows whose reference parameter has a
    gradient), or over its first two for a stacked parameter (seed, row: :class:`nasbench_suite.stacked.StackedSupernet`); ``skip``: parameters none of whose rows has one (:meth:`Supernet.sgd_row_masks`). Every other
    parameter has one in the reference: the stem, the ResNet blocks, the final BN and the classifier are in the graph
    of every forward, even where our forward cuts them off (a cell whose output node has only ``none`` inputs: the
    reference's ``Zero`` multiplies by 0 and keeps the graph), so a missing gradient counts as zeros, and SGD still
    applies weight decay and momentum, as the reference's does. Masked rows get exactly SGD's update; the other rows
    keep their value and their momentum buffer bit for bit.
    """
    with torch.no_grad():
        for group in optimizer.param_groups:
            lr, wd, momentum = group["lr"], group["weight_decay"], group["momentum"]
            nesterov = group.get("nesterov", False)
            if group.get("dampening", 0) != 0 or group.get("maximize", False):
                raise ValueError("masked_sgd_step supports dampening=0, maximize=False only")
            for p in group["params"]:
                if p in skip:
                    continue
                state = optimizer.state[p]
                mask = row_masks.get(p)
                grad = p.grad if p.grad is not None else torch.zeros_like(p)
                # a mask covers the leading dimension(s): rows (1-D), or (seed, row) of a stacked parameter
                m = None if mask is None else mask.view(*mask.shape, *([1] * (p.dim() - mask.dim()))).to(p.dtype)
                d_p = grad.add(p, alpha=wd) if wd != 0 else grad
                if momentum != 0:
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        # SGD clones the first gradient; a row not yet active starts from zero, which is the same
                        # value it gets when it first becomes active (0 * momentum + d_p == d_p exactly)
                        buf = state["momentum_buffer"] = (d_p if m is None else d_p * m).clone().detach()
                    elif m is None:
                        buf.mul_(momentum).add_(d_p)
                    else:
                        # inactive rows: buf * 1 + 0, bit for bit unchanged
                        buf.mul_(torch.where(m.bool(), momentum, 1.0).to(p.dtype)).add_(d_p * m)
                    d_p = d_p.add(buf, alpha=momentum) if nesterov else buf
                p.add_(d_p if m is None else d_p * m, alpha=-lr)
