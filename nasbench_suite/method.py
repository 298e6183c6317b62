"""The one interface every search method implements, and the registry of methods.

A new method is one class in one file::

    @register("my-method", aliases=("mm",))
    class MyMethod(OneShotMethod):
        display_name = "My method"

        @dataclass(frozen=True)
        class Hparams:          # the method's own knobs; settable with --set key=value
            temperature: float = 1.0

        def setup(self, ctx): ...
        def search_step(self, train_batch, valid_batch, epoch, step) -> dict: ...
        def derive(self) -> Cell: ...

plus an import line in :func:`_load_builtin_methods`. The runner owns the loop, the data, the weight optimiser
(``ctx.weight_step``), the learning-rate schedule, checkpoints, timing and benchmark queries; the method owns what
makes it different. The generic conformance tests run every registered method automatically.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import Protocol
from .errors import ConfigError
from .sgd import masked_sgd_step
from .space import Cell
from .supernet import Supernet


@dataclass(frozen=True)
class NoHparams:
    """A method without hyperparameters of its own."""


Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class SearchContext:
    """What the runner gives a method in :meth:`OneShotMethod.setup`.

    ``rng`` is the method's numpy generator for discrete sampling (checkpointed by the runner); torch's global RNG
    (also checkpointed) serves tensor noise. ``selection_batches(epoch, augment=None, salt=0)`` yields validation
    batches (``select_batch_size``, test transform unless the protocol's ``select_augment``) from a fresh stream
    seeded by (seed, epoch, salt), so deriving a cell never perturbs the search itself; ``salt`` gives another
    independent pass (ENAS's controller phase).
    """

    supernet: Supernet
    protocol: Protocol
    device: torch.device
    seed: int
    epochs: int
    steps_per_epoch: int
    rng: np.random.Generator
    w_optimizer: torch.optim.Optimizer
    selection_batches: Callable[..., Iterator[Batch]]

    def weight_step(
        self,
        loss: torch.Tensor,
        also_clip: tuple[torch.Tensor, ...] = (),
        keep_also_clip_grads: bool = False,
        clip: bool = True,
    ) -> None:
        """Backward ``loss`` into the supernet weights, clip (protocol's grad_clip) and take one SGD step.

        The SGD step is the reference's per-op one under the protocol's ``sgd_semantics`` (``zero``: PyTorch 1.x,
        every (edge, op) that has had a gradient keeps getting weight decay and momentum; ``none``: PyTorch >= 2,
        only those in this step's graph), exact per (edge, op) row of the fused parameters: see
        :mod:`nasbench_suite.sgd`.
        ``also_clip``: tensors whose gradients enter the clipping norm too. The reference scripts clip
        ``network.parameters()``, which includes the arch parameters (their gradient from this backward is
        discarded by the arch optimiser's zero_grad, but it changes the weights' clip factor).
        ``keep_also_clip_grads``: do not clear those tensors' gradients first, so this backward accumulates onto
        them - what the reference does, since its ``w_optimizer.zero_grad()`` leaves the arch gradient of the
        previous arch step in place (the method must then checkpoint that gradient for an exact resume).
        ``clip=False``: no clipping (SETN's NB201 script).
        """
        semantics = self.protocol.sgd_semantics
        self.supernet.begin_weight_step(semantics)
        self.w_optimizer.zero_grad(set_to_none=True)
        for t in also_clip if not keep_also_clip_grads else ():
            t.grad = None
        loss.backward()
        if clip and self.protocol.grad_clip > 0:  # 0 = no clipping (NATS-Bench's script)
            nn.utils.clip_grad_norm_([*self.supernet.parameters(), *also_clip], self.protocol.grad_clip)
        masks, skip = self.supernet.sgd_row_masks()
        masked_sgd_step(self.w_optimizer, masks, skip)

    def arch_adam(self, params) -> torch.optim.Adam:
        """The protocol's arch optimiser (Adam, arch_lr, arch_betas, arch_weight_decay) over ``params``."""
        p = self.protocol
        return torch.optim.Adam(params, lr=p.arch_lr, betas=tuple(p.arch_betas), weight_decay=p.arch_weight_decay)


def protocol_sgd(params, protocol: Protocol) -> torch.optim.SGD:
    """The protocol's weight optimiser (SGD, lr, momentum, nesterov, weight_decay) over ``params``."""
    p = protocol
    return torch.optim.SGD(params, lr=p.lr, momentum=p.momentum, nesterov=p.nesterov, weight_decay=p.weight_decay)


def _no_selection(epoch: int, augment: bool | None = None, salt: int = 0) -> Iterator[Batch]:
    return iter(())


def make_context(
    supernet: Supernet,
    protocol: Protocol,
    *,
    seed: int,
    steps_per_epoch: int,
    selection_batches: Callable[..., Iterator[Batch]] | None = None,
    w_optimizer: torch.optim.Optimizer | None = None,
    device: torch.device | None = None,
    epochs: int | None = None,
) -> SearchContext:
    """The one way a :class:`SearchContext` is built (runner, timing harnesses, probe, tests).

    Defaults: the protocol's SGD over the supernet's parameters (:func:`protocol_sgd`), ``rng`` seeded by
    ``seed``, the protocol's ``epochs``, the CPU, and no selection batches (an empty stream)."""
    return SearchContext(
        supernet=supernet,
        protocol=protocol,
        device=device if device is not None else torch.device("cpu"),
        seed=seed,
        epochs=protocol.epochs if epochs is None else epochs,
        steps_per_epoch=steps_per_epoch,
        rng=np.random.default_rng(seed),
        w_optimizer=w_optimizer if w_optimizer is not None else protocol_sgd(supernet.parameters(), protocol),
        selection_batches=selection_batches if selection_batches is not None else _no_selection,
    )


class OneShotMethod(ABC):
    """Base class of every search method. Subclasses register with :func:`register`."""

    name: ClassVar[str] = ""
    display_name: ClassVar[str] = ""
    Hparams: ClassVar[type] = NoHparams
    #: named sweeps (``nas-suite run --grid NAME``): each a list of ``--set`` mappings, one stored run per point
    grids: ClassVar[dict[str, list[dict[str, str]]]] = {}
    #: ``"module:Class"`` of the method's reference step: its original implementation driven step by step (e.g.
    #: ``nasbench_suite_baselines.reference``), which the step-timing harness times against ours and the reference
    #: tests compare with ours; None: no reference (timed alone). See :func:`nasbench_suite.timing.reference_class`.
    reference: ClassVar[str | None] = None

    def __init__(self, hparams: Any = None):
        self.hparams = hparams if hparams is not None else self.Hparams()
        self.ctx: SearchContext | None = None

    @classmethod
    def for_timing(cls, hparams: Any) -> tuple[OneShotMethod, str]:
        """An instance for the step-timing harness (:mod:`nasbench_suite.timing`), and a note for its table.

        A method whose run loads an artefact from disk may override this to use a stand-in of the same cost when
        the artefact is absent (the note then says so); the harness names no method."""
        return cls(hparams), ""

    # -- the contract ------------------------------------------------------------------------------------------
    def setup(self, ctx: SearchContext) -> None:
        """Create arch parameters, controllers and optimisers. Called once, before any checkpoint is loaded."""
        self.ctx = ctx

    def begin_epoch(self, epoch: int) -> None:
        """Per-epoch schedules that apply during the epoch (e.g. GDAS's tau)."""

    @abstractmethod
    def search_step(self, train_batch: Batch, valid_batch: Batch, epoch: int, step: int) -> dict[str, float]:
        """One search step; returns scalars to log (``train_loss``/``train_acc``/``valid_loss``/``valid_acc``...)."""

    def end_epoch(self, epoch: int) -> None:
        """Per-epoch schedules applied after the epoch."""

    @abstractmethod
    def derive(self, epoch: int) -> Cell:
        """The method's current discrete answer (may score candidates on ``ctx.selection_batches(epoch)``)."""

    # -- vectorized seeds (optional; nasbench_suite.seedgroup) ---------------------------------------------------
    #: what of the method's epoch stays per seed when its seeds are vectorized (shown by ``nas-suite methods``)
    vectorize_note: ClassVar[str] = ""

    @classmethod
    def vectorize_reason(cls, hparams: Any) -> str:
        """Why K seeds of this method under ``hparams`` cannot run as one vectorized search; "" = they can (the
        class defines :meth:`group_step`). Shown by ``nas-suite methods``."""
        if cls.group_step.__func__ is OneShotMethod.group_step.__func__:
            return "no group_step: its seeds run one by one"
        return ""

    @classmethod
    def group_step(cls, group: Any, train_batch: Batch, valid_batch: Batch, epoch: int, step: int) -> list[dict]:
        """K seeds' :meth:`search_step` at once, one log dict per seed. ``group``: a
        :class:`nasbench_suite.seedgroup.SeedGroup` (``group.members`` are the K method objects, ``group.net`` the
        stacked supernet); the batches are stacked per seed, ``x`` (K, B, ...), ``y`` (K, B). Each seed's result must
        be its own :meth:`search_step`'s: same random draws (from its ``ctx.rng`` and, inside ``group.rng(k)``,
        torch's), same arithmetic."""
        raise NotImplementedError(f"{cls.name} has no vectorized step")

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly (arch parameters, optimiser states, method-side buffers)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""

    def arch_parameters(self) -> list[torch.Tensor]:
        """The architecture parameters (empty for methods without them)."""
        return []

    def arch_distribution(self) -> np.ndarray | torch.Tensor | None:
        """The method's current architecture distribution: a (6 edges x 5 ops) array whose rows sum to 1, or None
        (no distribution to show). Called by the runner once after each epoch (search dynamics: stored in the
        epoch line with its entropy); it must not draw from any random stream nor change any state."""
        return None

    def variant(self) -> str:
        """The row label in reports; a method may return a named variant (e.g. "E2NAS (official code)")."""
        return self.display_name or self.name

    def run_info(self) -> dict[str, Any]:
        """Extra provenance recorded with the run (e.g. a model artefact's hash)."""
        return {}

    # -- helpers shared by methods -----------------------------------------------------------------------------
    def best_of(self, cells: list[Cell], epoch: int) -> Cell:
        """The candidate with the best :meth:`score_cells` accuracy on ``ctx.selection_batches(epoch)`` (the first
        best on ties, as the reference's ``np.argmax``)."""
        scores = self.score_cells(cells, self.ctx.selection_batches(epoch))
        return cells[int(np.argmax(scores))]

    @torch.no_grad()
    def score_cells(self, cells: list[Cell], batches: Iterator[Batch]) -> list[float]:
        """Accuracy (%) of each cell on the next batch of ``batches`` (one batch per candidate, as the reference)."""
        net = self.ctx.supernet
        was_training = net.training
        net.eval()
        scores = []
        for cell in cells:
            x, y = next(batches)
            scores.append(accuracy(net.forward_cell(x, cell), y))
        net.train(was_training)
        return scores


def accuracy(logits: torch.Tensor, target: torch.Tensor) -> float:
    """Top-1 accuracy in percent."""
    return float((logits.argmax(1) == target).float().mean().item() * 100.0)


def ce_and_acc(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Cross-entropy loss and top-1 accuracy (%)."""
    return F.cross_entropy(logits, target), accuracy(logits.detach(), target)


def plain_state(obj: Any) -> Any:
    """``obj`` with numpy arrays and scalars turned into lists and numbers (dicts, lists, tuples kept).

    Checkpoints are loaded with ``torch.load(weights_only=True)``, which accepts tensors and plain python data
    but no numpy objects; numpy's RNG setters take the lists back as they are.
    """
    if isinstance(obj, dict):
        return {k: plain_state(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain_state(v) for v in obj)
    if isinstance(obj, (np.ndarray, np.generic)):
        return obj.tolist()
    return obj


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """A snapshot of a numpy generator in plain python data (fits a ``weights_only`` checkpoint)."""
    return plain_state(rng.bit_generator.state)


def set_rng_state(rng: np.random.Generator, state: dict[str, Any]) -> None:
    """Restore a snapshot taken by :func:`rng_state`."""
    rng.bit_generator.state = state


# --- registry ----------------------------------------------------------------------------------------------------
_REGISTRY: dict[str, type[OneShotMethod]] = {}
_ALIASES: dict[str, str] = {}
#: Entry-point group through which other installed packages contribute methods (see :func:`_load_plugins`).
PLUGIN_GROUP = "nas_suite.methods"
_PLUGINS: dict[str, Any] = {"loaded": False, "error": None}


def register(name: str, aliases: tuple[str, ...] = ()):
    """Class decorator: make a method available under ``name`` (and ``aliases``).

    A name or alias another method already uses is refused with a :class:`ConfigError` naming both, before
    anything is registered (registering the same class again is a no-op).
    """

    def deco(cls: type[OneShotMethod]) -> type[OneShotMethod]:
        if _REGISTRY.get(name) is cls:
            return cls
        where = f"{cls.__module__}.{cls.__qualname__}"
        for key in (name, *aliases):
            owner = _REGISTRY.get(key) or _REGISTRY.get(_ALIASES.get(key, ""))
            if owner is not None and owner is not cls:
                kind = "name" if key == name else "alias"
                raise ConfigError(
                    f"method {name!r} ({where}) cannot use the {kind} {key!r}: it already means method "
                    f"{owner.name!r} ({owner.__module__}.{owner.__qualname__}); choose another {kind}"
                )
        cls.name = name
        _REGISTRY[name] = cls
        for a in aliases:
            _ALIASES[a] = name
        return cls

    return deco


def _load_builtin_methods() -> None:
    # Importing a module registers its methods. Keep this list the only place built-in methods are named.
    from .imports import import_optional

    for module in (
        "nasbench_suite_baselines.rsps",
        "nasbench_suite_baselines.darts_v1",
        "nasbench_suite_baselines.darts_v2",
        "nasbench_suite_baselines.gdas",
        "nasbench_suite_baselines.setn",
        "nasbench_suite_baselines.enas",
        "nasbench_suite_methods.e2nas.search",
    ):
        import_optional(module)  # a method package that is not installed is skipped
    _load_plugins()


def _load_plugins() -> None:
    """Methods of other installed packages: each entry point of group ``nas_suite.methods`` names a method class
    (``my-method = my_pkg.search:MyMethod``; registered under the entry point's name unless the class registers
    itself with :func:`register`) or a module whose import registers its methods. Loaded once per process, after
    the built-ins, so a plugin can never take a built-in's name or alias: that is a ConfigError naming the plugin.
    """
    if _PLUGINS["error"] is not None:  # a broken plugin is reported every time, not only the first
        raise ConfigError(_PLUGINS["error"])
    if _PLUGINS["loaded"]:
        return
    import importlib.metadata

    _PLUGINS["loaded"] = True
    for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        dist = getattr(ep.dist, "name", None) or "an installed package"
        where = f"method plugin {ep.name!r} = {ep.value} (from {dist})"
        try:
            obj = ep.load()
            if isinstance(obj, type) and issubclass(obj, OneShotMethod) and obj not in _REGISTRY.values():
                register(ep.name)(obj)
            elif not (isinstance(obj, type) or hasattr(obj, "__path__") or hasattr(obj, "__file__")):
                raise ConfigError(f"it names {obj!r}, not a OneShotMethod subclass or a module")
        except Exception as e:  # noqa: BLE001 - any failure inside someone else's package: say whose, what to do
            _PLUGINS["error"] = f"{where}: {e}; fix or uninstall {dist}"
            raise ConfigError(_PLUGINS["error"]) from e


def method_names() -> list[str]:
    """Registered method names."""
    _load_builtin_methods()
    return sorted(_REGISTRY)


def method_aliases() -> dict[str, str]:
    """Alias -> canonical name."""
    _load_builtin_methods()
    return dict(_ALIASES)


def canonical_name(name: str) -> str:
    """Resolve an alias; an unknown name is a :class:`ConfigError` listing the known ones."""
    _load_builtin_methods()
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        known = ", ".join(sorted(set(_REGISTRY) | set(_ALIASES)))
        raise ConfigError(f"unknown method {name!r}; known methods: {known}")
    return key


def get_method(name: str) -> type[OneShotMethod]:
    """The method class registered under ``name`` or an alias."""
    return _REGISTRY[canonical_name(name)]
