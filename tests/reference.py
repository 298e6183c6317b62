"""Helpers to build the xautodl reference networks and to take the reference scripts' steps (test-only).

The step functions re-state, on an xautodl network, what the search scripts of D-X-Y/AutoDL-Projects (commit
f46486e, not part of the xautodl package) do per step: ``exps/NAS-Bench-201-algos/{DARTS-V1,DARTS-V2,GDAS,SETN,
RANDOM-NAS,ENAS}.py``. ``set_to_none`` is what every ``zero_grad()`` of the script does: False = PyTorch 1.x (the
``zero`` SGD semantics), True = PyTorch >= 2.0 (``none``).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from nasbench_suite.space import OPS


def xautodl_net(kind: str, C: int = 16, N: int = 5, num_classes: int = 10, affine=False, track=True):
    """An xautodl NB201 search network: kind in {'darts', 'gdas', 'setn', 'random', 'enas'}."""
    pytest.importorskip("xautodl", reason="xautodl is the test-only reference (pip install --no-deps xautodl)")
    from xautodl.models.cell_searchs import search_model_darts, search_model_gdas, search_model_setn

    if kind == "darts":
        return search_model_darts.TinyNetworkDarts(C, N, 4, num_classes, list(OPS), affine, track)
    if kind == "gdas":
        return search_model_gdas.TinyNetworkGDAS(C, N, 4, num_classes, list(OPS), affine, track)
    if kind == "setn":
        return search_model_setn.TinyNetworkSETN(C, N, 4, num_classes, list(OPS), affine, track)
    if kind == "random":
        from xautodl.models.cell_searchs import search_model_random

        return search_model_random.TinyNetworkRANDOM(C, N, 4, num_classes, list(OPS), affine, track)
    if kind == "enas":
        from xautodl.models.cell_searchs import search_model_enas

        return search_model_enas.TinyNetworkENAS(C, N, 4, num_classes, list(OPS), affine, track)
    raise ValueError(kind)


def structure(cell):
    """xautodl's ``Structure`` of one of our cells."""
    from xautodl.models.cell_searchs.genotypes import Structure

    return Structure.str2structure(cell.arch_str)


def logits(ref, x):
    return ref(x)[1]


def clipped_weight_step(ref, w_opt, x, y, clip, set_to_none) -> float:
    """The scripts' weight step: zero_grad, backward, clip over ``network.parameters()`` (arch parameters
    included), SGD step; returns the loss."""
    w_opt.zero_grad(set_to_none=set_to_none)
    loss = F.cross_entropy(logits(ref, x), y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(ref.parameters(), clip)
    w_opt.step()
    return loss.item()


def weight_then_arch_step(ref, w_opt, a_opt, batch, clip, set_to_none):
    """DARTS-V1.py / GDAS.py: a weight step, then an arch step whose full backward also fills the weights'
    gradients."""
    (x, y), (xv, yv) = batch
    loss = clipped_weight_step(ref, w_opt, x, y, clip, set_to_none)
    a_opt.zero_grad(set_to_none=set_to_none)
    arch_loss = F.cross_entropy(logits(ref, xv), yv)
    arch_loss.backward()
    a_opt.step()
    return loss, arch_loss.item()


def _cat(xs):
    return torch.cat([x.reshape(-1) for x in xs])


def unrolled_grad(ref, w_opt, batch, r=1e-2):
    """DARTS-V2.py's backward_step_unrolled + _hessian_vector_product; returns (alpha gradient, unrolled loss)."""
    (x, y), (xv, yv) = batch
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


def darts_v2_step(ref, w_opt, a_opt, batch, clip, set_to_none):
    """DARTS-V2.py: the unrolled arch step first, then the weight step (whose zero_grad leaves alpha's gradient)."""
    (x, y), _ = batch
    a_opt.zero_grad(set_to_none=set_to_none)
    grad, arch_loss = unrolled_grad(ref, w_opt, batch)
    ref.arch_parameters.grad = grad.clone()
    a_opt.step()
    return clipped_weight_step(ref, w_opt, x, y, clip, set_to_none), arch_loss


def setn_step(ref, w_opt, a_opt, batch, cell, set_to_none):
    """SETN.py: the weight step on a "dynamic" cell without clipping, then the arch step in "joint" mode."""
    (x, y), (xv, yv) = batch
    ref.set_cal_mode("dynamic", structure(cell))
    ref.zero_grad(set_to_none=set_to_none)
    loss = F.cross_entropy(logits(ref, x), y)
    loss.backward()
    w_opt.step()
    ref.set_cal_mode("joint")
    ref.zero_grad(set_to_none=set_to_none)
    arch_loss = F.cross_entropy(logits(ref, xv), yv)
    arch_loss.backward()
    a_opt.step()
    return loss.item(), arch_loss.item()


def random_nas_step(ref, w_opt, batch, cell, clip, set_to_none):
    """RANDOM-NAS.py: one random cell for the whole network, a clipped weight step."""
    (x, y), _ = batch
    ref.arch_cache = structure(cell)
    return clipped_weight_step(ref, w_opt, x, y, clip, set_to_none)


def enas_shared_step(ref, controller, w_opt, batch, clip, set_to_none):
    """ENAS.py's train_shared: a controller sample (eval mode, no gradient), a clipped weight step."""
    (x, y), _ = batch
    controller.eval()
    with torch.no_grad():
        _, _, arch = controller()
    ref.update_arch(arch)
    return clipped_weight_step(ref, w_opt, x, y, clip, set_to_none)


def enas_train_controller(
    ref,
    controller,
    c_opt,
    batches,
    baseline,
    steps,
    aggregate,
    set_to_none,
    entropy_weight=1e-4,
    decay=0.99,
    carry="last",
):
    """ENAS.py's train_controller (``carry="mean"``: NATS-Bench's search-cell.py carries BaselineMeter.avg)."""
    ref.eval()
    controller.train()
    controller.zero_grad(set_to_none=set_to_none)
    it = iter(batches)
    b_values = []
    for step in range(steps * aggregate):
        x, y = next(it)
        log_prob, entropy, arch = controller()
        with torch.no_grad():
            ref.update_arch(arch)
            acc = (logits(ref, x).argmax(1) == y).float().sum().mul_(100.0 / len(y)).view(-1) / 100  # obtain_accuracy
        reward = acc + entropy_weight * entropy
        b = acc if baseline is None else baseline - (1 - decay) * (baseline - reward)
        (-1 * log_prob * (reward - b) / aggregate).backward(retain_graph=True)
        b_values.append(b.item())
        if (step + 1) % aggregate == 0:
            torch.nn.utils.clip_grad_norm_(controller.parameters(), 5.0)
            c_opt.step()
            controller.zero_grad(set_to_none=set_to_none)
    ref.train()
    return b_values[-1] if carry == "last" else sum(b_values) / len(b_values)


@torch.no_grad()
def score_cells(ref, cells, batches, set_cell):
    """get_best_arch / search_find_best: each candidate's top-1 (%) on the next batch, network in eval mode."""
    ref.eval()
    scores = []
    for cell, (x, y) in zip(cells, batches):
        set_cell(cell)
        scores.append((logits(ref, x).argmax(1) == y).double().mean().item() * 100)
    ref.train()
    return scores
