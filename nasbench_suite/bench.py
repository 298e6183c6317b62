"""Step-time benchmark: every method's search step against the reference implementation (xautodl) of the same method.

Both sides run in the same process, on the same device, with the same weights (the reference network's initial
weights are copied into our supernet with :func:`~nasbench_suite.supernet.load_reference_state_dict`, the alphas
too), on the same pre-drawn batches, and are timed interleaved (A B B A A B ...) so that load from other processes
on a shared machine hits both alike. What is reported is the median of each side and their ratio; absolute times on
a shared machine mean little.

Reference step = what the NB201 script of the method (D-X-Y/AutoDL-Projects ``exps/NAS-Bench-201-algos``) does per
batch, eager fp32, on the xautodl network:

* DARTS-V1 (``TinyNetworkDarts``): weight step (clip 5) on the train batch, then an Adam step on alpha.
* DARTS-V2: the script's ``backward_step_unrolled`` (virtual SGD step, finite-difference Hessian-vector product),
  Adam step on alpha, then the weight step.
* GDAS (``TinyNetworkGDAS.forward``: Gumbel sample, hard one-hot, ``forward_gdas``): weight step then arch step.
* SETN (``TinyNetworkSETN``): weight step on a uniformly random cell (``dync_genotype(True)``, mode ``dynamic``),
  then the arch step in mode ``joint``.
* RSPS (``TinyNetworkRANDOM``): ``random_genotype(True)``, weight step.
* ENAS (``TinyNetworkENAS`` + its ``Controller``): a controller sample (no grad), ``update_arch``, weight step.

Ours = the registered method's ``search_step`` on a real :class:`~nasbench_suite.method.SearchContext`. Methods
that are not registered (yet) are skipped with a note; a method without an xautodl counterpart (E2NAS) is timed
alone.

``bench_steps`` is the library entry point; ``nas-suite bench`` prints the table (``--json`` for machines).
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import click
import numpy as np
import torch
import torch.nn as nn

from .analysis.aggregate import METHOD_ORDER
from .data.sources import CIFAR10_MEAN, CIFAR10_STD
from .errors import ConfigError, NasSuiteError

XAUTODL_HINT = "the benchmark's reference needs xautodl 1.0.0: pip install --no-deps xautodl"

#: Benchmark sizes. ``batch=None`` = the protocol's batch size (nb201 preset: 64, ENAS 128).
SIZES: dict[str, dict[str, Any]] = {
    "search": {"C": 16, "N": 5, "hw": 32, "batch": None},
    "quick": {"C": 8, "N": 1, "hw": 16, "batch": 16},
    "tiny": {"C": 4, "N": 1, "hw": 8, "batch": 8},  # smoke tests
}
#: Our method name -> the xautodl network that the method's NB201 script drives.
REFERENCE_KIND = {
    "darts-v1": "darts",
    "darts-v2": "darts",
    "gdas": "gdas",
    "setn": "setn",
    "rsps": "random",
    "enas": "enas",
}
DEFAULT_METHODS = METHOD_ORDER  # every built-in method, in the reports' order


class ReferenceMissing(NasSuiteError):
    """xautodl (the reference implementation) is not installed."""


# --- fast options (ours only; the reference always runs eager fp32) ------------------------------------------------
@dataclass(frozen=True)
class FastOptions:
    """Opt-in GPU pipeline options for our side (see :func:`nasbench_suite.supernet.apply_fast_options`)."""

    amp: str = "off"  # "off" | "bf16"
    tf32: bool = False
    channels_last: bool = False
    compile: str = "off"  # "off" | "default" | "reduce-overhead" | "max-autotune"

    @property
    def label(self) -> str:
        parts = [f"amp={self.amp}"] if self.amp != "off" else []
        parts += ["tf32"] if self.tf32 else []
        parts += ["channels_last"] if self.channels_last else []
        parts += [f"compile={self.compile}"] if self.compile != "off" else []
        return ",".join(parts) or "eager"


EAGER = FastOptions()


@contextlib.contextmanager
def _tf32(enabled: bool):
    """TF32 matmuls for our side only (cuDNN convolutions already default to TF32 in PyTorch, for both sides)."""
    if not enabled:
        yield
        return
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


# --- the reference side ----------------------------------------------------------------------------------------------
def require_xautodl() -> None:
    """Raise :class:`ReferenceMissing` (one line) when xautodl cannot be imported."""
    try:
        import xautodl.models.cell_searchs  # noqa: F401
    except ImportError:
        raise ReferenceMissing(XAUTODL_HINT) from None


def reference_network(kind: str, C: int, N: int, num_classes: int = 10, affine: bool = False, track: bool = True):
    """The xautodl NB201 search network of ``kind`` (darts, gdas, setn, random, enas)."""
    require_xautodl()
    from xautodl.models.cell_searchs import (
        search_model_darts,
        search_model_enas,
        search_model_gdas,
        search_model_random,
        search_model_setn,
    )

    from .space import OPS

    cls = {
        "darts": search_model_darts.TinyNetworkDarts,
        "gdas": search_model_gdas.TinyNetworkGDAS,
        "setn": search_model_setn.TinyNetworkSETN,
        "random": search_model_random.TinyNetworkRANDOM,
        "enas": search_model_enas.TinyNetworkENAS,
    }[kind]
    return cls(C, N, 4, num_classes, list(OPS), affine, track)


def _concat(xs) -> torch.Tensor:
    return torch.cat([x.reshape(-1) for x in xs])


class ReferenceStepper:
    """One method's NB201 script step on the xautodl network (eager fp32, exactly the script's sequence)."""

    def __init__(self, method: str, protocol, device: torch.device, seed: int = 0):
        p = protocol
        self.method, self.kind = method, REFERENCE_KIND[method]
        # The uniformly random cells of RSPS's and SETN's weight steps: drawn as ours draws them (numpy, seeded
        # alike) instead of the scripts' python `random.choice`, so both sides train the same cells and the test can
        # compare their losses; the drawing itself is a negligible part of a step.
        self.rng = np.random.default_rng(seed)
        self.net = reference_network(self.kind, p.C, p.N, 10, p.affine, p.track_running_stats).to(device)
        self.net.train()
        weights = self.net.get_weights() if hasattr(self.net, "get_weights") else self.net.parameters()
        self.w_optimizer = torch.optim.SGD(
            weights, lr=p.lr, momentum=p.momentum, weight_decay=p.weight_decay, nesterov=p.nesterov
        )
        self.a_optimizer = None
        if hasattr(self.net, "arch_parameters"):
            self.a_optimizer = torch.optim.Adam(
                [self.net.arch_parameters], lr=p.arch_lr, betas=tuple(p.arch_betas), weight_decay=p.arch_weight_decay
            )
        self.controller = None
        if self.kind == "enas":
            self.controller = self.net.create_controller().to(device)
        if self.kind == "gdas":
            self.net.set_tau(10.0)
        self.criterion = nn.CrossEntropyLoss()
        self.grad_clip = p.grad_clip

    def initial_state(self) -> dict[str, torch.Tensor]:
        return self.net.state_dict()

    def _weight_step(self, x, y) -> torch.Tensor:
        self.w_optimizer.zero_grad()
        _, logits = self.net(x)
        loss = self.criterion(logits, y)
        loss.backward()
        nn.utils.clip_grad_norm_(self.net.parameters(), self.grad_clip)
        self.w_optimizer.step()
        return loss

    def _arch_step(self, x, y) -> torch.Tensor:
        self.a_optimizer.zero_grad()
        _, logits = self.net(x)
        loss = self.criterion(logits, y)
        loss.backward()
        self.a_optimizer.step()
        return loss

    def step(self, train_batch, valid_batch) -> dict[str, float]:
        (x, y), (xv, yv) = train_batch, valid_batch
        net = self.net
        if self.method == "darts-v1" or self.method == "gdas":
            loss = self._weight_step(x, y)
            arch_loss = self._arch_step(xv, yv)
            return {"train_loss": loss.item(), "valid_loss": arch_loss.item()}
        if self.method == "darts-v2":
            self.a_optimizer.zero_grad()
            arch_loss = self._unrolled_arch_grad(x, y, xv, yv)
            self.a_optimizer.step()
            loss = self._weight_step(x, y)
            return {"train_loss": loss.item(), "valid_loss": arch_loss.item()}
        if self.method == "setn":
            net.set_cal_mode("dynamic", self._random_structure())
            loss = self._weight_step(x, y)
            net.set_cal_mode("joint")
            arch_loss = self._arch_step(xv, yv)
            return {"train_loss": loss.item(), "valid_loss": arch_loss.item()}
        if self.method == "rsps":
            net.arch_cache = self._random_structure()  # what random_genotype(True) sets
            return {"train_loss": self._weight_step(x, y).item()}
        if self.method == "enas":
            self.controller.eval()
            with torch.no_grad():
                _, _, sampled = self.controller()
            net.update_arch(sampled)
            return {"train_loss": self._weight_step(x, y).item()}
        raise ValueError(self.method)

    def _random_structure(self):
        from xautodl.models.cell_searchs.genotypes import Structure

        from .space import sample_cell

        return Structure.str2structure(sample_cell(self.rng).arch_str)

    # DARTS-V2.py: backward_step_unrolled + _hessian_vector_product (without the DataParallel ``.module``)
    def _unrolled_arch_grad(self, x, y, xv, yv) -> torch.Tensor:
        import copy

        net, opt = self.net, self.w_optimizer
        _, logits = net(x)
        loss = self.criterion(logits, y)
        g = opt.param_groups[0]
        lr, wd, momentum = g["lr"], g["weight_decay"], g["momentum"]
        weights = net.get_weights()
        with torch.no_grad():
            theta = _concat(weights)
            try:
                moment = _concat(opt.state[v]["momentum_buffer"] for v in weights).mul_(momentum)
            except KeyError:
                moment = torch.zeros_like(theta)
        dtheta = _concat(torch.autograd.grad(loss, weights)) + wd * theta
        with torch.no_grad():
            params = theta.sub(moment + dtheta, alpha=lr)
        unrolled = copy.deepcopy(net)
        model_dict = unrolled.state_dict()
        new_params, offset = {}, 0
        for k, v in net.named_parameters():
            if "arch_parameters" in k:
                continue
            n = v.numel()
            new_params[k] = params[offset : offset + n].view(v.size())
            offset += n
        model_dict.update(new_params)
        unrolled.load_state_dict(model_dict)
        unrolled.zero_grad()
        _, unrolled_logits = unrolled(xv)
        unrolled_loss = self.criterion(unrolled_logits, yv)
        unrolled_loss.backward()
        dalpha = unrolled.arch_parameters.grad
        vector = [v.grad.data for v in unrolled.get_weights()]
        r = 1e-2
        R = r / _concat(vector).norm()
        grads = []
        for sign in (1.0, -2.0, 1.0):
            with torch.no_grad():
                for p_, v in zip(weights, vector):
                    p_.add_(v, alpha=sign * R)
            if len(grads) < 2:
                _, lg = net(x)
                grads.append(torch.autograd.grad(self.criterion(lg, y), [net.arch_parameters])[0])
        implicit = (grads[0] - grads[1]).div_(2 * R)
        dalpha = dalpha - lr * implicit
        net.arch_parameters.grad = dalpha.detach().clone()
        return unrolled_loss.detach()


# --- our side --------------------------------------------------------------------------------------------------------
def bench_protocol(method: str, size: str, batch: int | None = None):
    """The nb201 protocol of ``method`` at benchmark ``size`` (and ``batch`` if given), resolved like a run's."""
    from .config import RunSpec, resolve
    from .method import get_method

    if size not in SIZES:
        raise ConfigError(f"unknown benchmark size {size!r}; choose one of: {', '.join(SIZES)}")
    s = SIZES[size]
    overrides = {"C": str(s["C"]), "N": str(s["N"])}
    bs = batch if batch is not None else s["batch"]
    if bs is not None:
        overrides["batch_size"] = str(bs)
    cls = get_method(method)
    spec = RunSpec(cls.name, 0, "nb201", tuple(sorted(overrides.items())))
    return resolve(spec, cls.Hparams, cls.name)


def make_stream(n: int, hw: int, batch: int, device, seed: int, channels_last: bool = False):
    """A :class:`BatchStream` over ``n`` random uint8 CIFAR-shaped images (the real augmentation pipeline)."""
    from .data.batches import BatchStream

    g = np.random.default_rng(seed)
    images = g.integers(0, 256, size=(n, hw, hw, 3), dtype=np.uint8)
    labels = g.integers(0, 10, size=n)
    return BatchStream(
        images,
        labels,
        mean=CIFAR10_MEAN,
        std=CIFAR10_STD,
        pad=hw // 8,
        batch_size=batch,
        device=device,
        seed=seed,
        channels_last=channels_last,
    )


class OurStepper:
    """A registered method on a real :class:`SearchContext` (built as the runner builds it)."""

    def __init__(
        self,
        method: str,
        config,
        device: torch.device,
        ref_state=None,
        ref_alpha=None,
        fast: FastOptions = EAGER,
        seed: int = 0,
    ):
        from .method import get_method, make_context
        from .supernet import Supernet, SupernetConfig, load_reference_state_dict

        p = config.protocol
        cls = get_method(method)
        self.fast = fast
        self.net = Supernet(SupernetConfig(p.C, p.N, 10, p.affine, p.track_running_stats))
        if ref_state is not None:
            load_reference_state_dict(self.net, ref_state)
        self.net.to(device).train()
        if fast != EAGER:
            from .supernet import apply_fast_options

            apply_fast_options(self.net, amp=fast.amp, channels_last=fast.channels_last, compile=fast.compile)
        hw = next((v["hw"] for v in SIZES.values() if v["C"] == p.C), 32)
        sel = min(p.select_batch_size, 256)

        def selection_batches(epoch: int, augment: bool | None = None, salt: int = 0) -> Iterator:
            # (the runner's signature; synthetic images, so the transform does not matter for timing)
            return make_stream(max(sel, 64), hw, sel, device, 10_000 + epoch + 1_000_003 * salt, fast.channels_last)

        self.ctx = make_context(
            self.net, p, seed=seed, steps_per_epoch=391, device=device, selection_batches=selection_batches
        )
        self.w_optimizer = self.ctx.w_optimizer
        self.method, self.note = cls.for_timing(config.hparams)
        self.method.setup(self.ctx)
        if ref_alpha is not None:
            arch = self.method.arch_parameters()
            if len(arch) == 1 and arch[0].shape == ref_alpha.shape:
                with torch.no_grad():
                    arch[0].copy_(ref_alpha)
        self.method.begin_epoch(0)
        self._step = 0

    def step(self, train_batch, valid_batch) -> dict[str, float]:
        with _tf32(self.fast.tf32):
            out = self.method.search_step(train_batch, valid_batch, 0, self._step)
        self._step += 1
        return out


# --- timing ----------------------------------------------------------------------------------------------------------
@dataclass
class StepTiming:
    """One method's result."""

    method: str
    options: str
    ours_ms: float | None = None
    ref_ms: float | None = None
    ratio: float | None = None  # ref / ours (medians); > 1 = ours faster
    pair_ratio: float | None = None  # median over interleaved pairs of ref/ours
    steps_per_s: float | None = None  # ours
    ours_peak_mib: float | None = None
    ref_peak_mib: float | None = None
    ours_loss: float | None = None
    ref_loss: float | None = None
    batch: int = 0
    steps: int = 0
    note: str = ""
    ours_all_ms: list[float] = field(default_factory=list)
    ref_all_ms: list[float] = field(default_factory=list)


def device_sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA), so a wall-clock reading covers it; a no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Timer:
    """Times one step of one side; on CUDA also the step's peak memory above what was allocated before it."""

    def __init__(self, device: torch.device):
        self.device = device
        self.times: list[float] = []
        self.peak = 0.0
        self.last: dict[str, float] = {}

    def __call__(self, fn: Callable, *args, record: bool = True, seed: int | None = None) -> None:
        cuda = self.device.type == "cuda"
        if seed is not None:  # both sides draw the same torch/python random numbers in step i (same GDAS cells)
            torch.manual_seed(seed)
            random.seed(seed)
        device_sync(self.device)
        if cuda:
            base = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        t0 = time.perf_counter()
        self.last = fn(*args)
        device_sync(self.device)
        dt = time.perf_counter() - t0
        if record:
            self.times.append(dt)
            if cuda:
                self.peak = max(self.peak, (torch.cuda.max_memory_allocated(self.device) - base) / 2**20)


def _first_loss(out: dict[str, float]) -> float | None:
    for k in ("train_loss", "loss", "valid_loss"):
        if k in out:
            return float(out[k])
    return None


def available_methods(methods: Sequence[str]) -> tuple[list[str], list[str]]:
    """(registered canonical names, notes for the names that are not registered yet)."""
    from .method import canonical_name

    ok, notes = [], []
    for m in methods:
        try:
            c = canonical_name(m)
        except ConfigError:
            notes.append(f"{m}: not registered in this checkout (skipped)")
            continue
        if c not in ok:
            ok.append(c)
    return ok, notes


def bench_one(
    method: str,
    *,
    size: str = "search",
    device: str | torch.device = "cpu",
    batch: int | None = None,
    steps: int = 10,
    warmup: int = 2,
    fast: FastOptions = EAGER,
    reference: bool = True,
    seed: int = 0,
) -> StepTiming:
    """Time ``steps`` search steps of ``method``, ours and (if it has one) the reference, interleaved."""
    device = torch.device(device)
    config = bench_protocol(method, size, batch)
    p = config.protocol
    hw = SIZES[size]["hw"]
    torch.manual_seed(seed)
    random.seed(seed)
    has_ref = reference and method in REFERENCE_KIND
    ref = ReferenceStepper(method, p, device, seed) if has_ref else None
    ours = OurStepper(
        method,
        config,
        device,
        ref_state=ref.initial_state() if ref else None,
        ref_alpha=ref.net.arch_parameters.detach() if ref is not None and ref.a_optimizer is not None else None,
        fast=fast,
        seed=seed,
    )
    # A small pool of pre-drawn batches, the same for both sides: data loading is not part of the step.
    n_img = max(4 * p.batch_size, 256)
    tr = make_stream(n_img, hw, p.batch_size, device, seed * 2 + 1)
    va = make_stream(n_img, hw, p.batch_size, device, seed * 2 + 2)
    pool = [(next(tr), next(va)) for _ in range(4)]
    if fast.channels_last:
        cl = torch.channels_last
        pool_ours = [
            ((a[0].contiguous(memory_format=cl), a[1]), (b[0].contiguous(memory_format=cl), b[1])) for a, b in pool
        ]
    else:
        pool_ours = pool
    t_ours, t_ref = _Timer(device), _Timer(device)
    for i in range(warmup):
        t_ours(ours.step, *pool_ours[i % 4], record=False, seed=seed * 100_003 + i)
        if ref:
            t_ref(ref.step, *pool[i % 4], record=False, seed=seed * 100_003 + i)
    for i in range(steps):
        b, s = i % 4, seed * 100_003 + warmup + i
        if ref is None:
            t_ours(ours.step, *pool_ours[b], seed=s)
        elif i % 2 == 0:  # A B, B A, A B, ...: neither side always runs first
            t_ref(ref.step, *pool[b], seed=s)
            t_ours(ours.step, *pool_ours[b], seed=s)
        else:
            t_ours(ours.step, *pool_ours[b], seed=s)
            t_ref(ref.step, *pool[b], seed=s)
    res = StepTiming(method, fast.label, batch=p.batch_size, steps=steps)
    if steps:
        res.ours_all_ms = [1e3 * t for t in t_ours.times]
        res.ours_ms = statistics.median(res.ours_all_ms)
        res.steps_per_s = 1e3 / res.ours_ms
        res.ours_loss = _first_loss(t_ours.last)
        if device.type == "cuda":
            res.ours_peak_mib = t_ours.peak
        if ref:
            res.ref_all_ms = [1e3 * t for t in t_ref.times]
            res.ref_ms = statistics.median(res.ref_all_ms)
            res.ratio = res.ref_ms / res.ours_ms
            res.pair_ratio = statistics.median(r / o for r, o in zip(res.ref_all_ms, res.ours_all_ms))
            res.ref_loss = _first_loss(t_ref.last)
            if device.type == "cuda":
                res.ref_peak_mib = t_ref.peak
    notes = [ours.note] if ours.note else []
    if not has_ref:
        notes.append("no xautodl counterpart: ours only" if method not in REFERENCE_KIND else "reference off")
    res.note = "; ".join(notes)
    return res


def bench_steps(
    methods: Sequence[str] = DEFAULT_METHODS,
    size: str = "search",
    device: str = "cpu",
    batch: int | None = None,
    steps: int = 10,
    warmup: int = 2,
    json: bool = False,
    fast: FastOptions = EAGER,
    reference: bool = True,
    echo: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Benchmark ``methods``; returns ``{"results": [...], "notes": [...], "env": {...}}``.

    ``json=True`` returns plain JSON-ready data (the per-step lists included); ``echo`` (e.g. ``print``) receives
    one line per finished method. Raises :class:`ReferenceMissing` when ``reference`` is on and xautodl is absent.
    """
    if reference:
        require_xautodl()
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda but torch sees no CUDA device")
    names, notes = available_methods(methods)
    results: list[StepTiming] = []
    for m in names:
        try:
            r = bench_one(
                m, size=size, device=dev, batch=batch, steps=steps, warmup=warmup, fast=fast, reference=reference
            )
        except NasSuiteError as e:  # e.g. a method's missing artefact: skip it, keep the others
            notes.append(f"{m}: skipped ({e})")
            continue
        results.append(r)
        if echo:
            echo(format_row(r))
    out = {"results": [asdict(r) for r in results] if json else results, "notes": notes, "env": environment(dev)}
    out["env"].update(size=size, steps=steps, warmup=warmup, options=fast.label)
    return out


def environment(device: torch.device) -> dict[str, Any]:
    import platform

    env = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        env["device"] = torch.cuda.get_device_name(device)
    try:
        import xautodl

        env["xautodl"] = getattr(xautodl, "__version__", "installed")
    except ImportError:
        env["xautodl"] = None
    return env


def _f(v, fmt="{:.1f}") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)


HEADER = f"{'method':<10} {'options':<28} {'ours ms':>9} {'ref ms':>9} {'ref/ours':>9} {'steps/s':>8} {'peak MiB':>15}"


def format_row(r: StepTiming) -> str:
    peak = "n/a (CPU)" if r.ours_peak_mib is None else f"{r.ours_peak_mib:.0f}/{_f(r.ref_peak_mib, '{:.0f}')}"
    line = (
        f"{r.method:<10} {r.options:<28} {_f(r.ours_ms):>9} {_f(r.ref_ms):>9} {_f(r.ratio, '{:.2f}x'):>9} "
        f"{_f(r.steps_per_s, '{:.2f}'):>8} {peak:>15}"
    )
    return line + (f"  ({r.note})" if r.note else "")


# --- command line ----------------------------------------------------------------------------------------------------
@click.command("bench")
@click.option("--methods", default=",".join(DEFAULT_METHODS), show_default=True, help="comma-separated methods")
@click.option(
    "--size",
    type=click.Choice(sorted(SIZES)),
    default="search",
    show_default=True,
    help="search = C=16, N=5, 32x32, batch 64 (ENAS 128); quick = C=8, N=1, 16x16, batch 16",
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1")
@click.option("--batch", type=int, default=None, help="override the batch size (default: the protocol's)")
@click.option("--steps", type=int, default=10, show_default=True, help="timed steps per side")
@click.option("--warmup", type=int, default=2, show_default=True, help="untimed steps per side first")
@click.option("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
@click.option("--amp", type=click.Choice(["off", "bf16"]), default="off", show_default=True, help="ours: autocast")
@click.option("--tf32", is_flag=True, help="ours: TF32 matmuls")
@click.option("--channels-last", is_flag=True, help="ours: channels-last tensors")
@click.option(
    "--compile",
    "compile_",
    type=click.Choice(["off", "default", "reduce-overhead", "max-autotune"]),
    default="off",
    show_default=True,
    help="ours: torch.compile of the mixture forward",
)
@click.option("--no-reference", is_flag=True, help="time ours only (no xautodl needed)")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of the table")
def bench(
    methods, size, device, batch, steps, warmup, threads, amp, tf32, channels_last, compile_, no_reference, as_json
) -> None:
    """Time one search step of every method against the xautodl reference (same process, interleaved)."""
    if steps < 1 or warmup < 0:
        raise ConfigError("--steps must be >= 1 and --warmup >= 0")
    if threads:
        torch.set_num_threads(threads)
    names = [m for m in (s.strip() for s in methods.split(",")) if m]
    if not names:
        raise ConfigError("--methods needs at least one method name")
    fast = FastOptions(amp=amp, tf32=tf32, channels_last=channels_last, compile=compile_)
    if not as_json:
        click.echo(HEADER)
    out = bench_steps(
        names,
        size,
        device,
        batch,
        steps,
        warmup,
        json=as_json,
        fast=fast,
        reference=not no_reference,
        echo=None if as_json else click.echo,
    )
    if as_json:
        click.echo(json.dumps(out, indent=1))
        return
    for n in out["notes"]:
        click.echo(f"note: {n}")
    env = out["env"]
    click.echo(
        f"{env['device']}, torch {env['torch']}, {env['threads']} threads, medians of {steps} interleaved "
        "steps; ref/ours > 1 means ours is faster"
    )


if __name__ == "__main__":  # pragma: no cover
    bench()
