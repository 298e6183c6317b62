"""Every baseline against its reference step (xautodl networks + the NB201 scripts' step logic, the classes of
``nasbench_suite_baselines.reference`` that ``nas-suite time-steps`` times, found as the timing finds them) over
22 consecutive steps that cross two epoch boundaries (the LR and GDAS's tau change there; ENAS trains its
controller there), under both SGD semantics (``zero``: PyTorch 1.x ``zero_grad``, ``none``: PyTorch >= 2.0).

Both sides start from the same weights and arch parameters (``load_reference_state_dict``) and see the same
batches, the same Gumbel noise / controller samples (torch's global RNG seeded per step) and the same sampled
cells; after every step the losses, every supernet tensor (BN running statistics included), the arch parameters
and ENAS's controller are compared at 1e-5. Both sides run in float64 with oneDNN off, so the comparison does not
depend on the CPU's float32 kernels. A small clip (0.5) keeps gradient clipping active. The scripted cells of SETN
and RSPS include cells whose node 1 or node 2 reaches the output only through ``none`` edges: the reference keeps
those ops in its graph (``Zero``), which is what the per-(edge, op) SGD must reproduce. After the steps, SETN's,
RSPS's and ENAS's candidate scores (and SETN's candidate list and all three's derived cells) are compared too.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nasbench_suite.config import Protocol
from nasbench_suite.method import OneShotMethod, get_method, make_context
from nasbench_suite.space import Cell
from nasbench_suite.supernet import Supernet, SupernetConfig, load_reference_state_dict
from nasbench_suite.timing import reference_class

pytestmark = pytest.mark.reference

C, N, HW, BSZ, CLIP = 4, 1, 8, 6, 0.5
STEPS_PER_EPOCH, STEPS, EPOCHS = 10, 22, 3
TOL = dict(atol=1e-5, rtol=1e-5)
LOSS_TOL = dict(abs=1e-5, rel=1e-5)
DTYPE = torch.float64
SEMANTICS = ("zero", "none")
# cells whose node 1 (edges 2<-1, 3<-1 `none`) or node 2 (edge 3<-2 `none`) reaches the output only through `none`
BEHIND_NONE = [
    Cell.parse("|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"),
    Cell.parse("|nor_conv_1x1~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|skip_connect~1|none~2|"),
    Cell.parse("|nor_conv_1x1~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|"),
]


@pytest.fixture(autouse=True)
def _exact_cpu_kernels():
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")  # torch's, about Intel GPUs
        with torch.backends.mkldnn.flags(enabled=False):
            yield


def _batch(g, bsz):
    return (torch.randn(bsz, 3, HW, HW, generator=g, dtype=DTYPE), torch.randint(0, 10, (bsz,), generator=g))


def _steps(seed=0):
    """22 (train, valid) batch pairs; each epoch's last batch is smaller (no drop_last), the valid batch too."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(STEPS):
        bsz = BSZ - 2 if (i + 1) % STEPS_PER_EPOCH == 0 else BSZ
        out.append((_batch(g, bsz), _batch(g, bsz)))
    return out


def _selection(seed, n=100):
    g = torch.Generator().manual_seed(10_000 + seed)
    return [_batch(g, BSZ) for _ in range(n)]


def _scripted_cells(seed=0):
    rng = np.random.default_rng(seed)
    cells = [Cell(tuple(int(o) for o in rng.integers(0, 5, 6))) for _ in range(STEPS)]
    for i, c in zip((0, 3, 11), BEHIND_NONE):
        cells[i] = c
    return cells


class Pair:
    """The method's reference step (its network and optimisers) and our method on a copy of its weights, arch
    parameters and controller, in float64."""

    def __init__(self, method, semantics, hparams=None, track=True, grad_clip=CLIP, seed=0, **proto):
        self.semantics, self.set_to_none = semantics, semantics == "none"
        self.p = p = Protocol(
            C=C,
            N=N,
            epochs=EPOCHS,
            grad_clip=grad_clip,
            sgd_semantics=semantics,
            track_running_stats=track,
            select_candidates=100,
            **proto,
        )
        cls = get_method(method)
        hparams = hparams if hparams is not None else cls.Hparams()
        pytest.importorskip("xautodl", reason="xautodl is the test-only reference (pip install --no-deps xautodl)")
        torch.manual_seed(seed)
        self.R = reference_class(method)(p, hparams, dtype=DTYPE, seed=seed)
        self.ref, self.w_opt, self.a_opt = self.R.net, self.R.w_optimizer, self.R.a_optimizer
        ours = Supernet(SupernetConfig(C=C, N=N, num_classes=10, track_running_stats=track)).to(DTYPE)
        load_reference_state_dict(ours, self.ref.state_dict())
        self.selection: dict[tuple[int, int], list] = {}
        self.m = m = cls(hparams)
        ctx = make_context(
            ours,
            p,
            seed=seed,
            steps_per_epoch=STEPS_PER_EPOCH,
            selection_batches=lambda epoch, augment=None, salt=0: iter(self.selection[(epoch, salt)]),
        )
        m.setup(ctx)
        if self.a_opt is not None:
            m.alpha = torch.nn.Parameter(self.ref.arch_parameters.detach().clone())
            m.a_optimizer = ctx.arch_adam([m.alpha])
        if hasattr(self.R, "controller"):
            self.controller = self.R.controller
            m.controller.load_state_dict(self.controller.state_dict())
            m.controller.to(DTYPE)
            h = m.hparams
            adam = dict(lr=h.controller_lr, betas=tuple(h.controller_betas), eps=h.controller_eps)
            m.c_optimizer = torch.optim.Adam(m.controller.parameters(), **adam)

    def set_lr(self, epoch):
        for opt in (self.w_opt, self.m.ctx.w_optimizer):
            for group in opt.param_groups:
                group["lr"] = self.p.lr_at(epoch)

    def assert_same(self, where=""):
        """Every supernet tensor (through the name mapping), the arch parameters and the controller."""
        ours = self.m.ctx.supernet
        mapped = Supernet(ours.config).to(DTYPE)
        load_reference_state_dict(mapped, self.ref.state_dict())
        for (name, a), b in zip(ours.state_dict().items(), mapped.state_dict().values()):
            if isinstance(a, torch.Tensor) and a.is_floating_point():
                torch.testing.assert_close(a, b, **TOL, msg=lambda s, name=name: f"{where} {name}: {s}")
        if self.a_opt is not None:
            torch.testing.assert_close(self.m.alpha.detach(), self.ref.arch_parameters.detach(), **TOL)
        if hasattr(self, "controller"):
            for (name, a), b in zip(self.m.controller.state_dict().items(), self.controller.state_dict().values()):
                torch.testing.assert_close(a, b, **TOL, msg=lambda s, name=name: f"{where} controller {name}: {s}")


def _run(pair: Pair, ref_step=None, end_epoch=None):
    """22 steps over 3 epochs: per step the reference's and our losses and then all state must agree. The reference
    step is the reference class's own (``ref_step``: a variant of it), its epoch schedule too."""
    m = pair.m
    for i, batch in enumerate(_steps()):
        epoch = i // STEPS_PER_EPOCH
        if i % STEPS_PER_EPOCH == 0:
            pair.set_lr(epoch)
            pair.R.begin_epoch(epoch)
            m.begin_epoch(epoch)
        torch.manual_seed(100 + i)
        ref_out = ref_step(*batch) if ref_step else pair.R.step(*batch)
        torch.manual_seed(100 + i)
        out = m.search_step(*batch, epoch, i % STEPS_PER_EPOCH)
        assert set(ref_out) <= set(out), f"step {i}"
        for key, value in ref_out.items():
            assert out[key] == pytest.approx(value, **LOSS_TOL), f"step {i} {key}"
        if (i + 1) % STEPS_PER_EPOCH == 0 and end_epoch is not None:
            end_epoch(epoch)
        pair.assert_same(f"step {i}:")


def _assert_selection_matches(pair: Pair, epoch: int, n: int, monkeypatch) -> list[Cell]:
    """Our derive(epoch) scores its candidates as the reference scores them on the same selection batches (one
    batch each, eval mode) and picks the reference's best; returns the candidates."""
    pair.selection[(epoch, 0)] = _selection(epoch, n=n)
    cell, candidates, scores = _capture_scores(pair, epoch, monkeypatch)
    ref_scores = pair.R.score_cells(candidates, iter(pair.selection[(epoch, 0)]))
    assert len(candidates) == n and scores == pytest.approx(ref_scores, abs=1e-4)
    assert cell == candidates[int(np.argmax(ref_scores))]
    return candidates


def _capture_scores(pair: Pair, epoch: int, monkeypatch):
    """Our derive(epoch) with its candidates and their scores captured."""
    seen = {}
    original = OneShotMethod.score_cells

    def spy(self, cells, batches):
        scores = original(self, cells, batches)
        seen.update(cells=list(cells), scores=scores)
        return scores

    monkeypatch.setattr(OneShotMethod, "score_cells", spy)
    cell = pair.m.derive(epoch)
    monkeypatch.undo()
    return cell, seen["cells"], seen["scores"]


# --- DARTS-V1, GDAS: weight step then arch step ------------------------------------------------------------------
@pytest.mark.parametrize("semantics", SEMANTICS)
def test_darts_v1_matches_reference_over_epochs(semantics):
    _run(Pair("darts-v1", semantics))


@pytest.mark.parametrize("semantics", SEMANTICS)
def test_gdas_matches_reference_over_epochs(semantics):
    """Tau goes 10 -> 5.05 -> 0.1 at the epoch boundaries on both sides; the noise is the same per step."""
    pair = Pair("gdas", semantics)
    _run(pair)
    assert pair.m.tau == pytest.approx(0.1) and pair.ref.tau == pytest.approx(0.1)
    assert pair.m.derive(EPOCHS - 1).arch_str == pair.ref.genotype().tostr()


# --- DARTS-V2 ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("semantics", [SEMANTICS[0], pytest.param(SEMANTICS[1], marks=pytest.mark.slow)])
def test_darts_v2_matches_reference_over_epochs(semantics):
    """The unrolled arch step first (momentum buffers in the virtual step from step 2 on), then the weight step.
    DARTS computes every op in every step, so both semantics update every row; ``none`` only runs with the slow set."""
    _run(Pair("darts-v2", semantics))


def test_darts_v2_nats_order_matches_search_cell():
    """NATS-Bench's search-cell.py: network.zero_grad(), the weight step without clipping, network.zero_grad(),
    then the unrolled arch step (which sees the updated weights); BN without running statistics."""
    hp = get_method("darts-v2").Hparams(weight_step_first=True)
    _run(Pair("darts-v2", "zero", hparams=hp, track=False, grad_clip=0.0))


def test_darts_v2_unrolled_gradient_is_second_order():
    """The implicit (Hessian) term is present: the unrolled gradient differs from the first-order one."""
    pair = Pair("darts-v2", "zero")
    m = pair.m
    batch = _steps()[0]
    grad, _, _ = m.unrolled_arch_grad(*batch)
    (xv, yv) = batch[1]
    first = torch.autograd.grad(
        F.cross_entropy(m.ctx.supernet.forward_mixture(xv, torch.softmax(m.alpha, -1)), yv), [m.alpha]
    )[0]
    assert not torch.allclose(grad, first, atol=1e-7, rtol=1e-3)


# --- SETN, RSPS: scripted cells, then candidate selection ---------------------------------------------------------
def _scripted_pair(method: str, semantics: str, seed: int) -> Pair:
    """A pair whose method and reference train the same scripted cells."""
    pair = Pair(method, semantics)
    ours, theirs = iter(_scripted_cells(seed)), iter(_scripted_cells(seed))
    pair.m.sample_weight_cells = lambda: next(ours)
    pair.R.sample_cell = lambda: next(theirs)
    return pair


@pytest.mark.parametrize("semantics", SEMANTICS)
def test_setn_matches_reference_over_epochs_and_selects_the_same_cell(semantics, monkeypatch):
    pair = _scripted_pair("setn", semantics, 1)
    _run(pair)

    candidates = _assert_selection_matches(pair, EPOCHS - 1, 100, monkeypatch)
    assert [c.arch_str for c in candidates] == [s.tostr() for s in pair.ref.return_topK(100)]


@pytest.mark.parametrize("semantics", SEMANTICS)
def test_rsps_matches_reference_over_epochs_and_selects_the_same_cell(semantics, monkeypatch):
    pair = _scripted_pair("rsps", semantics, 2)
    _run(pair)

    _assert_selection_matches(pair, EPOCHS - 1, 100, monkeypatch)


# --- ENAS: shared steps, controller phase at each epoch's end, selection ------------------------------------------
@pytest.mark.parametrize("semantics", SEMANTICS)
def test_enas_matches_reference_over_epochs(semantics, monkeypatch):
    hp = get_method("enas").Hparams(controller_steps=2, controller_aggregate=2, epoch_samples=20)
    pair = Pair("enas", semantics, hparams=hp)

    def end_epoch(epoch):
        batches = _selection(100 + epoch, n=4)
        pair.selection[(epoch, 1)] = batches
        torch.manual_seed(7 + epoch)
        ref_baseline = pair.R.train_controller(batches)
        torch.manual_seed(7 + epoch)
        pair.m.end_epoch(epoch)
        assert pair.m.baseline == pytest.approx(ref_baseline, abs=1e-6)

    _run(pair, end_epoch=end_epoch)
    assert pair.m.baseline is not None

    # not the last epoch: epoch_samples (20) candidates
    _assert_selection_matches(pair, 1, 20, monkeypatch)


def test_enas_nats_carries_the_mean_baseline():
    """NATS-Bench's search-cell.py carries BaselineMeter.avg (the epoch's mean b) to the next epoch."""
    hp = get_method("enas").Hparams(controller_steps=2, controller_aggregate=2, carry_baseline="mean")
    pair = Pair("enas", "zero", hparams=hp)
    for epoch in (0, 1):  # epoch 0 starts without a baseline; epoch 1 carries epoch 0's mean
        batches = _selection(200 + epoch, n=4)
        pair.selection[(epoch, 1)] = batches
        torch.manual_seed(3 + epoch)
        ref_b = pair.R.train_controller(batches)
        torch.manual_seed(3 + epoch)
        pair.m.end_epoch(epoch)
        assert pair.m.baseline == pytest.approx(ref_b, abs=1e-6)
        pair.assert_same(f"epoch {epoch}:")


# --- pieces shared with the reference ----------------------------------------------------------------------------
def test_gdas_tau_schedule_matches_script():
    pair = Pair("gdas", "zero")
    pair.m.ctx.epochs = 250
    taus = []
    for epoch in (0, 1, 249):
        pair.m.begin_epoch(epoch)
        taus.append(pair.m.tau)
    assert taus == pytest.approx([10.0, 10 - 9.9 / 249, 0.1])


def test_setn_candidates_match_return_topk():
    from nasbench_suite_baselines.setn import top_cells_by_log_prob

    pair = Pair("setn", "zero")
    with torch.no_grad():
        pair.ref.arch_parameters.copy_(torch.randn(6, 5, dtype=DTYPE))
        pair.m.alpha.copy_(pair.ref.arch_parameters)
    expected = [s.tostr() for s in pair.ref.return_topK(25)]
    assert [c.arch_str for c in top_cells_by_log_prob(pair.m.alpha, 25)] == expected


def _controllers(seed=0):
    from xautodl.models.cell_searchs.search_model_enas_utils import Controller as RefController

    from nasbench_suite_baselines.enas import Controller

    torch.manual_seed(seed)
    ref = RefController(6, 5)
    torch.manual_seed(seed)
    ours = Controller(6, 5)
    return ref, ours


def test_enas_controller_initialisation_matches_reference():
    pytest.importorskip("xautodl", reason="xautodl is the test-only reference (pip install --no-deps xautodl)")
    ref, ours = _controllers()
    assert list(ref.state_dict()) == list(ours.state_dict())
    for a, b in zip(ref.state_dict().values(), ours.state_dict().values()):
        assert torch.equal(a, b)


def test_enas_controller_samples_log_probs_entropy_match_reference():
    pytest.importorskip("xautodl", reason="xautodl is the test-only reference (pip install --no-deps xautodl)")
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
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
