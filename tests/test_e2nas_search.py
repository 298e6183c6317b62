"""E2NAS search (methods/e2nas/search.py and its parts): complementation, gamma schedules, the novelty term, the
gradient paths of [ours] and of the official switches, labels and grids. Tiny supernet and an untrained tiny VAE:
the mechanics do not need the committed weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nasbench_suite.config import Protocol, RunSpec, load_preset, resolve
from nasbench_suite.errors import ConfigError
from nasbench_suite.method import SearchContext, get_method, make_context
from nasbench_suite.space import NUM_EDGES, NUM_OPS, Cell
from nasbench_suite.supernet import Supernet, SupernetConfig
from nasbench_suite_methods.e2nas.complement import complementary_cell, weight_terms
from nasbench_suite_methods.e2nas.novelty import ArchiveNovelty, fit_gennorm, gennorm_logpdf_mean
from nasbench_suite_methods.e2nas.schedules import gamma_at, parse_gamma
from nasbench_suite_methods.e2nas.search import E2NAS, OFFICIAL_SWITCHES
from nasbench_suite_methods.e2nas.vae import GraphVAE, VAEConfig


# -- fixtures -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_vae() -> GraphVAE:
    torch.manual_seed(123)
    return GraphVAE(VAEConfig(hidden=8, nz=30)).eval()


@pytest.fixture
def trained_vae() -> GraphVAE:
    """The committed autoencoder. Gradient-path tests need a decoder that decodes z to a cell through which signal
    flows: an untrained one may decode the all-`none` cell, whose loss (correctly) has no arch gradient at all."""
    from nasbench_suite_methods.e2nas.vae import load_default_vae

    return load_default_vae()[0].eval()


#: the sha256 recorded for a handed-in autoencoder (any string: nothing checks it)
SHA = "0" * 64


def make_ctx(seed: int = 0, epochs: int = 4) -> SearchContext:
    torch.manual_seed(seed)
    net = Supernet(SupernetConfig(C=4, N=1, num_classes=10))
    return make_context(
        net,
        Protocol(),
        seed=seed,
        steps_per_epoch=3,
        epochs=epochs,
        w_optimizer=torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9),
    )


def make_method(vae: GraphVAE, **hp) -> E2NAS:
    m = E2NAS(E2NAS.Hparams(**hp), vae=(vae, SHA))
    m.setup(make_ctx())
    m.begin_epoch(0)
    return m


def batch(seed: int, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 16, 16, generator=g), torch.randint(0, 10, (n,), generator=g)


# -- complementation --------------------------------------------------------------------------------------------
def test_complementary_cell_changes_exactly_the_unchanged_edges():
    rng = np.random.default_rng(0)
    seen_ops = set()
    for _ in range(300):
        a_prev = tuple(int(o) for o in rng.integers(0, NUM_OPS, NUM_EDGES))
        # a_t agrees with a_prev on a random subset of edges
        a_t = tuple(p if rng.random() < 0.5 else int((p + rng.integers(1, NUM_OPS)) % NUM_OPS) for p in a_prev)
        a_bar = complementary_cell(a_prev, a_t, rng)
        for e in range(NUM_EDGES):
            if a_prev[e] == a_t[e]:
                assert a_bar[e] != a_prev[e]
                seen_ops.add((a_prev[e], a_bar[e]))
            else:
                assert a_bar[e] == a_t[e]
    # every op other than a_prev[e] is reachable (uniform over the 4 others)
    assert {b for p, b in seen_ops if p == 0} == {1, 2, 3, 4}
    assert {b for p, b in seen_ops if p == 4} == {0, 1, 2, 3}


def test_complementary_cell_draws_a_fixed_amount_from_the_generator():
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    complementary_cell((0,) * 6, (0,) * 6, r1)  # all edges agree
    complementary_cell((0,) * 6, (1,) * 6, r2)  # none agree
    assert r1.integers(1 << 30) == r2.integers(1 << 30)


def test_weight_terms_merge_equal_cells_and_keep_the_total_weight():
    a, b, c = (0,) * 6, (1,) * 6, (2,) * 6
    assert weight_terms(a, b, c, 0.5) == [(a, 0.5), (b, 0.25), (c, 0.25)]
    assert dict(weight_terms(a, a, c, 0.5)) == {a: 0.75, c: 0.25}  # first step: a_prev = a_t
    assert weight_terms(a, b, c, 0.0) == [(a, 1.0)]
    for eps in (0.25, 0.75):
        assert math.isclose(sum(w for _, w in weight_terms(a, b, a, eps)), 1.0)


# -- gamma schedules --------------------------------------------------------------------------------------------
def test_sigmoid_schedule_values():
    assert round(gamma_at("sig:10", 0, 250), 5) == 0.99995
    assert gamma_at("sig:10", 125, 250) == pytest.approx(0.5, abs=1e-12)
    assert gamma_at("sig:10", 249, 250) < 1e-4
    g = [gamma_at("sig:5", k, 100) for k in range(100)]
    assert all(x > y for x, y in zip(g, g[1:]))  # explore first, then exploit


def test_static_schedule_and_parse_errors():
    assert [gamma_at("static:0.1", k, 250) for k in (0, 100, 249)] == [0.1, 0.1, 0.1]
    assert str(parse_gamma("SIG:20")) == "sig:20"
    for bad in ("linear:1", "static", "static:1.5", "sig:0", "sig:x"):
        with pytest.raises(ValueError):
            parse_gamma(bad)


# -- novelty ----------------------------------------------------------------------------------------------------
def test_fit_recovers_gaussian_and_laplace_shapes():
    torch.manual_seed(0)
    gauss = 2.0 + 0.5 * torch.randn(20000, 2, dtype=torch.float64)
    lap = torch.distributions.Laplace(torch.tensor(-1.0), torch.tensor(3.0)).sample((20000, 2)).double()
    fg, fl = fit_gennorm(gauss), fit_gennorm(lap)
    assert torch.allclose(fg.shape, torch.full((2,), 2.0, dtype=torch.float64), atol=0.1)
    assert torch.allclose(fg.loc, torch.full((2,), 2.0, dtype=torch.float64), atol=0.02)
    # a Gaussian's generalized-normal scale is sqrt(2) sigma
    assert torch.allclose(fg.scale, torch.full((2,), 0.5 * math.sqrt(2), dtype=torch.float64), rtol=0.03)
    assert torch.allclose(fl.shape, torch.full((2,), 1.0, dtype=torch.float64), atol=0.08)
    assert torch.allclose(fl.scale, torch.full((2,), 3.0, dtype=torch.float64), rtol=0.05)


def test_logpdf_matches_the_generalized_normal_density():
    fit = fit_gennorm(torch.randn(50, 3, dtype=torch.float64))
    z = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    b, loc, s = fit
    ref = (b / (2 * s * torch.exp(torch.lgamma(1 / b))) * torch.exp(-(((z - loc).abs() / s) ** b))).log().mean()
    assert torch.allclose(gennorm_logpdf_mean(z, fit), ref)


def test_novelty_is_larger_inside_the_archive_cloud_and_has_a_gradient():
    torch.manual_seed(0)
    table = torch.randn(200, 5)  # stand-in encoder means: cell i -> table[i]
    nov = ArchiveNovelty(lambda i: table[i], nz=5, size=50)
    z = torch.zeros(5, requires_grad=True)
    for i in range(49):
        nov.append(i)
        assert float(nov(z)) == 0.0  # not full yet
    nov.append(49)
    inside = table[:50].mean(0).requires_grad_()
    far = (table[:50].mean(0) + 10.0).requires_grad_()
    n_in, n_far = nov(inside), nov(far)
    assert n_in.item() > n_far.item() + 5.0
    (g,) = torch.autograd.grad(n_far, far)
    assert g.abs().sum() > 0 and torch.isfinite(g).all()
    # minimising N moves z further out: the gradient points back towards the cloud
    assert float((g * (far.detach() - table[:50].mean(0))).sum()) < 0
    # constant-novelty (official) variant: same value, no gradient
    z2 = far.detach().clone().requires_grad_()
    n_const = nov(z2, grad=False)
    assert n_const.item() == pytest.approx(n_far.item()) and not n_const.requires_grad
    # FIFO: the 51st cell replaces the oldest
    nov.append(60)
    assert nov.archived()[0] == 1 and nov.archived()[-1] == 60 and len(nov.archived()) == 50


def test_novelty_of_a_collapsed_archive_stays_finite():
    nov = ArchiveNovelty(lambda i: torch.ones(4), nz=4, size=3, min_scale=0.1)
    for _ in range(3):
        nov.append(7)
    z = torch.full((4,), 1.5, requires_grad=True)
    val = nov(z)
    val.backward()
    assert torch.isfinite(val) and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


# -- the method: gradient paths ----------------------------------------------------------------------------------
def test_ours_arch_step_moves_z_through_the_validation_loss_and_the_decoder(trained_vae):
    m = make_method(trained_vae, gamma="static:0")
    head = next(m.vae.type_head.parameters())
    head.requires_grad_(True)  # only to observe the path; the method freezes the autoencoder
    cells, P = m.propose()
    a_t = cells["weight"]
    assert set(cells.values()) == {a_t}  # argmax decode: every role is the same cell
    assert a_t != (0,) * NUM_EDGES  # a cell through which the loss depends on the weights
    assert P.requires_grad and P.shape == (NUM_EDGES, NUM_OPS)
    # the straight-through probabilities are the decoder's, at the epoch's temperature
    logits = m.vae.decode_logits(m.z.detach()[None])[0]
    assert m.st_tau == 10.0 and torch.allclose(P, torch.softmax(logits / m.st_tau, -1), atol=1e-6)
    assert a_t == m.derive(0).ops
    # the path runs through the decoder (its type head would receive gradient), not around it
    H = F.one_hot(torch.tensor(a_t), NUM_OPS).float() - P.detach() + P
    loss = F.cross_entropy(m.ctx.supernet.forward_hard(batch(1)[0], H, a_t), batch(1)[1])
    gz, gh = torch.autograd.grad(loss, [m.z, head], allow_unused=True)
    assert gz.abs().sum() > 0 and gh is not None and gh.abs().sum() > 0
    head.requires_grad_(False)
    # ... and through the whole step: gamma = 0, so only L_val acts, and z moves
    m2 = make_method(trained_vae, gamma="static:0")
    z0 = m2.z.detach().clone()
    out = m2.search_step(batch(2), batch(3), 0, 0)
    assert m2.z.grad.abs().sum() > 0 and not torch.equal(z0, m2.z.detach())
    assert out["arch_loss"] == pytest.approx(out["valid_loss"]) and out["novelty"] == 0.0


def test_st_temperature_keeps_the_latent_gradient_alive_at_cells(trained_vae):
    """At a cell's encoding the decoder is saturated (max probability ~0.996+): at temperature 1 dL/dz is tiny; the
    annealed temperature (10 in the first epoch) keeps it at the size it has between cells."""
    m = make_method(trained_vae, gamma="static:0")
    norms = {}
    for tau in (1.0, 10.0):
        m.st_tau = tau
        _, P = m.propose()
        g = torch.randn(NUM_EDGES, NUM_OPS, generator=torch.Generator().manual_seed(0))
        (gz,) = torch.autograd.grad((g * P).sum(), [m.z])
        norms[tau] = float(gz.norm())
    assert norms[10.0] > 5 * norms[1.0]
    # the schedule: linear from st_tau_max to st_tau_min over the epochs
    m.begin_epoch(0)
    first = m.st_tau
    m.begin_epoch(m.ctx.epochs - 1)
    assert (first, m.st_tau) == (10.0, 1.0)


def test_z_starts_at_a_different_cell_per_seed(trained_vae):
    from nasbench_suite_methods.e2nas.search import E2NAS

    starts, z0s = [], []
    for seed in range(5):
        m = E2NAS(E2NAS.Hparams(), vae=(trained_vae, SHA))
        m.setup(make_ctx(seed=seed))
        starts.append(m.start_cell)
        z0s.append(m.z.detach().clone())
        # z0 is the encoder mean of the start cell, which decodes back to it (gate (i))
        assert m.derive(0).ops == m.start_cell
        assert torch.equal(m.z.detach(), m._encode_one(Cell(m.start_cell).index))
        assert m.run_info()["start_cell"] == Cell(m.start_cell).arch_str
    assert len(set(starts)) == 5
    # the same seed gives the same start
    again = E2NAS(E2NAS.Hparams(), vae=(trained_vae, SHA))
    again.setup(make_ctx(seed=3))
    assert torch.equal(again.z.detach(), z0s[3])
    # official: z0 = 1e-3 N(0, I)
    off = E2NAS(E2NAS.Hparams(official_z_init=True), vae=(trained_vae, SHA))
    off.setup(make_ctx(seed=0))
    assert float(off.z.detach().abs().max()) < 0.01


def test_z_optimiser_has_no_decay_and_its_own_lr_unless_official(tiny_vae):
    m = make_method(tiny_vae)
    group = m.a_optimizer.param_groups[0]
    assert group["weight_decay"] == 0.0 and group["lr"] == m.hparams.z_lr
    off = make_method(tiny_vae, official_z_adam=True)
    group = off.a_optimizer.param_groups[0]
    p = off.ctx.protocol
    assert group["weight_decay"] == p.arch_weight_decay and group["lr"] == p.arch_lr


def test_novelty_and_validation_gradients_stay_balanced(trained_vae):
    """gamma = 0.5 with a full archive: the weighted norms of the two gradient terms stay within a factor of 10 of
    each other at every step (the spec's raw formula does not: its novelty gradient is orders larger)."""
    torch.manual_seed(0)

    def ratios(**hp):
        m = make_method(trained_vae, gamma="static:0.5", archive_size=3, **hp)
        out = []
        for s in range(12):
            logs = m.search_step(batch(30 + s), batch(60 + s), 0, s)
            if s >= 2:  # the archive is full from the third step on
                assert logs["novelty"] != 0.0 and logs["grad_val"] > 0 and logs["grad_nov"] > 0
                out.append(logs["grad_ratio"])
        return out

    balanced = ratios()
    assert all(0.1 <= r <= 10 for r in balanced), balanced
    raw = ratios(balance_novelty=False)
    assert max(raw) > 10, raw  # why the balance is needed


def test_setup_freezes_the_vae(tiny_vae):
    m = make_method(tiny_vae)
    assert not m.vae.training and not any(p.requires_grad for p in m.vae.parameters())
    assert m.arch_parameters() == [m.z] and m.z.shape == (30,)


def _weight_grads(m: E2NAS, x, y, cells) -> list[torch.Tensor]:
    net = m.ctx.supernet
    net.zero_grad(set_to_none=True)
    loss, _, _ = m.weight_loss(x, y, *cells)
    loss.backward()
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in net.parameters()]


def _current_only_grads(m: E2NAS, x, y, a_t, scale) -> list[torch.Tensor]:
    net = m.ctx.supernet
    net.zero_grad(set_to_none=True)
    (scale * F.cross_entropy(net.forward_cell(x, Cell(a_t)), y)).backward()
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in net.parameters()]


def test_official_nograd_complement_gives_exactly_the_official_gradient(tiny_vae):
    """The authors' `loss = base + ((1-eps) base.item() + eps/2 (pre + comp)) - base.detach()`: the value of the
    three-term formula, the gradient of CE(a_t) with coefficient 1 (not 1 - eps)."""
    x, y = batch(4)
    a_t, a_prev = (3, 2, 3, 1, 3, 4), (3, 2, 1, 1, 0, 4)
    a_bar = complementary_cell(a_prev, a_t, np.random.default_rng(0))
    assert len({a_t, a_prev, a_bar}) == 3
    eps = 0.5
    off = make_method(tiny_vae, eps=eps, official_nograd_complement=True)
    g_off = _weight_grads(off, x, y, (a_t, a_prev, a_bar))
    g_cur = _current_only_grads(off, x, y, a_t, 1.0)
    assert all(torch.equal(a, b) for a, b in zip(g_off, g_cur))
    net = off.ctx.supernet
    with torch.no_grad():
        ce = {c: F.cross_entropy(net.forward_cell(x, Cell(c)), y) for c in (a_t, a_prev, a_bar)}
        value, _, passes = off.weight_loss(x, y, a_t, a_prev, a_bar)
    assert passes == 3
    assert float(value) == pytest.approx(float((1 - eps) * ce[a_t] + eps / 2 * (ce[a_prev] + ce[a_bar])), rel=1e-6)
    # [ours]: the complement terms do reach the weights ...
    ours = make_method(tiny_vae, eps=eps)
    ours.ctx.supernet.load_state_dict(off.ctx.supernet.state_dict())
    g_ours = _weight_grads(ours, x, y, (a_t, a_prev, a_bar))
    assert not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(g_ours, g_cur))
    # ... and equal the three-term formula
    net = ours.ctx.supernet
    net.zero_grad(set_to_none=True)
    ce = lambda c: F.cross_entropy(net.forward_cell(x, Cell(c)), y)  # noqa: E731
    ((1 - eps) * ce(a_t) + eps / 2 * (ce(a_prev) + ce(a_bar))).backward()
    g_ref = [p.grad if p.grad is not None else torch.zeros_like(p) for p in net.parameters()]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(g_ours, g_ref))


def test_eps_zero_is_the_plain_update(tiny_vae):
    m = make_method(tiny_vae, eps=0.0)
    x, y = batch(5)
    a_t = (3, 3, 3, 3, 3, 3)
    loss, _, passes = m.weight_loss(x, y, a_t, (1,) * 6, (2,) * 6)
    assert passes == 1
    assert torch.allclose(loss, F.cross_entropy(m.ctx.supernet.forward_cell(x, Cell(a_t)), y))


def test_official_softmax_st_gradient_goes_through_softmax_z_not_the_decoder(trained_vae):
    m = make_method(trained_vae, official_softmax_st=True, gamma="static:0")
    with torch.no_grad():
        m.z.copy_(torch.randn(30))
    cells, P = m.propose()
    a_t = cells["arch"]
    assert a_t != (0,) * NUM_EDGES
    assert torch.allclose(P, torch.softmax(m.z.detach(), 0).view(6, 5))
    xv, yv = batch(6)
    m.arch_grad(xv, yv, a_t, P)
    assert m.z.grad.abs().sum() > 0
    # the same gradient from a hand-built softmax straight-through forward
    z = m.z.detach().clone().requires_grad_()
    Pz = torch.softmax(z, 0).view(6, 5)
    H = F.one_hot(torch.tensor(a_t), 5).float() - Pz.detach() + Pz
    F.cross_entropy(m.ctx.supernet.forward_hard(xv, H, a_t), yv).backward()
    assert torch.allclose(z.grad, m.z.grad, atol=1e-7)


def test_softmax_st_needs_nz_30():
    vae = GraphVAE(VAEConfig(hidden=8, nz=8))
    with pytest.raises(ConfigError, match="nz = 30"):
        make_method(vae, official_softmax_st=True)


def test_official_decode_draws_independently_per_role(tiny_vae):
    from nasbench_suite_methods.e2nas.search import ROLES

    m = make_method(tiny_vae, official_stochastic_decode=True)
    with torch.no_grad():
        m.z.copy_(torch.randn(30, generator=torch.Generator().manual_seed(1)))
    # one fresh single draw per role: exactly the rows of one batched sampling walk of len(ROLES) draws
    torch.manual_seed(3)
    cells, P = m.propose()
    torch.manual_seed(3)
    rows = m.vae.decode(m.z.detach().expand(len(ROLES), -1), stochastic=True)
    assert [cells[r] for r in ROLES] == [tuple(r) for r in rows.tolist()]
    for c in cells.values():  # six op ids of the NB201 space
        assert len(c) == 6 and all(0 <= o < 5 for o in c) and Cell.parse(Cell(c).arch_str) == Cell(c)
    # P along the arch cell's sampled path (teacher-forced walk), rows are probabilities
    teacher = torch.tensor([cells["arch"]])
    logits = m.vae.decode_logits(m.z.detach()[None], teacher_ops=teacher)[0]
    assert torch.allclose(P, torch.softmax(logits / m.st_tau, -1), atol=1e-6)
    # independent draws: at a z whose decode is uncertain, roles disagree; pairwise agreement is that of
    # independent draws (about sum_c p_c^2), not 1
    agree = {pair: 0 for pair in zip(ROLES, ROLES[1:])}
    for _ in range(100):
        cells, _ = m.propose()
        for a, b in agree:
            agree[(a, b)] += cells[a] == cells[b]
    assert all(v < 90 for v in agree.values()), agree
    # the epoch's reported cell is one more independent draw, from derive's own generator (repeatable, and it
    # consumes nothing from the search's random streams)
    assert m.derive(2) == m.derive(2)
    state = torch.get_rng_state()
    m.derive(3)
    assert torch.equal(state, torch.get_rng_state())


def test_official_step_uses_each_role_where_the_authors_code_does(tiny_vae, monkeypatch):
    """Weight step trains the 'weight' draw; the complement is built against the 'complement' draw; the first a_prev
    is the 'complement' draw (their `if step == 0: pre_index = cur_index`); the archive gets the 'archive' draw;
    the arch step uses the 'arch' draw; the next a_prev is the 'next_prev' draw."""
    from nasbench_suite_methods.e2nas import search as S

    m = make_method(tiny_vae, official_stochastic_decode=True, archive_size=2)
    roles = {
        "weight": (3,) * 6,
        "complement": (2,) * 6,
        "next_prev": (1,) * 6,
        "archive": (4,) * 6,
        "arch": (3, 2, 3, 2, 3, 2),
    }
    seen = {}
    monkeypatch.setattr(m, "_sampled_cells", lambda n, g: [roles[r] for r in S.ROLES])
    real_wl, real_ag = m.weight_loss, m.arch_grad

    def wl(x, y, a_t, a_prev, a_bar):
        seen["w"] = (a_t, a_prev, a_bar)
        return real_wl(x, y, a_t, a_prev, a_bar)

    def ag(xv, yv, a_arch, P, archive_cell=None):
        seen["a"] = (a_arch, archive_cell)
        return real_ag(xv, yv, a_arch, P, archive_cell)

    monkeypatch.setattr(m, "weight_loss", wl)
    monkeypatch.setattr(m, "arch_grad", ag)
    m.search_step(batch(1), batch(2), 0, 0)
    a_t, a_prev, a_bar = seen["w"]
    assert a_t == roles["weight"] and a_prev == roles["complement"]
    assert all(b != p for b, p in zip(a_bar, roles["complement"]))  # a_prev == reference: every edge changed
    assert seen["a"] == (roles["arch"], roles["archive"])
    assert m.novelty.archived() == [Cell(roles["archive"]).index]
    assert m.a_prev == roles["next_prev"]
    m.search_step(batch(3), batch(4), 0, 1)
    assert seen["w"][1] == roles["next_prev"]


def test_reset_prev_and_full_step_state_roundtrip(tiny_vae):
    m = make_method(tiny_vae, archive_size=2, official_reset_prev=True)
    for s in range(3):
        m.search_step(batch(10 + s), batch(20 + s), 0, s)
    assert m.a_prev is not None and m.novelty.full
    state = m.state_dict()
    m.begin_epoch(1)
    assert m.a_prev is None
    fresh = make_method(tiny_vae, archive_size=2)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.z, m.z) and fresh.a_prev == tuple(state["a_prev"])
    assert fresh.novelty.archived() == m.novelty.archived()
    assert torch.equal(fresh.novelty.fit().loc, m.novelty.fit().loc)


# -- labels, grids, config --------------------------------------------------------------------------------------
def test_variant_labels():
    label = lambda **hp: E2NAS(E2NAS.Hparams(**hp)).variant()  # noqa: E731
    assert label() == "E2NAS"
    assert label(official=True) == "E2NAS (official code)"
    assert label(**{k: True for k in OFFICIAL_SWITCHES}) == "E2NAS (official code)"
    assert label(official_nograd_novelty=True) == "E2NAS (no-grad novelty)"
    two = label(official_softmax_st=True, official_reset_prev=True)
    assert two.startswith("E2NAS (") and "softmax" in two and "reset" in two and two != "E2NAS (official code)"
    # the shortcut wins over individual switches
    assert label(official=True, official_softmax_st=False) == "E2NAS (official code)"


def test_grids_have_the_right_points():
    g = E2NAS.grids
    assert [p["gamma"] for p in g["gamma"]] == [
        "static:0",
        "static:0.1",
        "static:0.5",
        "static:0.9",
        "sig:1",
        "sig:5",
        "sig:10",
        "sig:20",
    ]
    assert [float(p["eps"]) for p in g["eps"]] == [0, 0.25, 0.5, 0.75]
    assert g["official"] == [{"official": "false"}, {"official": "true"}]
    for points in g.values():  # every point resolves to valid hparams
        for point in points:
            resolve(RunSpec("e2nas", 0, "quick", tuple(point.items())), E2NAS.Hparams, "e2nas")


def test_registry_presets_and_bad_settings():
    assert get_method("e2nas") is E2NAS
    cfg = resolve(RunSpec("e2nas", 0, "nb201"), E2NAS.Hparams, "e2nas")
    assert cfg.protocol.epochs == 250 and cfg.hparams.eps == 0.5 and cfg.hparams.gamma == "sig:10"
    assert load_preset("nb201")["methods"]["e2nas"]["epochs"] == 250
    for bad in (("gamma", "cosine:3"), ("eps", "1.5"), ("archive_size", "1")):
        with pytest.raises(ConfigError):
            resolve(RunSpec("e2nas", 0, "quick", (bad,)), E2NAS.Hparams, "e2nas")


# -- CLI ----------------------------------------------------------------------------------------------------------
def test_cli_train_vae_exit_status_follows_the_gates(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from nasbench_suite_methods.e2nas import train_vae as tv
    from nasbench_suite_methods.e2nas.cli import e2nas

    calls = []
    report = {
        "sha256": "ab" * 32,
        "out": str(tmp_path / "v.pt"),
        "gate_i_pass": True,
        "gate_i_argmax_recon": 1.0,
        "gate_i_failures": 0,
        "gate_ii_pass": True,
        "gate_ii_distinct_mu": 15625,
        "gate_ii_min_pairwise_l2": 0.1,
        "gate_iii_pass": True,
        "gate_iii_stochastic_recon": 0.995,
        "all_pass": True,
    }

    def fake(seed, hidden, epochs, batch_size, lr, out, log):
        calls.append((seed, hidden, epochs, batch_size, lr, out))
        return dict(report)

    monkeypatch.setattr(tv, "train_vae", fake)
    out = tmp_path / "v.pt"
    args = ["train-vae", "--seed", "3", "--hidden", "32", "--epochs", "2", "--batch-size", "8", "--lr", "0.01"]
    r = CliRunner().invoke(e2nas, [*args, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert calls == [(3, 32, 2, 8, 0.01, out)] and "PASS" in r.output and "FAIL" not in r.output
    r = CliRunner().invoke(e2nas, ["train-vae", "--out", str(out)])
    assert calls[-1] == (0, tv.DEFAULT_HIDDEN, tv.DEFAULT_EPOCHS, tv.DEFAULT_BATCH, tv.DEFAULT_LR, out)
    report.update(gate_iii_pass=False, gate_iii_stochastic_recon=0.9, all_pass=False)
    r = CliRunner().invoke(e2nas, ["train-vae", "--out", str(out)])
    assert r.exit_code == 1 and "FAIL  (iii)" in r.output


def test_cli_time_step_prints_the_costs_as_json(monkeypatch):
    import json

    from click.testing import CliRunner

    from nasbench_suite_methods.e2nas.cli import e2nas

    args = ["time-step", "--C", "4", "--N", "1", "--batch", "4", "--hw", "8", "--steps", "1", "--warmup", "0"]
    r = CliRunner().invoke(e2nas, args)
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["C"] == 4 and out["steps"] == 1 and out["e2nas_step_ms"] > 0 and out["gdas_step_ms"] > 0
    assert CliRunner().invoke(e2nas, [*args[:-4], "--steps", "0"]).exit_code != 0


def test_cli_gates_on_missing_weights_is_a_user_error(tmp_path):
    from click.testing import CliRunner

    from nasbench_suite_methods.e2nas.cli import e2nas

    r = CliRunner().invoke(e2nas, ["gates", "--weights", str(tmp_path / "none.pt")])
    assert r.exit_code != 0 and isinstance(r.exception, ConfigError)
