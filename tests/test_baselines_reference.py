"""Each baseline's search step against the reference (xautodl networks + the NB201 scripts' step logic).

The reference step of each script (exps/NAS-Bench-201-algos/*.py in D-X-Y/AutoDL-Projects, which is not
part of the xautodl package) is re-stated minimally here on the xautodl network, in current torch API; our method
runs its own ``search_step`` on a :class:`Supernet` holding the same weights (``load_reference_state_dict``),
the same arch parameters, the same batches and the same optimiser settings. A small clip (0.5) makes gradient
clipping active, so the clip norm's ingredients are tested too.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nasbench_suite.config import Protocol
from nasbench_suite.method import SearchContext
from nasbench_suite.space import Cell
from nasbench_suite.supernet import Supernet, SupernetConfig, load_reference_state_dict

from .reference import xautodl_net

pytestmark = pytest.mark.reference


# one intra-op thread for every test: set in tests/conftest.py

C, N, CLIP = 8, 1, 0.5
LOSS_TOL = dict(abs=1e-5, rel=1e-5)
GRAD_TOL = dict(atol=1e-5, rtol=1e-4)
UNROLLED_TOL = dict(atol=1e-4, rtol=1e-4)


def _batches(seed=0, n=2, bsz=8):
    g = torch.Generator().manual_seed(seed)
    return [
        ((torch.randn(bsz, 3, 16, 16, generator=g), torch.randint(0, 10, (bsz,), generator=g)),
         (torch.randn(bsz, 3, 16, 16, generator=g), torch.randint(0, 10, (bsz,), generator=g)))
        for _ in range(n)
    ]  # fmt: skip


def _protocol(**kw) -> Protocol:
    return Protocol(C=C, N=N, epochs=kw.pop("epochs", 10), grad_clip=kw.pop("grad_clip", CLIP), **kw)


def _sgd(params, p: Protocol):
    return torch.optim.SGD(params, lr=p.lr, momentum=p.momentum, nesterov=p.nesterov, weight_decay=p.weight_decay)


def _adam(params, p: Protocol):
    return torch.optim.Adam(params, lr=p.arch_lr, betas=tuple(p.arch_betas), weight_decay=p.arch_weight_decay)


def _pair(kind: str, method_name: str, hparams=None, protocol: Protocol | None = None, seed=0, track=True):
    """(reference net, its w/a optimisers, our method set up on a copy of its weights and alphas)."""
    from nasbench_suite.method import get_method

    p = protocol or _protocol()
    torch.manual_seed(seed)
    ref = xautodl_net(kind, C=C, N=N, track=track)
    ours = Supernet(SupernetConfig(C=C, N=N, num_classes=10, track_running_stats=track))
    load_reference_state_dict(ours, ref.state_dict())
    cls = get_method(method_name)
    method = cls(hparams)
    ctx = SearchContext(
        supernet=ours, protocol=p, device=torch.device("cpu"), seed=seed, epochs=p.epochs, steps_per_epoch=1,
        rng=np.random.default_rng(seed), w_optimizer=_sgd(ours.parameters(), p),
        selection_batches=lambda epoch: iter(()),
    )  # fmt: skip
    method.setup(ctx)
    ref_opts = None
    if hasattr(ref, "arch_parameters") and isinstance(getattr(ref, "arch_parameters"), torch.nn.Parameter):
        with torch.no_grad():
            method.alpha.copy_(ref.arch_parameters)
        ref_opts = (_sgd(ref.get_weights(), p), _adam([ref.arch_parameters], p))
    return ref, ref_opts, method


def _logits(ref, x):
    return ref(x)[1]


def _assert_same_weights(ref, ours):
    """Every reference tensor equals ours after the step (through the name mapping)."""
    mapped = Supernet(ours.config)
    load_reference_state_dict(mapped, ref.state_dict())
    for (name, a), b in zip(ours.state_dict().items(), mapped.state_dict().values()):
        if a.is_floating_point():
            torch.testing.assert_close(a, b, **GRAD_TOL, msg=lambda m: f"{name}: {m}")


# --- DARTS-V1 ----------------------------------------------------------------------------------------------------
def _assert_step_matches(out, loss, arch_loss, ref, m):
    """Our step's losses, alpha gradient, alpha and weights equal the reference's after the same step."""
    assert out["train_loss"] == pytest.approx(loss, **LOSS_TOL)
    assert out["valid_loss"] == pytest.approx(arch_loss, **LOSS_TOL)
    torch.testing.assert_close(m.alpha.grad, ref.arch_parameters.grad, **GRAD_TOL)
    torch.testing.assert_close(m.alpha.detach(), ref.arch_parameters.detach(), **GRAD_TOL)
    _assert_same_weights(ref, m.ctx.supernet)


def _ref_weight_then_arch_step(ref, w_opt, a_opt, batch):
    """The DARTS-V1 / GDAS scripts' step: a weight step (clip over all parameters), then an arch step."""
    (x, y), (xv, yv) = batch
    w_opt.zero_grad()
    loss = F.cross_entropy(_logits(ref, x), y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(ref.parameters(), CLIP)
    w_opt.step()
    a_opt.zero_grad()
    arch_loss = F.cross_entropy(_logits(ref, xv), yv)
    arch_loss.backward()
    a_opt.step()
    return loss.item(), arch_loss.item()


def test_darts_v1_steps_match_reference():
    """Three steps: from the second on, the last arch gradient enters the weight step's clip norm (as in the
    reference), and momentum buffers are in use."""
    ref, (w_opt, a_opt), m = _pair("darts", "darts-v1")
    for i, batch in enumerate(_batches(n=3)):
        loss, arch_loss = _ref_weight_then_arch_step(ref, w_opt, a_opt, batch)
        out = m.search_step(*batch, 0, i)
        _assert_step_matches(out, loss, arch_loss, ref, m)


# --- DARTS-V2 ----------------------------------------------------------------------------------------------------
def _cat(xs):
    return torch.cat([x.reshape(-1) for x in xs])


def _ref_unrolled_grad(ref, w_opt, batch, r=1e-2):
    """The DARTS-V2 script's backward_step_unrolled + _hessian_vector_product on the reference network."""
    (x, y), (xv, yv) = batch
    loss = F.cross_entropy(_logits(ref, x), y)
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
    unrolled_loss = F.cross_entropy(_logits(unrolled, xv), yv)
    unrolled_loss.backward()
    dalpha = unrolled.arch_parameters.grad
    vector = [v.grad.data for v in unrolled.get_weights()]
    R = (r / _cat(vector).norm()).item()
    for p, v in zip(ref.get_weights(), vector):
        p.data.add_(v, alpha=R)
    grads_p = torch.autograd.grad(F.cross_entropy(_logits(ref, x), y), [ref.arch_parameters])
    for p, v in zip(ref.get_weights(), vector):
        p.data.sub_(v, alpha=2 * R)
    grads_n = torch.autograd.grad(F.cross_entropy(_logits(ref, x), y), [ref.arch_parameters])
    for p, v in zip(ref.get_weights(), vector):
        p.data.add_(v, alpha=R)
    implicit = (grads_p[0] - grads_n[0]).div_(2 * R)
    return dalpha.data.sub(implicit, alpha=lr), unrolled_loss.item()


def _ref_darts_v2_step(ref, w_opt, a_opt, batch):
    (x, y), _ = batch
    a_opt.zero_grad()
    grad, arch_loss = _ref_unrolled_grad(ref, w_opt, batch)
    ref.arch_parameters.grad = grad.clone()
    a_opt.step()
    w_opt.zero_grad()  # leaves alpha's unrolled gradient in place: the backward below adds to it
    loss = F.cross_entropy(_logits(ref, x), y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(ref.parameters(), CLIP)
    w_opt.step()
    return loss.item(), arch_loss, grad


def test_darts_v2_two_steps_match_reference():
    """Two steps: the second has momentum buffers in the virtual step and a stale arch gradient in the clip."""
    ref, (w_opt, a_opt), m = _pair("darts", "darts-v2")
    for batch in _batches(n=2):
        loss, arch_loss, ref_grad = _ref_darts_v2_step(ref, w_opt, a_opt, batch)
        snapshot = {}
        orig = m.a_optimizer.step

        def spy():  # the unrolled gradient as handed to Adam
            snapshot["grad"] = m.alpha.grad.clone()
            orig()

        m.a_optimizer.step = spy
        out = m.search_step(*batch, 0, 0)
        m.a_optimizer.step = orig
        assert out["train_loss"] == pytest.approx(loss, **LOSS_TOL)
        assert out["valid_loss"] == pytest.approx(arch_loss, **LOSS_TOL)
        torch.testing.assert_close(snapshot["grad"], ref_grad, **UNROLLED_TOL)
        torch.testing.assert_close(m.alpha.detach(), ref.arch_parameters.detach(), **UNROLLED_TOL)
        _assert_same_weights(ref, m.ctx.supernet)


def test_darts_v2_unrolled_gradient_is_second_order():
    """The implicit (Hessian) term is present: the unrolled gradient differs from the first-order one."""
    ref, (w_opt, _), m = _pair("darts", "darts-v2")
    (batch,) = _batches(n=1)
    grad, _, _ = m.unrolled_arch_grad(*batch)
    (xv, yv) = batch[1]
    first = torch.autograd.grad(
        F.cross_entropy(m.ctx.supernet.forward_mixture(xv, torch.softmax(m.alpha, -1)), yv), [m.alpha]
    )[0]
    assert not torch.allclose(grad, first, atol=1e-7, rtol=1e-3)


# --- GDAS --------------------------------------------------------------------------------------------------------
# the GDAS script's step has the same shape as DARTS-V1's (weight step, then arch step)
_ref_gdas_step = _ref_weight_then_arch_step


@pytest.mark.parametrize("tau", [10.0, 0.5])
def test_gdas_two_steps_match_reference(tau):
    ref, (w_opt, a_opt), m = _pair("gdas", "gdas")
    ref.set_tau(tau)
    m.tau = tau
    for i, batch in enumerate(_batches(n=2)):
        torch.manual_seed(100 + i)  # the same Gumbel noise for both
        loss, arch_loss = _ref_gdas_step(ref, w_opt, a_opt, batch)
        torch.manual_seed(100 + i)
        out = m.search_step(*batch, 0, i)
        _assert_step_matches(out, loss, arch_loss, ref, m)


def test_gdas_tau_schedule_matches_script():
    _, _, m = _pair("gdas", "gdas", protocol=_protocol(epochs=250))
    taus = []
    for epoch in (0, 1, 249):
        m.begin_epoch(epoch)
        taus.append(m.tau)
    assert taus == pytest.approx([10.0, 10 - 9.9 / 249, 0.1])


# --- SETN --------------------------------------------------------------------------------------------------------
def test_setn_step_matches_reference():
    from xautodl.models.cell_searchs.genotypes import Structure

    ref, (w_opt, a_opt), m = _pair("setn", "setn")
    cell = Cell.parse("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|")
    m.sample_weight_cells = lambda: cell
    (batch,) = _batches(n=1)
    (x, y), (xv, yv) = batch
    # the SETN script's step: weight step on a "dynamic" cell without clipping, arch step in "joint" mode
    ref.set_cal_mode("dynamic", Structure.str2structure(cell.arch_str))
    ref.zero_grad()
    loss = F.cross_entropy(_logits(ref, x), y)
    loss.backward()
    w_opt.step()
    ref.set_cal_mode("joint")
    ref.zero_grad()
    arch_loss = F.cross_entropy(_logits(ref, xv), yv)
    arch_loss.backward()
    a_opt.step()

    out = m.search_step(*batch, 0, 0)
    assert out["train_loss"] == pytest.approx(loss.item(), **LOSS_TOL)
    assert out["valid_loss"] == pytest.approx(arch_loss.item(), **LOSS_TOL)
    torch.testing.assert_close(m.alpha.grad, ref.arch_parameters.grad, **GRAD_TOL)
    torch.testing.assert_close(m.alpha.detach(), ref.arch_parameters.detach(), **GRAD_TOL)
    _assert_same_weights(ref, m.ctx.supernet)


def test_setn_candidates_match_return_topk():
    from baselines.setn import top_cells_by_log_prob

    ref, _, m = _pair("setn", "setn")
    with torch.no_grad():
        ref.arch_parameters.copy_(torch.randn(6, 5))
        m.alpha.copy_(ref.arch_parameters)
    expected = [s.tostr() for s in ref.return_topK(25)]
    assert [c.arch_str for c in top_cells_by_log_prob(m.alpha, 25)] == expected


# --- ENAS --------------------------------------------------------------------------------------------------------
def _controllers(seed=0):
    from xautodl.models.cell_searchs.search_model_enas_utils import Controller as RefController

    from baselines.enas import Controller

    torch.manual_seed(seed)
    ref = RefController(6, 5)
    torch.manual_seed(seed)
    ours = Controller(6, 5)
    return ref, ours


def test_enas_controller_initialisation_matches_reference():
    ref, ours = _controllers()
    assert list(ref.state_dict()) == list(ours.state_dict())
    for a, b in zip(ref.state_dict().values(), ours.state_dict().values()):
        assert torch.equal(a, b)


def test_enas_controller_samples_log_probs_entropy_match_reference():
    ref, ours = _controllers()
    with torch.no_grad():  # different weights than the init, copied into ours
        for p in ref.parameters():
            p.normal_(0, 0.5)
    ours.load_state_dict(ref.state_dict())
    for s in range(5):
        torch.manual_seed(s)
        lp_r, ent_r, arch_r = ref()
        torch.manual_seed(s)
        lp_o, ent_o, arch_o = ours()
        assert arch_o == arch_r
        torch.testing.assert_close(lp_o, lp_r, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(ent_o, ent_r, atol=1e-6, rtol=1e-6)
        lp_f, ent_f, arch_f = ours(actions=arch_r)  # scoring a given sample
        assert arch_f == arch_r
        torch.testing.assert_close(lp_f, lp_r, atol=1e-6, rtol=1e-6)
        g_r = torch.autograd.grad(lp_r - 0.3 * ent_r, list(ref.parameters()))
        g_o = torch.autograd.grad(lp_f - 0.3 * ent_f, list(ours.parameters()))
        for a, b in zip(g_o, g_r):
            torch.testing.assert_close(a, b, **GRAD_TOL)


@pytest.mark.parametrize("baseline", [None, 0.3])
def test_enas_controller_update_matches_train_controller(baseline):
    """Two aggregated samples and one controller step, as the ENAS script's train_controller."""
    from nasbench_suite.method import get_method

    hp = get_method("enas").Hparams(controller_steps=1, controller_aggregate=2)
    ref_net, _, m = _pair("enas", "enas", hparams=hp)
    ref_ctl = ref_net.create_controller()
    m.controller.load_state_dict(ref_ctl.state_dict())
    m.c_optimizer = torch.optim.Adam(m.controller.parameters(), lr=1e-3, betas=(0.0, 0.999), eps=1e-3)
    ref_opt = torch.optim.Adam(ref_ctl.parameters(), lr=1e-3, betas=(0.0, 0.999), eps=1e-3)
    m.baseline = baseline
    batches = [b[1] for b in _batches(n=2)]
    m.ctx.extra["valid_stream"] = iter(batches)

    torch.manual_seed(7)
    ref_net.eval()
    ref_ctl.zero_grad()
    last = None
    for x, y in batches:
        log_prob, entropy, arch = ref_ctl()
        with torch.no_grad():
            ref_net.update_arch(arch)
            acc = (_logits(ref_net, x).argmax(1) == y).float().sum().mul_(100.0 / len(y)) / 100
        reward = acc + 1e-4 * entropy
        b = acc if baseline is None else baseline - (1 - 0.99) * (baseline - reward)
        (-1 * log_prob * (reward - b) / 2).backward(retain_graph=True)
        last = b.item()
    torch.nn.utils.clip_grad_norm_(ref_ctl.parameters(), 5.0)
    ref_opt.step()

    torch.manual_seed(7)
    m.end_epoch(0)
    assert m.baseline == pytest.approx(last, abs=1e-7)
    for (name, a), b in zip(m.controller.state_dict().items(), ref_ctl.state_dict().values()):
        torch.testing.assert_close(a, b, **GRAD_TOL, msg=lambda s: f"{name}: {s}")


def test_enas_shared_step_matches_reference():
    ref_net, _, m = _pair("enas", "enas")
    ref_ctl = ref_net.create_controller()
    m.controller.load_state_dict(ref_ctl.state_dict())
    p = m.ctx.protocol
    w_opt = _sgd(ref_net.parameters(), p)
    (batch,) = _batches(n=1)
    x, y = batch[0]
    torch.manual_seed(3)
    with torch.no_grad():
        _, _, arch = ref_ctl()
    ref_net.update_arch(arch)
    w_opt.zero_grad()
    loss = F.cross_entropy(_logits(ref_net, x), y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(ref_net.parameters(), CLIP)
    w_opt.step()
    torch.manual_seed(3)
    out = m.search_step(*batch, 0, 0)
    assert out["train_loss"] == pytest.approx(loss.item(), **LOSS_TOL)
    _assert_same_weights(ref_net, m.ctx.supernet)
