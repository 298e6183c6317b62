"""E2NAS graph autoencoder: graph encoding, model API, and the three gates on the committed weights."""

from __future__ import annotations

import hashlib

import pytest
import torch

from nasbench_suite.space import NUM_CELLS, Cell, all_ops_array
from nasbench_suite_methods.e2nas import graph
from nasbench_suite_methods.e2nas.graph import ADD, END, START, cell_to_types, types_to_ops
from nasbench_suite_methods.e2nas.train_vae import all_types, evaluate_gates, fit_vae, min_pairwise_distance
from nasbench_suite_methods.e2nas.vae import (
    DEFAULT_WEIGHTS,
    GraphVAE,
    VAEConfig,
    load_default_vae,
    load_vae,
    missing_weights_message,
    save_vae,
)

from .conftest import skip_unless_ci

OPT = "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|"


# -- graph encoding -----------------------------------------------------------------------------------------
def test_graph_matches_spec_table_vertex_by_vertex():
    cell = Cell.parse(OPT)  # ops (3, 2, 3, 1, 3, 4): all different from their neighbours in the table
    types = cell_to_types([cell])
    assert types.shape == (1, 12) and types.dtype == torch.long
    # (type, inputs) per vertex, copied from the spec table (e2nas.md section 1)
    table = [
        (START, ()),
        (ADD, (0,)),
        (3, (1,)),  # e0 = op(1<-0)
        (ADD, (2,)),
        (2, (1,)),  # e1 = op(2<-0)
        (3, (3,)),  # e2 = op(2<-1)
        (ADD, (4, 5)),
        (1, (1,)),  # e3 = op(3<-0)
        (3, (3,)),  # e4 = op(3<-1)
        (4, (6,)),  # e5 = op(3<-2)
        (ADD, (7, 8, 9)),
        (END, (10,)),
    ]
    for v, (t, inputs) in enumerate(table):
        assert int(types[0, v]) == t, f"vertex {v}"
        assert graph.PREDECESSORS[v] == inputs, f"vertex {v}"
    assert (START, ADD, END, graph.NUM_TYPES) == (5, 6, 7, 8)
    assert graph.OP_VERTICES == (2, 4, 5, 7, 8, 9)
    assert graph.REVERSE_ORDER == tuple(range(11, -1, -1))
    for v, succ in enumerate(graph.SUCCESSORS):
        assert all(v in graph.PREDECESSORS[s] for s in succ)
    assert tuple(types_to_ops(types)[0].tolist()) == cell.ops


def test_cell_to_types_accepts_arrays_and_rejects_bad_ops():
    arr = all_ops_array()
    t = cell_to_types(arr)
    assert t.shape == (NUM_CELLS, 12)
    assert torch.equal(types_to_ops(t), torch.as_tensor(arr))
    assert torch.equal(cell_to_types(Cell.parse(OPT)), cell_to_types([list(Cell.parse(OPT).ops)]))
    with pytest.raises(ValueError):
        cell_to_types([[0, 0, 0, 0, 0, 5]])


# -- model API ----------------------------------------------------------------------------------------------
def test_decode_logits_shape_and_gradient_wrt_z():
    model = GraphVAE(VAEConfig(hidden=16))
    z = torch.randn(3, 30, requires_grad=True)
    logits = model.decode_logits(z)
    assert logits.shape == (3, 6, 5)
    probs = torch.softmax(logits, dim=-1)
    # The search's straight-through weight uses P along the decoded path; its gradient must reach z.
    (probs * torch.randn_like(probs)).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    teacher = torch.tensor([[0, 1, 2, 3, 4, 0]] * 3)
    assert model.decode_logits(z, teacher_ops=teacher).shape == (3, 6, 5)


def test_type_head_is_masked_to_ops():
    model = GraphVAE(VAEConfig(hidden=16))
    with torch.no_grad():  # push the raw head towards START/ADD/END so the mask must do the work
        model.type_head[-1].bias[5:] = 100.0
    z = torch.randn(64, 30)
    full = model.type_logits(z)
    assert torch.isinf(full[..., 5:]).all() and (full[..., 5:] < 0).all()
    assert torch.isfinite(full[..., :5]).all()
    assert (model.type_logits(z, masked=False)[..., 5:] > 50).all()
    gen = torch.Generator().manual_seed(0)
    for stochastic in (False, True):
        ops = model.decode(z, stochastic=stochastic, generator=gen)
        assert ops.shape == (64, 6) and ops.dtype == torch.long
        assert int(ops.min()) >= 0 and int(ops.max()) <= 4


def test_loss_decreases_on_a_small_batch():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = GraphVAE(VAEConfig(hidden=32))
    types = all_types()[torch.randperm(NUM_CELLS, generator=torch.Generator().manual_seed(1))[:32]]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    first = None
    for _ in range(25):
        total, nll, kl = model.loss(types, generator=gen)
        assert torch.isfinite(total) and kl >= 0 and nll > 0
        first = total.item() if first is None else first
        opt.zero_grad()
        total.backward()
        opt.step()
    assert model.loss(types, generator=gen)[0].item() < 0.85 * first


def test_training_is_reproducible_with_the_same_seed():
    types = all_types()[::125]  # 125 cells, one short epoch
    a, ha = fit_vae(types, VAEConfig(hidden=16), epochs=1, seed=3)
    b, hb = fit_vae(types, VAEConfig(hidden=16), epochs=1, seed=3)
    c, _ = fit_vae(types, VAEConfig(hidden=16), epochs=1, seed=4)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    assert ha[0]["loss"] == hb[0]["loss"]
    assert not all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values()))


def test_save_load_roundtrip_and_hash(tmp_path):
    model = GraphVAE(VAEConfig(hidden=16))
    sha = save_vae(model, tmp_path / "x.pt", half=False)
    again = save_vae(model, tmp_path / "other_name.pt", half=False)
    assert sha == again  # the hash depends on content only, not on the file name
    loaded, sha2 = load_vae(tmp_path / "x.pt")
    assert sha2 == sha and loaded.config == model.config
    for va, vb in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(va, vb)


def test_min_pairwise_distance_in_chunks():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [3.0, 4.5], [10.0, 0.0]])
    assert min_pairwise_distance(x, chunk=3) == pytest.approx(0.5)


# -- the gates on the committed weights ---------------------------------------------------------------------
def _require_weights() -> None:
    """Skip when the weights file is absent (fail under CI=true, as ``conftest.require_shared`` does)."""
    if not DEFAULT_WEIGHTS.exists():
        skip_unless_ci(missing_weights_message(DEFAULT_WEIGHTS))


@pytest.fixture(scope="module")
def committed():
    _require_weights()
    model, sha = load_default_vae()
    assert sha == hashlib.sha256(DEFAULT_WEIGHTS.read_bytes()).hexdigest()
    types = all_types()
    with torch.no_grad():
        mu, logvar = model.encode(types)  # all 15,625 cells in one batch
    return model, types, mu, logvar


def test_committed_file_is_compact():
    _require_weights()
    assert DEFAULT_WEIGHTS.stat().st_size < 1_000_000
    model, _ = load_default_vae()
    assert model.config.nz == 30 and model.config.beta == 0.005


def test_gate_i_argmax_reconstruction_is_exact(committed):
    model, types, mu, _ = committed
    recon = model.decode(mu)
    wrong = (recon != types_to_ops(types)).any(dim=1)
    assert int(wrong.sum()) == 0, f"{int(wrong.sum())} cells are not reconstructed"


def test_gate_ii_latent_means_are_distinct(committed):
    _, _, mu, _ = committed
    assert torch.unique(mu, dim=0).shape[0] == NUM_CELLS
    assert min_pairwise_distance(mu) > 0


@pytest.mark.slow
def test_gate_iii_stochastic_reconstruction(committed):
    model, types, _, _ = committed
    report = evaluate_gates(model, types, seed=0)
    assert report["gate_iii_stochastic_recon"] >= 0.99
    assert report["all_pass"]
