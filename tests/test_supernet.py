"""The supernet against the reference implementation (xautodl): size, logits and gradients in every mode."""

import pytest
import torch

from nasbench_suite.space import Cell
from nasbench_suite.supernet import Supernet, SupernetConfig, count_parameters, load_reference_state_dict
from nasbench_suite_baselines.reference import xautodl_network

pytestmark = pytest.mark.reference


def xautodl_net(kind: str, **kwargs):
    pytest.importorskip("xautodl", reason="xautodl is the test-only reference (pip install --no-deps xautodl)")
    return xautodl_network(kind, **kwargs)


def test_parameter_count_matches_protocol():
    net = Supernet(SupernetConfig(C=16, N=5, num_classes=10))
    assert count_parameters(net) + 30 == 1_692_856


def _pair(kind="darts", track=True, C=8, N=2, seed=0):
    torch.manual_seed(seed)
    ref = xautodl_net(kind, C=C, N=N, track=track)
    ours = Supernet(SupernetConfig(C=C, N=N, num_classes=10, track_running_stats=track))
    load_reference_state_dict(ours, ref.state_dict())
    assert count_parameters(ours) + 30 == count_parameters(ref)
    return ref, ours


def _grads(module):
    return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("track", [True, False])
def test_mixture_logits_and_grads_match_reference(track):
    ref, ours = _pair("darts", track=track)
    x = torch.randn(4, 3, 16, 16)
    ref_logits = ref(x)[1]
    alpha = ref.arch_parameters.detach().clone().requires_grad_(True)
    our_logits = ours.forward_mixture(x, torch.softmax(alpha, -1))
    torch.testing.assert_close(our_logits, ref_logits, atol=1e-5, rtol=1e-5)
    ref_logits.square().sum().backward()
    our_logits.square().sum().backward()
    torch.testing.assert_close(alpha.grad, ref.arch_parameters.grad, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ours.classifier.weight.grad, ref.classifier.weight.grad, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ours.stem[0].weight.grad, ref.stem[0].weight.grad, atol=1e-5, rtol=1e-4)
    if track:  # running statistics updated identically
        torch.testing.assert_close(
            ours.layers[0].nodes[0].running_mean[:8], ref.cells[0].edges["1<-0"][3].op[2].running_mean
        )


@pytest.mark.parametrize("ops", [(3, 3, 3, 1, 3, 3), (0, 1, 2, 3, 4, 0), (0, 0, 0, 0, 0, 0), (4, 2, 0, 1, 4, 3)])
def test_hard_mode_matches_gdas_reference(ops):
    ref, ours = _pair("gdas")
    x = torch.randn(4, 3, 16, 16)
    probs = torch.softmax(torch.randn(6, 5), -1).requires_grad_(True)
    index = torch.tensor(ops).view(6, 1)
    hard = torch.zeros_like(probs).scatter_(-1, index, 1.0)
    hardwts = hard - probs.detach() + probs
    # the reference GDAS cell forward with externally fixed hard weights
    feature = ref.stem(x)
    for cell in ref.cells:
        feature = cell.forward_gdas(feature, hardwts, index) if hasattr(cell, "forward_gdas") else cell(feature)
    ref_logits = ref.classifier(ref.global_pooling(ref.lastact(feature)).flatten(1))
    probs2 = probs.detach().clone().requires_grad_(True)
    our_logits = ours.forward_hard(x, hard - probs2.detach() + probs2, ops)
    torch.testing.assert_close(our_logits, ref_logits, atol=1e-5, rtol=1e-5)
    ref_logits.square().sum().backward()
    our_logits.square().sum().backward()
    torch.testing.assert_close(probs2.grad, probs.grad, atol=1e-4, rtol=1e-4)


def test_discrete_cell_matches_reference_select():
    ref, ours = _pair("darts")
    cell = Cell.parse("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|")
    weights = torch.zeros(6, 5).scatter_(-1, torch.tensor(cell.ops).view(6, 1), 1.0)
    x = torch.randn(4, 3, 16, 16)
    feature = ref.stem(x)
    for c in ref.cells:
        feature = c.forward_select(feature, weights) if hasattr(c, "forward_select") else c(feature)
    ref_logits = ref.classifier(ref.global_pooling(ref.lastact(feature)).flatten(1))
    torch.testing.assert_close(ours.forward_cell(x, cell), ref_logits, atol=1e-5, rtol=1e-5)
    # eval mode with running statistics too
    ref.eval(), ours.eval()
    feature = ref.stem(x)
    for c in ref.cells:
        feature = c.forward_select(feature, weights) if hasattr(c, "forward_select") else c(feature)
    ref_logits = ref.classifier(ref.global_pooling(ref.lastact(feature)).flatten(1))
    torch.testing.assert_close(ours.forward_cell(x, cell), ref_logits, atol=1e-5, rtol=1e-5)


def test_per_layer_cells_and_errors():
    net = Supernet(SupernetConfig(C=4, N=1))
    x = torch.randn(2, 3, 8, 8)
    cells = [Cell((op,) * 6) for op in (3, 1, 4)]  # all-conv3, all-skip, all-pool: each passes its input on
    out = net.forward_cell(x, cells)
    assert out.shape == (2, 10)
    # one cell per search layer: the same cell in every layer is the single-cell forward, and the order matters
    torch.testing.assert_close(net.forward_cell(x, [cells[0]] * 3), net.forward_cell(x, cells[0]), rtol=0, atol=0)
    assert not torch.allclose(net.forward_cell(x, cells[::-1]), out)
    # layer k really uses cells[k]: swapping the cell of the middle stage alone changes the logits
    assert not torch.allclose(net.forward_cell(x, [cells[0], cells[2], cells[2]]), out)
    with pytest.raises(ValueError):
        net.forward_cell(x, cells[:2])


def test_grad_units_mark_computed_ops_on_backward_only():
    """A forward marks nothing; the backward through it marks exactly the conv ops it computed, those behind
    `none` edges included (the reference keeps them in its graph); a `none` weight step clears the marks, a
    `zero` one keeps them; the marks survive a state-dict round trip (checkpoints)."""
    net = Supernet(SupernetConfig(C=4, N=1))
    cell = Cell.parse("|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|")
    logits = net.forward_cell(torch.randn(2, 3, 8, 8), cell)
    units = lambda: [n.grad_units for layer in net.search_cells for n in layer.nodes]  # noqa: E731
    assert not any(any(u) for u in units())
    logits.sum().backward()
    # node 0 feeds edges 1<-0 (conv3, slot 0), 2<-0 (conv1, slot 1), 3<-0; node 2 feeds 3<-2 (conv3, slot 0)
    assert units() == [[True, False, False, False, True, False], [False] * 4, [True, False]] * 3
    masks, skip = net.sgd_row_masks()
    node0 = net.search_cells[0].nodes[0]
    assert masks[node0.conv3].tolist() == [True] * 4 + [False] * 8 and node0.conv1 in masks
    assert net.search_cells[0].nodes[1].conv3 in skip
    state = net.state_dict()
    net.begin_weight_step("zero")
    assert any(any(u) for u in units())
    net.begin_weight_step("none")
    assert not any(any(u) for u in units())
    net.load_state_dict(state)
    assert units()[0] == [True, False, False, False, True, False]
    with torch.no_grad():
        net.forward_mixture(torch.randn(2, 3, 8, 8), torch.full((6, 5), 0.2))
    assert units()[1] == [False] * 4  # no graph, no gradient


def test_lastact_follows_the_cell_bn_flags_when_asked():
    """NATS-Bench's generic search model: lastact = BatchNorm2d(affine, track_running_stats); NB201's: default BN."""
    nats = Supernet(SupernetConfig(C=4, N=1, lastact_follows_flags=True))
    assert not nats.lastact.affine and not nats.lastact.track_running_stats
    assert "lastact.weight" not in nats.state_dict() and "lastact.running_mean" not in nats.state_dict()
    nb201 = Supernet(SupernetConfig(C=4, N=1))
    assert nb201.lastact.affine and nb201.lastact.track_running_stats
