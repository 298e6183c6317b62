"""K supernets as one network with a seed axis, and the static (masked) forward of discrete cells.

:class:`StackedSupernet` holds the parameters and buffers of K :class:`~nasbench_suite.supernet.Supernet` (same
config, one per seed) stacked along a new first axis: a convolution weight ``(O, I, k, k)`` becomes ``(K, O, I, k,
k)`` and runs as ONE grouped convolution (``groups=K``) over activations whose channels are the K seeds' channels
side by side (``(B, K*C, H, W)``); per-channel batch norm is then per seed by construction (each seed's statistics,
running buffers and affine parameters), and the classifier is one batched matmul. Seed k's slice of every output,
loss and gradient is what seed k's own network computes, up to float rounding (the same arithmetic, other kernels).

Every forward is static: the discrete forwards do not branch on the chosen ops but weight every op of every edge
(:meth:`StackedSupernet.forward_masked`), so the same computation serves any cells, any seed, and a captured CUDA
graph. With ``M`` the 0/1 mask of the chosen op per (seed, edge) and ``H`` the straight-through hard weights, edge
e contributes ``sum_o H[e, o] * (M[e, o] * op_o(x) + (1 - M[e, o]))``: in value the chosen op scaled by its weight
plus the other (near-zero) weights as scalars, and in gradient exactly the reference's (each unchosen weight
receives the sum of the upstream gradient; an unchosen op's parameters receive an exact zero, and the SGD step skips
their rows as the reference's does: :attr:`StackedSupernet.has_grad`). BN running statistics (when recorded) are
updated only for the chosen ops, as the reference, which never computes the others.

The stacked network is a working copy: the runner stacks the seeds' networks before an epoch (:meth:`from_nets`)
and writes them back after it (:meth:`write_back`), so derivation, scoring and checkpoints stay per seed and
unchanged, and a vectorized run's checkpoint is the same as a single-seed run's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .space import IN_EDGES, NUM_EDGES, NUM_NODES, NUM_OPS, OUT_EDGES, Cell
from .supernet import CONV1, CONV3, POOL, SKIP, SearchCell, Supernet, box_sum, inv_count

_BN_EPS, _BN_MOMENTUM = 1e-5, 0.1


def _key(name: str) -> str:
    return name.replace(".", "__")


def _flat(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.reshape(-1)


def cells_mask(cells: Sequence[Cell | Sequence[Cell]], num_layers: int, device, dtype) -> torch.Tensor:
    """One-hot masks (L, K, 6, 5) of per-seed cells: ``cells[k]`` is one cell for every search layer, or one per
    layer (L = ``num_layers``; a single (1, K, 6, 5) when every seed uses one cell everywhere)."""
    per_layer = any(not isinstance(c, Cell) for c in cells)
    L = num_layers if per_layer else 1
    idx = torch.empty(L, len(cells), NUM_EDGES, dtype=torch.long)
    for k, c in enumerate(cells):
        layers = [c] * L if isinstance(c, Cell) else list(c)
        if len(layers) != L:
            raise ValueError(f"need {L} cells for seed {k}, got {len(layers)}")
        for layer, cell in enumerate(layers):
            idx[layer, k] = torch.tensor(cell.ops)
    return F.one_hot(idx.to(device), NUM_OPS).to(dtype)


class StackedSupernet(nn.Module):
    """The supernets of K seeds as one network (see the module docstring). Forward inputs are ``(K, B, 3, H, W)``
    (seed k's batch in row k), outputs ``(K, B, classes)``."""

    def __init__(self, nets: Sequence[Supernet]):
        super().__init__()
        if not nets:
            raise ValueError("a stacked supernet needs at least one network")
        first = nets[0]
        if any(n.config != first.config for n in nets):
            raise ValueError("every stacked network needs the same SupernetConfig")
        self.K = len(nets)
        self.config = first.config
        self.amp_dtype = first.amp_dtype
        self._layers = [("cell" if isinstance(m, SearchCell) else "block", m) for m in first.layers]
        self.names = [n for n, _ in first.named_parameters()]
        self.buffer_names = [n for n, _ in first.named_buffers()]
        with torch.no_grad():
            for name in self.names:
                stacked = torch.stack([dict(n.named_parameters())[name].detach() for n in nets])
                self.register_parameter(_key(name), nn.Parameter(stacked.clone()))
            for name in self.buffer_names:
                stacked = torch.stack([dict(n.named_buffers())[name] for n in nets])
                self.register_buffer(_key(name), stacked.clone())
        #: (L, K, 6, 5): whether the reference's parameters of (layer, seed, edge, op) hold a gradient now (only the
        #: conv entries matter); the stacked form of every NodeOps' ``grad_units``
        units = [[[[False] * NUM_OPS for _ in range(NUM_EDGES)] for _ in nets] for _ in range(first.num_search_cells)]
        for k, net in enumerate(nets):
            for layer, cell in enumerate(net.search_cells):
                for node in cell.nodes:
                    for slot, e in enumerate(node.edges):
                        units[layer][k][e][CONV3] = node.grad_units[slot]
                        units[layer][k][e][CONV1] = node.grad_units[node.k + slot]
        self.has_grad = torch.tensor(units, dtype=torch.bool, device=self.P("classifier.weight").device)
        #: (K,) bool during a forward that only some seeds take (their BN running statistics alone are updated)
        self._active: torch.Tensor | None = None
        self.train(first.training)

    @property
    def num_search_cells(self) -> int:
        return self.has_grad.shape[0]

    def P(self, name: str) -> torch.Tensor:
        """The stacked tensor (K, ...) of parameter or buffer ``name`` of the single network."""
        return getattr(self, _key(name))

    def _opt(self, name: str) -> torch.Tensor | None:
        return getattr(self, _key(name), None)

    @torch.no_grad()
    def write_back(self, nets: Sequence[Supernet]) -> None:
        """Copy every seed's slice into its own network (parameters, buffers, which ops hold a gradient)."""
        for k, net in enumerate(nets):
            params, buffers = dict(net.named_parameters()), dict(net.named_buffers())
            for name in self.names:
                params[name].copy_(self.P(name)[k])
            for name in self.buffer_names:
                buffers[name].copy_(self.P(name)[k])
            hg = self.has_grad[:, k].tolist()
            for layer, cell in enumerate(net.search_cells):
                for node in cell.nodes:
                    node.grad_units = [hg[layer][e][op] for op in (CONV3, CONV1) for e in node.edges]

    # -- building blocks ---------------------------------------------------------------------------------------
    def _conv(self, x: torch.Tensor, name: str, bias: str | None = None, stride: int = 1) -> torch.Tensor:
        w = self.P(name)
        b = self._opt(bias) if bias else None
        return F.conv2d(
            x,
            w.reshape(-1, *w.shape[2:]),
            None if b is None else b.reshape(-1),
            stride=stride,
            padding=w.shape[-1] // 2,
            groups=self.K,
        )

    def _batch_norm(self, x, rm, rv, w, b, keep: torch.Tensor | None = None) -> torch.Tensor:
        """``F.batch_norm`` per seed and channel: ``rm``/``rv`` (K, C) running buffers (views into the stacked
        ones) or None, ``w``/``b`` (K, C) or None; ``keep`` (K, C) bool: the running entries this batch updates
        (None: all). Where only some are kept, or a view is not contiguous (a node's conv3 or conv1 channels), the
        update goes through copies and is written back."""
        track = rm is not None
        if not (track and self.training and (keep is not None or not rm.is_contiguous())):
            return F.batch_norm(
                x, _flat(rm), _flat(rv), _flat(w), _flat(b), self.training or not track, _BN_MOMENTUM, _BN_EPS
            )
        m, v = rm.clone(), rv.clone()
        y = F.batch_norm(x, m.view(-1), v.view(-1), _flat(w), _flat(b), True, _BN_MOMENTUM, _BN_EPS)
        # through .data, as batch_norm's own in-kernel update: an earlier forward's graph holds these buffers
        # (unused by a training-mode backward), and an autograd-visible in-place write would fail its check
        rm.data.copy_(m if keep is None else torch.where(keep, m, rm))
        rv.data.copy_(v if keep is None else torch.where(keep, v, rv))
        return y

    def _bn(self, x: torch.Tensor, prefix: str) -> torch.Tensor:
        """An ``nn.BatchNorm2d`` (``prefix.weight`` ...), per seed and channel; running buffers updated in place (only
        the active seeds', see :meth:`forward_masked`)."""
        rm, rv = self._opt(prefix + ".running_mean"), self._opt(prefix + ".running_var")
        active = self._active
        if rm is not None and self.training:
            self.P(prefix + ".num_batches_tracked").add_(1 if active is None else active.long())
        keep = None if active is None else active.view(-1, 1)
        return self._batch_norm(x, rm, rv, self._opt(prefix + ".weight"), self._opt(prefix + ".bias"), keep)

    def _relu_conv_bn(self, x: torch.Tensor, prefix: str, stride: int) -> torch.Tensor:
        return self._bn(self._conv(F.relu(x), prefix + ".conv.weight", stride=stride), prefix + ".bn")

    def _block(self, x: torch.Tensor, li: int) -> torch.Tensor:
        p = f"layers.{li}"
        residual = self._conv(F.avg_pool2d(x, 2, 2), p + ".shortcut.weight")
        return residual + self._relu_conv_bn(self._relu_conv_bn(x, p + ".conv_a", 2), p + ".conv_b", 1)

    def _node_convs(
        self, r: torch.Tensor, li: int, j: int, scale: torch.Tensor, chosen: torch.Tensor | None
    ) -> torch.Tensor:
        """Node j's fused conv3 and conv1 of every outgoing edge, BN-scaled: (B, K, k, C, H, W).

        ``scale`` (K, k, 2): the weights of (edge slot, conv3/conv1) per seed; ``chosen`` (K, k, 2) bool: whose BN
        running statistics a recording network updates (None: all)."""
        q = f"layers.{li}.nodes.{j}"
        K, k = self.K, len(OUT_EDGES[j])
        C = self.P(q + ".conv3").shape[2]
        B, H, W = r.shape[0], r.shape[-2], r.shape[-1]
        rm, rv = self._opt(q + ".running_mean"), self._opt(q + ".running_var")
        bw, bb = self._opt(q + ".bn_weight"), self._opt(q + ".bn_bias")
        track = rm is not None
        out = None
        for pos, (conv, bias) in enumerate(((".conv3", ".bias3"), (".conv1", ".bias1"))):
            y = self._conv(r, q + conv, q + bias if self._opt(q + bias) is not None else None)
            s = scale[:, :, pos].repeat_interleave(C, dim=1)  # (K, k*C)
            sl = slice(pos * k * C, (pos + 1) * k * C)
            w = s if bw is None else bw[:, sl] * s
            b = None if bb is None else bb[:, sl] * s
            keep = None if chosen is None else chosen[:, :, pos].repeat_interleave(C, dim=1)
            y = self._batch_norm(y, rm[:, sl] if track else None, rv[:, sl] if track else None, w, b, keep)
            if track and self.training:
                counts = self.P(q + ".num_batches_tracked")[:, pos * k : (pos + 1) * k]
                counts += 1 if chosen is None else chosen[:, :, pos].long()
            out = y if out is None else out + y
        return out.view(B, K, k, C, H, W)

    def _cell(
        self, x: torch.Tensor, li: int, weights: torch.Tensor, rest: torch.Tensor | None, chosen: torch.Tensor | None
    ) -> torch.Tensor:
        """One search cell. ``weights`` (K, 6, 5): every op's weight per seed and edge; ``rest`` (K, 4): scalars added
        to each node (the straight-through terms of the unchosen ops) or None; ``chosen`` (K, 6, 5) bool or None."""
        K = self.K
        B, KC, H, W = x.shape
        C = KC // K
        conv_w = weights[:, :, [CONV3, CONV1]]  # (K, 6, 2)
        conv_ch = None if chosen is None else chosen[:, :, [CONV3, CONV1]]
        # per edge, broadcastable to (B, K, C, H, W): the skip weight, and the pool weight times 1 / window size
        skip_w = weights[:, :, SKIP].t().reshape(NUM_EDGES, 1, K, 1, 1, 1)
        pool_w = weights[:, :, POOL].t().reshape(NUM_EDGES, 1, K, 1, 1, 1) * inv_count(x)
        acc: list[torch.Tensor | None] = [None] * NUM_NODES
        nodes = [x.view(B, K, C, H, W)]
        for j in range(NUM_NODES - 1):
            h5 = nodes[j]
            h = h5.reshape(B, KC, H, W)
            edges = list(OUT_EDGES[j])
            ch = None if conv_ch is None else conv_ch[:, edges]
            conv = self._node_convs(F.relu(h), li, j, conv_w[:, edges], ch)
            box = box_sum(h).view(B, K, C, H, W)
            for slot, e in enumerate(edges):
                i = j + 1 + slot
                t = conv[:, :, slot] if acc[i] is None else acc[i] + conv[:, :, slot]
                t = torch.addcmul(t, h5, skip_w[e])
                acc[i] = torch.addcmul(t, box, pool_w[e])
            node = acc[j + 1]
            if rest is not None:
                node = node + rest[:, j + 1].view(1, K, 1, 1, 1)
            nodes.append(node)
        return nodes[-1].reshape(B, KC, H, W)

    # -- forwards -----------------------------------------------------------------------------------------------
    def _run(self, X: torch.Tensor, cell_args) -> torch.Tensor:
        K, B = X.shape[:2]
        if K != self.K:
            raise ValueError(f"input has {K} seeds, the network {self.K}")
        x = X.transpose(0, 1).reshape(B, K * X.shape[2], *X.shape[3:])
        ctx = (
            torch.autocast(x.device.type, dtype=self.amp_dtype)
            if self.amp_dtype is not None
            else torch.autocast(x.device.type, enabled=False)
        )
        with ctx:
            h = self._bn(self._conv(x, "stem.0.weight"), "stem.1")
            layer = 0
            for li, (kind, _) in enumerate(self._layers):
                if kind == "cell":
                    h = self._cell(h, li, *cell_args(layer))
                    layer += 1
                else:
                    h = self._block(h, li)
            h = F.relu(self._bn(h, "lastact"))
            feats = F.adaptive_avg_pool2d(h, 1).view(B, K, -1)
            w, b = self.P("classifier.weight"), self.P("classifier.bias")
            logits = torch.baddbmm(b.unsqueeze(1), feats.transpose(0, 1), w.transpose(1, 2))  # (K, B, classes)
        return logits.to(w.dtype)

    def forward_mixture(self, X: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Every edge a ``weights``-weighted sum of all ops; ``weights`` (K, 6, 5), e.g. softmax of each seed's
        alpha. Marks every conv op as holding a gradient once a backward passes."""
        logits = self._run(X, lambda layer: (weights, None, None))
        return self._track(logits, None)

    def forward_masked(
        self,
        X: torch.Tensor,
        mask: torch.Tensor,
        hard: torch.Tensor | None = None,
        active: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The static discrete forward. ``mask`` (L or 1, K, 6, 5): one-hot chosen op per (layer, seed, edge)
        (:func:`cells_mask`); ``hard`` (K, 6, 5): straight-through hard weights of one cell per seed (GDAS, E2NAS's
        arch step), or None for the plain cells (weight 1 on the chosen op). ``active`` (K,) bool: the seeds whose
        single run takes this forward (the others' outputs are computed but unused: their BN running statistics and
        gradient marks are left alone); None = all."""
        L = mask.shape[0]
        chosen = mask.bool()
        if active is not None:
            chosen = chosen & active.view(1, -1, 1, 1)
        if hard is None:
            args = [(mask[i], None, chosen[i]) for i in range(L)]
        else:
            if L != 1:
                raise ValueError("hard weights go with one cell per seed")
            w = hard * mask[0]
            rest_e = (hard * (1 - mask[0])).sum(-1)  # (K, 6): the unchosen weights per edge
            # (K, 4): per node, the unchosen weights of its input edges (node 0 has none)
            rest = torch.stack([rest_e[:, list(IN_EDGES[i])].sum(-1) for i in range(NUM_NODES)], dim=1)
            args = [(w, rest, chosen[0])]
        self._active = active
        try:
            logits = self._run(X, lambda layer: args[layer if L > 1 else 0])
        finally:
            self._active = None
        return self._track(logits, chosen)

    def forward_cells(
        self, X: torch.Tensor, cells: Sequence[Cell | Sequence[Cell]], active: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Plain discrete cells per seed (one cell, or one per search layer): :meth:`forward_masked`."""
        p = self.P("classifier.weight")
        return self.forward_masked(X, cells_mask(cells, self.num_search_cells, p.device, p.dtype), active=active)

    def forward_hard(self, X: torch.Tensor, hard: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Straight-through ``hard`` weights (K, 6, 5) with the chosen op ``index`` (K, 6) per seed and edge."""
        mask = F.one_hot(index.long(), NUM_OPS).to(hard.dtype).unsqueeze(0)
        return self.forward_masked(X, mask, hard)

    # -- which ops hold a gradient, the SGD row masks ------------------------------------------------------------
    def _track(self, logits: torch.Tensor, chosen: torch.Tensor | None) -> torch.Tensor:
        """As :meth:`Supernet._track`: a backward through ``logits`` marks the ops this forward computed."""
        if logits.requires_grad:

            def mark(grad):
                if chosen is None:
                    self.has_grad.fill_(True)
                else:
                    self.has_grad.logical_or_(chosen)  # (L or 1, K, 6, 5) broadcasts over the layers
                return grad

            logits.register_hook(mark)
        return logits

    def begin_weight_step(self, semantics: str) -> None:
        """The reference's ``zero_grad()`` before a weight step (see :meth:`Supernet.begin_weight_step`)."""
        if semantics == "none":
            self.has_grad.fill_(False)

    def sgd_row_masks(self) -> dict[torch.Tensor, torch.Tensor]:
        """Per stacked cell parameter, a (K, rows) mask of the rows whose reference parameter holds a gradient
        (for :func:`nasbench_suite.sgd.masked_sgd_step`); every other parameter is active in every seed."""
        masks: dict[torch.Tensor, torch.Tensor] = {}
        if bool(self.has_grad[..., [CONV3, CONV1]].all()):  # every row of every seed (a mixture's step): plain SGD
            return masks
        layer = 0
        for li, (kind, _) in enumerate(self._layers):
            if kind != "cell":
                continue
            hg = self.has_grad[layer]
            layer += 1
            for j, edges in enumerate(OUT_EDGES):
                q = f"layers.{li}.nodes.{j}"
                C = self.P(q + ".conv3").shape[2]
                u3 = hg[:, list(edges), CONV3].repeat_interleave(C, dim=1)  # (K, k*C)
                u1 = hg[:, list(edges), CONV1].repeat_interleave(C, dim=1)
                masks[self.P(q + ".conv3")], masks[self.P(q + ".conv1")] = u3, u1
                if self._opt(q + ".bias3") is not None:
                    masks[self.P(q + ".bias3")], masks[self.P(q + ".bias1")] = u3, u1
                if self._opt(q + ".bn_weight") is not None:
                    both = torch.cat([u3, u1], dim=1)
                    masks[self.P(q + ".bn_weight")] = masks[self.P(q + ".bn_bias")] = both
        return masks

    def seed_grad_norms(self) -> torch.Tensor:
        """(K,) the 2-norm of each seed's gradient over every parameter (a missing gradient counts as zero)."""
        sq = None
        for p in self.parameters():
            if p.grad is not None:
                s = p.grad.reshape(self.K, -1).pow(2).sum(1)
                sq = s if sq is None else sq + s
        p0 = self.P("classifier.weight")
        return torch.zeros(self.K, device=p0.device, dtype=p0.dtype) if sq is None else sq.sqrt()
