"""The NB201 search network (supernet), shared by every method.

Skeleton (protocol spec): stem Conv3x3+BN; N search cells at C; ResNet basic block (stride 2) to 2C; N cells; ResNet
block to 4C; N cells; BN+ReLU, global average pool, Linear.

Cells are stored *per node*, not per edge, because that is where the work can be shared (issue 7):
every edge leaving node j reads the same tensor, so the ReLU in front of the convolutions is computed once per node,
the 3x3 (and the 1x1) convolutions of all edges leaving node j run as ONE convolution with concatenated output
channels, BN (per channel, affine=False) runs once over the concatenation, and the parameter-free avg-pool is
computed once per node and reused by each edge that uses it. ``none`` is never computed (its output is zero, so its
only effect on any gradient is zero). The numerics equal the reference's (per-edge modules) up to float rounding;
tests check logits and gradients against xautodl to 1e-5 after :func:`load_reference_state_dict`.

Forward modes:
  * :meth:`Supernet.forward_mixture` - softmax-weighted sum of all ops on every edge (DARTS, SETN's arch step);
  * :meth:`Supernet.forward_hard` - straight-through hard one-hot weights, only the chosen op computed
    (GDAS, E2NAS); the non-chosen weights enter as scalars so that their gradient equals the reference's;
  * :meth:`Supernet.forward_cell` - one fixed discrete cell, or one cell per search layer (RSPS, ENAS, SETN).

Reference quirk kept on purpose: a cell conv has ``bias = not affine`` (xautodl's ReLUConvBN), so with the
protocol's affine=False the cell convs carry a bias; that is what makes the supernet 1,692,826 parameters.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import AMP_MODES, COMPILE_MODES
from .space import EDGES, NUM_EDGES, NUM_NODES, NUM_OPS, OUT_EDGES, Cell

NONE, SKIP, CONV1, CONV3, POOL = range(NUM_OPS)


@dataclass(frozen=True)
class SupernetConfig:
    """Shape and BN flags of the supernet (part of every run's recorded config)."""

    C: int = 16
    N: int = 5
    num_classes: int = 10
    affine: bool = False
    track_running_stats: bool = False
    #: the final BN (``lastact``) takes the affine/track flags, as NATS-Bench's generic search model; False = an
    #: affine BN with running statistics, as NB201's search models
    lastact_follows_flags: bool = False


class ReLUConvBN(nn.Module):
    """ReLU -> Conv -> BN, used in the ResNet reduction blocks (affine BN, running stats, as the reference)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(F.relu(x)))


class ResNetBlock(nn.Module):
    """The stride-2 ResNet basic block between stages (avg-pool + 1x1 conv shortcut)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.shortcut(F.avg_pool2d(x, 2, 2))
        return residual + self.conv_b(self.conv_a(x))


class NodeOps(nn.Module):
    """The parametric ops of every edge that leaves one node, fused.

    Output channel block ``k`` (k-th outgoing edge) of ``conv3`` / ``conv1`` belongs to edge ``edges[k]``.
    BN statistics are laid out as ``[conv3 channels of all edges, conv1 channels of all edges]`` so that the
    mixture mode normalises everything in one call.

    ``grad_units[u]`` (u = slot for conv3, k + slot for conv1) says whether the reference's parameters of that
    (edge, op) would hold a gradient (``.grad`` not None) now: set when a backward passes through a forward that
    computed the op, cleared by a ``none``-semantics weight step (see :mod:`nasbench_suite.sgd`). It is part of the
    state dict (extra state), so checkpoints carry it.
    """

    def __init__(self, C: int, edges: Sequence[int], affine: bool, track_running_stats: bool):
        super().__init__()
        self.C, self.edges, self.k = C, tuple(edges), len(edges)
        self.affine, self.track = affine, track_running_stats
        kc, bias = self.k * C, not affine
        self.conv3 = nn.Parameter(torch.empty(kc, C, 3, 3))
        self.conv1 = nn.Parameter(torch.empty(kc, C, 1, 1))
        self.bias3 = nn.Parameter(torch.empty(kc)) if bias else None
        self.bias1 = nn.Parameter(torch.empty(kc)) if bias else None
        self.bn_weight = nn.Parameter(torch.ones(2 * kc)) if affine else None
        self.bn_bias = nn.Parameter(torch.zeros(2 * kc)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(2 * kc))
            self.register_buffer("running_var", torch.ones(2 * kc))
            self.register_buffer("num_batches_tracked", torch.zeros(self.k * 2, dtype=torch.long))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None
        self.grad_units = [False] * (2 * self.k)
        self.reset_parameters()

    def get_extra_state(self) -> list[bool]:
        return list(self.grad_units)

    def set_extra_state(self, state) -> None:
        units = [bool(u) for u in state]
        if len(units) != 2 * self.k:
            raise ValueError(f"grad_units of length {len(units)}, expected {2 * self.k}")
        self.grad_units = units

    def sgd_row_masks(self, masks: dict, skip: set) -> None:
        """Add this node's parameters to :func:`nasbench_suite.sgd.masked_sgd_step`'s row masks / skip set."""
        params = [
            p for p in (self.conv3, self.conv1, self.bias3, self.bias1, self.bn_weight, self.bn_bias) if p is not None
        ]
        units = self.grad_units
        if all(units):
            return
        if not any(units):
            skip.update(params)
            return
        u = torch.tensor(units, device=self.conv3.device)
        k, C = self.k, self.C
        conv3_rows, conv1_rows = u[:k].repeat_interleave(C), u[k:].repeat_interleave(C)
        masks[self.conv3], masks[self.conv1] = conv3_rows, conv1_rows
        if self.bias3 is not None:
            masks[self.bias3], masks[self.bias1] = conv3_rows, conv1_rows
        if self.affine:
            masks[self.bn_weight] = masks[self.bn_bias] = u.repeat_interleave(C)

    def reset_parameters(self) -> None:
        # Same init as k separate nn.Conv2d modules (kaiming-uniform a=sqrt(5), fan_in-based bias).
        for w, b, fan_in in ((self.conv3, self.bias3, self.C * 9), (self.conv1, self.bias1, self.C)):
            for k in range(self.k):
                blk = w[k * self.C : (k + 1) * self.C]
                nn.init.kaiming_uniform_(blk.data, a=5**0.5)
                if b is not None:
                    bound = 1 / fan_in**0.5
                    nn.init.uniform_(b.data[k * self.C : (k + 1) * self.C], -bound, bound)

    def _bn(self, x: torch.Tensor, sl: slice, count_slots: Sequence[int]) -> torch.Tensor:
        """BN over channels ``sl`` of the layout; views of the running buffers are updated in place."""
        rm = self.running_mean[sl] if self.track else None
        rv = self.running_var[sl] if self.track else None
        w = self.bn_weight[sl] if self.affine else None
        b = self.bn_bias[sl] if self.affine else None
        training = self.training or not self.track
        if self.track and self.training:
            for s in count_slots:
                self.num_batches_tracked[s] += 1
        return F.batch_norm(x, rm, rv, w, b, training, 0.1, 1e-5)

    def weighted(self, r: torch.Tensor, s3: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        """``w3[e] * conv3_e(r) + w1[e] * conv1_e(r)`` of every outgoing edge as one (B, k*C, H, W) tensor.

        ``s3``/``s1`` are the arch weights repeated per channel (k*C,). They enter as the BN's per-channel scale,
        so the weighting costs no extra pass over the data: ``BN(x) * w`` = ``(x - mean) * invstd * w`` with the
        same statistics, the same running-stat update and the same gradient (``sum(g * xhat)``) as the reference.
        """
        kc = self.k * self.C
        outs = []
        for conv, bias, s, sl in (
            (self.conv3, self.bias3, s3, slice(0, kc)),
            (self.conv1, self.bias1, s1, slice(kc, 2 * kc)),
        ):
            y = F.conv2d(r, conv, bias, padding=conv.shape[-1] // 2)
            w, b = (self.bn_weight[sl] * s, self.bn_bias[sl] * s) if self.affine else (s, None)
            rm = self.running_mean[sl] if self.track else None
            rv = self.running_var[sl] if self.track else None
            outs.append(F.batch_norm(y, rm, rv, w, b, self.training or not self.track, 0.1, 1e-5))
        if self.track and self.training:
            self.num_batches_tracked.add_(1)
        return outs[0] + outs[1]

    def one_edge(self, r: torch.Tensor, slot: int, op: int) -> torch.Tensor:
        """The conv op ``op`` (CONV1 or CONV3) of outgoing edge number ``slot`` only."""
        C, kc = self.C, self.k * self.C
        rows = slice(slot * C, (slot + 1) * C)
        if op == CONV3:
            y = F.conv2d(r, self.conv3[rows], self.bias3[rows] if self.bias3 is not None else None, padding=1)
            return self._bn(y, rows, (slot,))
        y = F.conv2d(r, self.conv1[rows], self.bias1[rows] if self.bias1 is not None else None)
        return self._bn(y, slice(kc + rows.start, kc + rows.stop), (self.k + slot,))


class SearchCell(nn.Module):
    """One NB201 search cell: 4 nodes, 6 edges, the 5 ops on each edge, stored per source node."""

    def __init__(self, C: int, affine: bool, track_running_stats: bool):
        super().__init__()
        self.C = C
        self.nodes = nn.ModuleList(NodeOps(C, OUT_EDGES[j], affine, track_running_stats) for j in range(NUM_NODES - 1))

    def forward_mixture(self, x: torch.Tensor, mix: _Mixture) -> torch.Tensor:
        """Every op on every edge, weighted (``mix``: the 6 x 5 weights as a :class:`_Mixture`, built once per forward).

        Node i accumulates, for each edge e = (i <- j): ``BN-scaled conv3 + conv1`` (one tensor per source node,
        see :meth:`NodeOps.weighted`), ``+ w_skip * h_j`` and ``+ w_pool * pool(h_j)`` as two fused multiply-adds,
        with the pool's 1/count folded into its weight; ``none`` adds nothing (its output is zero).
        """
        C = self.C
        nodes = [x]
        acc: list[torch.Tensor | None] = [None] * NUM_NODES
        s3, s1 = mix.conv_scales(C)
        pool_w = mix.pool_scales(x)
        for j in range(NUM_NODES - 1):
            h, ops = nodes[j], self.nodes[j]
            conv = ops.weighted(F.relu(h), s3[j], s1[j]).split(C, 1)
            box = box_sum(h)
            for slot, e in enumerate(ops.edges):
                i = j + 1 + slot
                t = conv[slot] if acc[i] is None else acc[i] + conv[slot]
                t = torch.addcmul(t, h, mix.skip[e])
                acc[i] = torch.addcmul(t, box, pool_w[e])
            nodes.append(acc[j + 1])
        return nodes[-1]

    def forward_hard(self, x: torch.Tensor, hard: _Hard | None, index: Sequence[int]) -> torch.Tensor:
        """Only op ``index[e]`` on edge e, scaled by its straight-through weight; ``hard=None``: the plain cell.

        With hard weights (:meth:`Supernet.hard_weights`) every edge contributes ``w[op] * op(x) + sum(other w)``
        as GDAS's reference forward does (``sum(w * op(x) if chosen else w)``): in value the other entries are ~0
        (straight-through one-hot), but each receives the sum of the upstream gradient, which is part of GDAS's
        arch gradient. The scalar parts are summed once per node and per forward (``hard.rest``), so each chosen
        op costs one fused multiply-add here.
        """
        nodes = [x]
        acc: list[torch.Tensor | None] = [None] * NUM_NODES
        inv = None
        for j in range(NUM_NODES - 1):
            h, ops = nodes[j], self.nodes[j]
            r = box = None
            for slot, e in enumerate(ops.edges):
                op = index[e]
                if op == NONE:
                    continue
                i = j + 1 + slot
                scale = None if hard is None else hard.chosen[e]
                if op == SKIP:
                    y = h
                elif op == POOL:
                    if box is None:
                        box = box_sum(h)
                        inv = inv_count(h)
                    y = box
                    scale = inv if scale is None else scale * inv
                else:
                    if r is None:
                        r = F.relu(h)
                    y = ops.one_edge(r, slot, op)
                if scale is None:
                    acc[i] = y if acc[i] is None else acc[i] + y
                elif acc[i] is not None:
                    acc[i] = torch.addcmul(acc[i], y, scale)
                elif hard is not None:
                    acc[i] = torch.addcmul(hard.rest[i], y, scale)
                else:
                    acc[i] = y * scale
            node = acc[j + 1]
            if node is None:  # every input edge is `none`: a zero map (plus the straight-through scalars)
                node = h.new_zeros(h.shape) if hard is None else h.new_zeros(h.shape) + hard.rest[j + 1]
            nodes.append(node)
        return nodes[-1]


_BOX: dict[tuple, torch.Tensor] = {}
_INV: dict[tuple, torch.Tensor] = {}


def box_sum(h: torch.Tensor) -> torch.Tensor:
    """3x3 zero-padded box sum per channel (a depthwise convolution with a ones kernel, no gradient to it).

    ``box_sum(h) * inv_count(h)`` equals ``F.avg_pool2d(h, 3, 1, 1, count_include_pad=False)`` up to float
    rounding, at a fraction of its CPU cost (ATen's NCHW avg-pool and its backward are not vectorised).
    """
    key = (h.shape[1], h.device, h.dtype)
    k = _BOX.get(key)
    if k is None:
        k = _BOX[key] = torch.ones(h.shape[1], 1, 3, 3, device=h.device, dtype=h.dtype)
    return F.conv2d(h, k, padding=1, groups=h.shape[1])


def inv_count(h: torch.Tensor) -> torch.Tensor:
    """1 / (number of in-image pixels of each 3x3 window), shape (1, 1, H, W): avg-pool's count_include_pad=False."""
    H, W = h.shape[-2:]
    key = (H, W, h.device, h.dtype)
    t = _INV.get(key)
    if t is None:
        ones = torch.ones(1, 1, H, W, device=h.device, dtype=torch.float32)
        kernel = torch.ones(1, 1, 3, 3, device=h.device, dtype=torch.float32)
        t = _INV[key] = (1.0 / F.conv2d(ones, kernel, padding=1)).to(h.dtype)
    return t


class _Mixture:
    """The mixture weights prepared once per forward and shared by every cell (per-stage tensors cached)."""

    def __init__(self, weights: torch.Tensor):
        self.weights = weights
        cols = weights.t()
        self.skip = cols[SKIP].unbind()
        self._pool = cols[POOL]
        self._conv: dict[int, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
        self._pools: dict[tuple[int, int], tuple[torch.Tensor, ...]] = {}

    def conv_scales(self, C: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per source node: the CONV3 and CONV1 weights of its outgoing edges, repeated per channel."""
        got = self._conv.get(C)
        if got is None:
            w = self.weights
            got = self._conv[C] = (
                [w[list(OUT_EDGES[j]), CONV3].repeat_interleave(C) for j in range(NUM_NODES - 1)],
                [w[list(OUT_EDGES[j]), CONV1].repeat_interleave(C) for j in range(NUM_NODES - 1)],
            )
        return got

    def pool_scales(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per edge: ``w_pool * inv_count`` as a (1, 1, H, W) tensor."""
        key = tuple(x.shape[-2:])
        got = self._pools.get(key)
        if got is None:
            got = self._pools[key] = (self._pool.view(-1, 1, 1, 1) * inv_count(x)).unbind()
        return got


_IN_NODES: dict[tuple, torch.Tensor] = {}
_IN_NODE = torch.tensor([[1.0 if EDGES[e][0] == i else 0.0 for e in range(NUM_EDGES)] for i in range(NUM_NODES)])


class _Hard:
    """Straight-through hard weights prepared once per forward: the chosen entry of each edge, and per node the
    sum of the non-chosen entries of its input edges."""

    def __init__(self, hardwts: torch.Tensor, index: tuple[int, ...]):
        idx = torch.tensor(index, device=hardwts.device).view(-1, 1)
        chosen = hardwts.gather(1, idx).squeeze(1)
        self.chosen = chosen.unbind()
        rest = hardwts.sum(1) - chosen
        key = (hardwts.device, hardwts.dtype)
        m = _IN_NODES.get(key)
        if m is None:
            m = _IN_NODES[key] = _IN_NODE.to(device=hardwts.device, dtype=hardwts.dtype)
        self.rest = (m @ rest).unbind()


class Supernet(nn.Module):
    """The NB201 search network with per-node fused cells. Architecture parameters live in the method."""

    def __init__(self, config: SupernetConfig = SupernetConfig()):
        super().__init__()
        self.config = c = config
        C, N = c.C, c.N
        self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers: list[nn.Module] = []
        self.search_layers: list[int] = []
        channels = C
        for stage in range(3):
            if stage > 0:
                layers.append(ResNetBlock(channels, channels * 2))
                channels *= 2
            for _ in range(N):
                self.search_layers.append(len(layers))
                layers.append(SearchCell(channels, c.affine, c.track_running_stats))
        self.layers = nn.ModuleList(layers)
        if c.lastact_follows_flags:
            self.lastact = nn.BatchNorm2d(channels, affine=c.affine, track_running_stats=c.track_running_stats)
        else:
            self.lastact = nn.BatchNorm2d(channels)
        self.classifier = nn.Linear(channels, c.num_classes)

    @property
    def num_search_cells(self) -> int:
        return len(self.search_layers)

    def _run(self, x: torch.Tensor, cell_fn) -> torch.Tensor:
        if self._channels_last(x):
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast(x):
            h = self.stem(x)
            k = 0
            for is_cell, layer in self._plan:
                if is_cell:
                    h = cell_fn(layer, h, k)
                    k += 1
                else:
                    h = layer(h)
            h = F.relu(self.lastact(h))
            logits = self.classifier(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))
        return logits.to(self.classifier.weight.dtype)  # fp32 under bf16 autocast; a float64 run stays float64

    @property
    def _plan(self) -> list[tuple[bool, nn.Module]]:
        plan = self.__dict__.get("_plan_cache")
        if plan is None:
            plan = self.__dict__["_plan_cache"] = [(isinstance(m, SearchCell), m) for m in self.layers]
        return plan

    # -- execution options (see apply_fast_options) -----------------------------------------------------------
    #: None = the input's layout (NCHW from the data streams). Not channels-last on CPU by default: oneDNN's
    #: channels-last convolutions are faster there, but its channels-last batch norm is less accurate and the
    #: GDAS arch gradient (sums of gradients through BN, with cancellation) then drifts ~1e-3 from the reference.
    channels_last: bool | None = None
    #: autocast dtype for the forward (None = fp32)
    amp_dtype: torch.dtype | None = None

    def _channels_last(self, x: torch.Tensor) -> bool:
        cl = self.channels_last
        return bool(cl)

    def _autocast(self, x: torch.Tensor):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(x.device.type, dtype=self.amp_dtype)

    def forward_mixture(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Logits with every edge a ``weights``-weighted sum of all ops (weights: 6 x 5, e.g. softmax(alpha))."""
        compiled = self.__dict__.get("_compiled_mixture")
        logits = compiled(x, weights) if compiled is not None else self._forward_mixture(x, weights)
        return self._track(logits, None)

    def _forward_mixture(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        mix = _Mixture(weights)
        return self._run(x, lambda cell, h, k: cell.forward_mixture(h, mix))

    def forward_hard(self, x: torch.Tensor, hardwts: torch.Tensor, index: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """Logits with straight-through hard weights; only op ``index[e]`` computed on edge e."""
        idx = _as_index(index)
        hard = _Hard(hardwts, idx)
        return self._track(self._run(x, lambda cell, h, k: cell.forward_hard(h, hard, idx)), [idx])

    def forward_cell(self, x: torch.Tensor, cell: Cell | Sequence[Cell]) -> torch.Tensor:
        """Logits of one discrete cell everywhere, or of ``cell[k]`` in the k-th search layer."""
        if isinstance(cell, Cell):
            ops = tuple(cell.ops)
            return self._track(self._run(x, lambda c, h, k: c.forward_hard(h, None, ops)), [ops])
        cells = list(cell)
        if len(cells) != self.num_search_cells:
            raise ValueError(f"need {self.num_search_cells} cells, got {len(cells)}")
        per_layer = [tuple(c.ops) for c in cells]
        return self._track(self._run(x, lambda c, h, k: c.forward_hard(h, None, per_layer[k])), per_layer)

    # -- which (edge, op) parameters hold a gradient (the reference's per-op SGD; nasbench_suite.sgd) -------------
    def _track(self, logits: torch.Tensor, ops: list[tuple[int, ...]] | None) -> torch.Tensor:
        """Mark, when a backward passes through ``logits``, the ops this forward computed (``ops``: one op tuple
        for every cell or one per search layer; None = every op, the mixture). A backward, not the forward,
        marks them: only then does the reference's ``.grad`` of those ops stop being None."""
        if logits.requires_grad:
            units = None if ops is None else [_units_of(o) for o in ops]
            logits.register_hook(lambda grad: self._mark_units(units))
        return logits

    def _mark_units(self, units) -> None:
        for k, layer in enumerate(self.search_cells):
            for j, node in enumerate(layer.nodes):
                if units is None:
                    node.grad_units = [True] * (2 * node.k)
                else:
                    for u in units[k if len(units) > 1 else 0][j]:
                        node.grad_units[u] = True

    @property
    def search_cells(self) -> list[SearchCell]:
        return [self.layers[i] for i in self.search_layers]

    def begin_weight_step(self, semantics: str) -> None:
        """The reference's ``zero_grad()`` before a weight step: ``none`` sets every gradient to None (no (edge, op)
        holds one until this step's backward); ``zero`` zero-fills them (whoever had one keeps one)."""
        if semantics == "none":
            for layer in self.search_cells:
                for node in layer.nodes:
                    node.grad_units = [False] * (2 * node.k)

    def sgd_row_masks(self) -> tuple[dict[torch.Tensor, torch.Tensor], set[torch.Tensor]]:
        """Row masks and skipped parameters for :func:`nasbench_suite.sgd.masked_sgd_step`."""
        masks: dict[torch.Tensor, torch.Tensor] = {}
        skip: set[torch.Tensor] = set()
        for layer in self.search_cells:
            for node in layer.nodes:
                node.sgd_row_masks(masks, skip)
        return masks, skip

    forward = forward_cell


_UNITS: dict[tuple[int, ...], tuple[tuple[int, ...], ...]] = {}


def _units_of(ops: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Per source node, the grad units (:class:`NodeOps`) of the conv ops in ``ops``."""
    got = _UNITS.get(ops)
    if got is None:
        got = _UNITS[ops] = tuple(
            tuple(
                slot if ops[e] == CONV3 else len(edges) + slot
                for slot, e in enumerate(edges)
                if ops[e] in (CONV1, CONV3)
            )
            for edges in OUT_EDGES
        )
    return got


def _as_index(index) -> tuple[int, ...]:
    if isinstance(index, torch.Tensor):
        index = index.tolist()
    idx = tuple(int(i) for i in index)
    if len(idx) != NUM_EDGES:
        raise ValueError(f"need {NUM_EDGES} op indices, got {len(idx)}")
    return idx


AMP_DTYPES = dict(zip(AMP_MODES, (None, torch.bfloat16), strict=True))


def apply_fast_options(
    net: Supernet, amp: str = "off", channels_last: bool | None = None, compile: str = "off"
) -> None:
    """Opt-in execution options (GPU pipeline), all off by default; CPU results are unchanged unless one is set.

    * ``amp="bf16"``: the supernet's forward runs under ``torch.autocast`` in bfloat16 (logits returned as fp32,
      parameters and optimiser state stay fp32; no loss scaling is needed for bf16). Changes numerics.
    * ``channels_last``: ``True`` forces channels-last activations (cuDNN's fast layout for bf16 convolutions),
      ``False`` forces NCHW, ``None`` (default) = channels-last on CPU only.
    * ``compile``: ``torch.compile`` of the mixture forward (DARTS, SETN's arch step: one static graph for any
      weights). The hard/discrete forwards (GDAS, RSPS, ENAS, SETN's weight step) branch in Python on the sampled
      ops and stay eager: compiling them would recompile per op choice.
    """
    from .errors import ConfigError

    if amp not in AMP_DTYPES:
        raise ConfigError(f"amp must be one of {', '.join(AMP_DTYPES)}, got {amp!r}")
    if compile not in COMPILE_MODES:
        raise ConfigError(f"compile must be one of {', '.join(COMPILE_MODES)}, got {compile!r}")
    net.amp_dtype = AMP_DTYPES[amp]
    if channels_last is not None:
        net.channels_last = channels_last
    if compile == "off":
        net.__dict__.pop("_compiled_mixture", None)
    else:
        fn = torch.compile(net._forward_mixture, mode=None if compile == "default" else compile)
        net.__dict__["_compiled_mixture"] = fn


def count_parameters(module: nn.Module) -> int:
    """Number of scalar parameters."""
    return sum(p.numel() for p in module.parameters())


# --- interoperability with the reference implementation ----------------------------------------------------------
def _fuse_reference_node(node, sd: dict, own: dict, new: dict, *, src: str, dst: str) -> None:
    """Move one node's per-edge conv weights, biases and BN tensors of the reference cell ``src`` (popped from
    ``sd``) into our fused per-node tensors under ``dst`` in ``new`` (``own``: our state, for what has no source)."""
    q = dst
    w3, w1, b3, b1 = [], [], [], []
    stats = {s: ([], []) for s in ("running_mean", "running_var", "weight", "bias")}
    for e in node.edges:
        dst_node, src_node = EDGES[e]
        ek = f"{src}edges.{dst_node}<-{src_node}."
        w3.append(sd.pop(ek + f"{CONV3}.op.1.weight"))
        w1.append(sd.pop(ek + f"{CONV1}.op.1.weight"))
        if node.bias3 is not None:
            b3.append(sd.pop(ek + f"{CONV3}.op.1.bias"))
            b1.append(sd.pop(ek + f"{CONV1}.op.1.bias"))
        for s in stats:
            for pos, op in ((0, CONV3), (1, CONV1)):
                key = ek + f"{op}.op.2.{s}"
                if key in sd:
                    stats[s][pos].append(sd.pop(key))
        for op in (CONV3, CONV1):
            sd.pop(ek + f"{op}.op.2.num_batches_tracked", None)
    new[q + "conv3"], new[q + "conv1"] = torch.cat(w3), torch.cat(w1)
    if b3:
        new[q + "bias3"], new[q + "bias1"] = torch.cat(b3), torch.cat(b1)
    for s, (a, b) in stats.items():
        if a:
            name = q + (f"bn_{s}" if s in ("weight", "bias") else s)
            if name in own:
                new[name] = torch.cat(a + b)
    if q + "num_batches_tracked" in own:
        new[q + "num_batches_tracked"] = own[q + "num_batches_tracked"].clone()
    new[q + "_extra_state"] = own[q + "_extra_state"]


def load_reference_state_dict(net: Supernet, ref_state: dict[str, torch.Tensor]) -> None:
    """Copy the weights of an xautodl NB201 search network (``TinyNetworkDarts``/``GDAS``/``SETN``/``RANDOM``/
    ``ENAS`` state dict: names ``stem.*``, ``cells.L.edges.i<-j.OP.op.*``, ``lastact.0``, ``classifier``) into ``net``.

    Pure name mapping (xautodl is not imported); used by the reference-equivalence tests and the step timing.
    """
    sd = {k: v for k, v in ref_state.items() if k not in ("arch_parameters",)}
    own = net.state_dict()
    new: dict[str, torch.Tensor] = {}

    def take(dst: str, src: str) -> None:
        new[dst] = sd.pop(src).detach().clone()

    for name in ("0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked"):
        take(f"stem.{name}", f"stem.{name}")
    for li, layer in enumerate(net.layers):
        p = f"cells.{li}."
        if isinstance(layer, ResNetBlock):
            for ab in ("a", "b"):
                take(f"layers.{li}.conv_{ab}.conv.weight", p + f"conv_{ab}.op.1.weight")
                for s in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                    take(f"layers.{li}.conv_{ab}.bn.{s}", p + f"conv_{ab}.op.2.{s}")
            take(f"layers.{li}.shortcut.weight", p + "downsample.1.weight")
            continue
        for j, node in enumerate(layer.nodes):
            _fuse_reference_node(node, sd, own, new, src=p, dst=f"layers.{li}.nodes.{j}.")
    for s in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
        if f"lastact.{s}" in own:
            take(f"lastact.{s}", f"lastact.0.{s}")
        else:  # our lastact follows the cell BN flags (NATS-Bench's model) and has no such tensor
            sd.pop(f"lastact.0.{s}", None)
    take("classifier.weight", "classifier.weight")
    take("classifier.bias", "classifier.bias")
    leftovers = [k for k in sd if not k.endswith("num_batches_tracked")]
    if leftovers:
        raise KeyError(f"unmapped reference tensors: {leftovers[:5]}")
    missing = set(own) - set(new)
    if missing:
        raise KeyError(f"supernet tensors not filled: {sorted(missing)[:5]}")
    net.load_state_dict(new)
