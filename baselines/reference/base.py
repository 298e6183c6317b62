"""What every reference step shares: the xautodl network, the protocol's optimisers, the scripts' weight and arch
steps, random cells drawn as ours draws them, and candidate scoring."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from nasbench_suite.config import Protocol
from nasbench_suite.method import Batch, protocol_sgd
from nasbench_suite.space import OPS, Cell, sample_cell
from nasbench_suite.timing import ReferenceMissing

XAUTODL_HINT = "the reference implementation needs xautodl 1.0.0: pip install --no-deps xautodl"
#: our name of an xautodl NB201 search network -> (module of xautodl.models.cell_searchs, class)
NETWORKS = {
    "darts": ("search_model_darts", "TinyNetworkDarts"),
    "gdas": ("search_model_gdas", "TinyNetworkGDAS"),
    "setn": ("search_model_setn", "TinyNetworkSETN"),
    "random": ("search_model_random", "TinyNetworkRANDOM"),
    "enas": ("search_model_enas", "TinyNetworkENAS"),
}


def require_xautodl() -> None:
    """Raise :class:`ReferenceMissing` (one line) when xautodl cannot be imported."""
    try:
        import xautodl.models.cell_searchs  # noqa: F401
    except ImportError:
        raise ReferenceMissing(XAUTODL_HINT) from None


def xautodl_network(kind: str, C: int, N: int, num_classes: int = 10, affine: bool = False, track: bool = True):
    """The xautodl NB201 search network of ``kind`` (a key of :data:`NETWORKS`), with NB201's 5 ops."""
    import importlib

    require_xautodl()
    module, cls = NETWORKS[kind]
    net_cls = getattr(importlib.import_module(f"xautodl.models.cell_searchs.{module}"), cls)
    return net_cls(C, N, 4, num_classes, list(OPS), affine, track)


def structure(cell: Cell):
    """xautodl's ``Structure`` of one of our cells."""
    from xautodl.models.cell_searchs.genotypes import Structure

    return Structure.str2structure(cell.arch_str)


def logits(net, x: torch.Tensor) -> torch.Tensor:
    """The xautodl networks return (features, logits)."""
    return net(x)[1]


class ReferenceStep:
    """One baseline's NB201 script step on its xautodl network (eager, exactly the script's sequence).

    Built from the run's resolved protocol and the method's hyperparameters; ``net``, ``w_optimizer`` (the
    protocol's SGD over the network's weights), ``a_optimizer`` (the protocol's Adam over the arch parameters, for
    networks that have them) are public, so a test can compare every tensor. ``set_to_none`` is what each
    ``zero_grad()`` of the script does under the protocol's ``sgd_semantics`` (False = PyTorch 1.x ``zero``,
    True = PyTorch >= 2.0 ``none``). Cells the script draws at random (RSPS's and SETN's weight steps) come from
    :meth:`sample_cell`: drawn as ours draws them (numpy, seeded alike) instead of the scripts' python
    ``random.choice``, so both sides train the same cells; a test may replace it with scripted cells.
    """

    #: the xautodl network this baseline's script drives (a key of :data:`NETWORKS`)
    network: ClassVar[str] = ""

    def __init__(
        self,
        protocol: Protocol,
        hparams: Any = None,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        seed: int = 0,
        num_classes: int = 10,
    ):
        p = self.protocol = protocol
        self.hparams = hparams
        self.set_to_none = p.sgd_semantics == "none"
        self.grad_clip = p.grad_clip
        self.rng = np.random.default_rng(seed)
        net = xautodl_network(self.network, p.C, p.N, num_classes, p.affine, p.track_running_stats)
        self.net = net.to(device, dtype)
        self.net.train()
        weights = self.net.get_weights() if hasattr(self.net, "get_weights") else self.net.parameters()
        self.w_optimizer = protocol_sgd(weights, p)
        self.a_optimizer = None
        if isinstance(getattr(self.net, "arch_parameters", None), torch.nn.Parameter):
            self.a_optimizer = torch.optim.Adam(
                [self.net.arch_parameters], lr=p.arch_lr, betas=tuple(p.arch_betas), weight_decay=p.arch_weight_decay
            )

    # -- what the timing harness and the tests call --------------------------------------------------------------
    @classmethod
    def check_installed(cls) -> None:
        """Raise :class:`ReferenceMissing` (one line) when xautodl is not installed."""
        require_xautodl()

    def initial_state(self) -> dict[str, torch.Tensor]:
        """The network's state dict (for :func:`nasbench_suite.supernet.load_reference_state_dict`)."""
        return self.net.state_dict()

    def arch_parameters(self) -> torch.Tensor | None:
        """The network's arch parameters (6 x 5 alpha), or None."""
        return self.net.arch_parameters.detach() if self.a_optimizer is not None else None

    def begin_epoch(self, epoch: int) -> None:
        """The script's per-epoch schedule (GDAS's tau); the learning rate is the caller's."""

    def step(self, train_batch: Batch, valid_batch: Batch) -> dict[str, float]:
        """One search step of the script; returns ``train_loss`` (and ``valid_loss`` where it has an arch step)."""
        raise NotImplementedError

    def sample_cell(self) -> Cell:
        """A uniformly random cell for a weight step, drawn as ours draws it."""
        return sample_cell(self.rng)

    def set_cell(self, cell: Cell) -> None:
        """Make the network compute ``cell`` (for scoring candidates)."""
        raise NotImplementedError(f"{type(self).__name__} does not score cells")

    @torch.no_grad()
    def score_cells(self, cells: Iterable[Cell], batches: Iterator[Batch]) -> list[float]:
        """get_best_arch / search_find_best: each candidate's top-1 (%) on the next batch, network in eval mode."""
        self.net.eval()
        scores = []
        for cell, (x, y) in zip(cells, batches):
            self.set_cell(cell)
            scores.append((logits(self.net, x).argmax(1) == y).double().mean().item() * 100)
        self.net.train()
        return scores

    # -- the scripts' pieces -------------------------------------------------------------------------------------
    def clipped_weight_step(self, x: torch.Tensor, y: torch.Tensor, zero_grad: bool = True) -> float:
        """The scripts' weight step: zero_grad (unless the caller zeroed the network itself), backward, clip over
        ``network.parameters()`` (arch parameters included; a protocol clip of 0 = none, NATS-Bench's script), SGD
        step; returns the loss."""
        if zero_grad:
            self.w_optimizer.zero_grad(set_to_none=self.set_to_none)
        loss = F.cross_entropy(logits(self.net, x), y)
        loss.backward()
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.grad_clip)
        self.w_optimizer.step()
        return loss.item()

    def arch_step(self, xv: torch.Tensor, yv: torch.Tensor) -> float:
        """An Adam step on alpha whose full backward also fills the weights' gradients; returns the loss."""
        self.a_optimizer.zero_grad(set_to_none=self.set_to_none)
        arch_loss = F.cross_entropy(logits(self.net, xv), yv)
        arch_loss.backward()
        self.a_optimizer.step()
        return arch_loss.item()
