"""Step timing: every method's search step against its reference implementation, in one process.

Both sides run in the same process, on the same device, with the same weights (the reference network's initial
weights are copied into our supernet with :func:`~nasbench_suite.supernet.load_reference_state_dict`, the alphas
too), on the same pre-drawn batches, and are timed interleaved (A B B A A B ...) so that load from other processes
on a shared machine hits both alike. What is reported is the median of each side and their ratio; absolute times on
a shared machine mean little.

Reference = the method's own reference step (``OneShotMethod.reference``, see :func:`reference_class`): for the
baselines, ``nasbench_suite_baselines.reference``: what the method's NB201 script (D-X-Y/AutoDL-Projects
``exps/NAS-Bench-201-algos``) does per batch on the xautodl network, eager. The reference tests
(``tests/test_baselines_reference.py``) compare ours with the same classes step by step, so the timed reference is
the tested one. This module names no method.

Ours = the registered method's ``search_step`` on a real :class:`~nasbench_suite.method.SearchContext`. Methods
that are not registered (yet) are skipped with a note; a method without a reference is timed alone.

``time_steps`` is the library entry point; ``nas-suite time-steps`` (alias ``nas-suite bench``) prints the table
(``--json`` for machines).
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

from .analysis.aggregate import METHOD_ORDER
from .data.sources import CIFAR10_MEAN, CIFAR10_STD
from .errors import ConfigError, NasSuiteError

#: Timing sizes. ``batch=None`` = the protocol's batch size (nb201 preset: 64, or the method's own).
SIZES: dict[str, dict[str, Any]] = {
    "search": {"C": 16, "N": 5, "hw": 32, "batch": None},
    "quick": {"C": 8, "N": 1, "hw": 16, "batch": 16},
    "tiny": {"C": 4, "N": 1, "hw": 8, "batch": 8},  # smoke tests
}
DEFAULT_METHODS = METHOD_ORDER  # every built-in method, in the reports' order


class ReferenceMissing(NasSuiteError):
    """A method's reference implementation (xautodl, for the baselines) is not installed."""


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
def reference_class(method: str) -> type | None:
    """The reference step class the method names (``OneShotMethod.reference``, ``"module:Class"``), or None.

    Such a class is built as ``cls(protocol, hparams, device=..., dtype=..., seed=...)`` and offers
    ``initial_state()`` (the network's state dict), ``arch_parameters()`` (alpha or None), ``begin_epoch(epoch)``
    and ``step(train_batch, valid_batch) -> dict``; it raises :class:`ReferenceMissing` when its implementation is
    not installed. The class's module is imported here, its implementation only when it is built."""
    import importlib

    from .method import get_method

    where = get_method(method).reference
    if where is None:
        return None
    module, _, attr = where.partition(":")
    return getattr(importlib.import_module(module), attr)


# --- our side --------------------------------------------------------------------------------------------------------
def timing_protocol(method: str, size: str, batch: int | None = None):
    """The nb201 protocol of ``method`` at timing ``size`` (and ``batch`` if given), resolved like a run's."""
    from .config import RunSpec, resolve
    from .method import get_method

    if size not in SIZES:
        raise ConfigError(f"unknown timing size {size!r}; choose one of: {', '.join(SIZES)}")
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
        if seed is not None:  # both sides draw the same torch/python random numbers in step i (the same sampled cells)
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


def time_one(
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
    config = timing_protocol(method, size, batch)
    p = config.protocol
    torch.manual_seed(seed)
    random.seed(seed)
    ref_cls = reference_class(method) if reference else None
    ref = ref_cls(p, config.hparams, device=device, seed=seed) if ref_cls is not None else None
    ours = OurStepper(
        method,
        config,
        device,
        ref_state=ref.initial_state() if ref else None,
        ref_alpha=ref.arch_parameters() if ref else None,
        fast=fast,
        seed=seed,
    )
    t_ours, t_ref = _time_interleaved(
        ours, ref, _batch_pool(p.batch_size, SIZES[size]["hw"], device, seed, fast), device, steps, warmup, seed
    )
    res = _result(method, fast, p.batch_size, steps, device, t_ours, t_ref)
    notes = [ours.note] if ours.note else []
    if ref is None:
        has_ref = reference_class(method) is not None
        notes.append("reference off" if has_ref else "no reference implementation: ours only")
    res.note = "; ".join(notes)
    return res


def _batch_pool(batch_size: int, hw: int, device, seed: int, fast: FastOptions) -> tuple[list, list]:
    """A small pool of pre-drawn (train, valid) batches, the same for both sides (data loading is not part of the
    step): (the reference's, ours: the same in channels-last memory when asked)."""
    n_img = max(4 * batch_size, 256)
    tr = make_stream(n_img, hw, batch_size, device, seed * 2 + 1)
    va = make_stream(n_img, hw, batch_size, device, seed * 2 + 2)
    pool = [(next(tr), next(va)) for _ in range(4)]
    if not fast.channels_last:
        return pool, pool
    cl = torch.channels_last
    ours = [((a[0].contiguous(memory_format=cl), a[1]), (b[0].contiguous(memory_format=cl), b[1])) for a, b in pool]
    return pool, ours


def _time_interleaved(ours, ref, pools, device, steps: int, warmup: int, seed: int) -> tuple[_Timer, _Timer]:
    """``warmup`` untimed then ``steps`` timed steps per side, A B, B A, A B, ...: neither side always runs first;
    step i of both sides draws the same torch/python random numbers."""
    pool, pool_ours = pools
    t_ours, t_ref = _Timer(device), _Timer(device)
    for i in range(warmup):
        t_ours(ours.step, *pool_ours[i % 4], record=False, seed=seed * 100_003 + i)
        if ref:
            t_ref(ref.step, *pool[i % 4], record=False, seed=seed * 100_003 + i)
    for i in range(steps):
        b, s = i % 4, seed * 100_003 + warmup + i
        if ref is None:
            t_ours(ours.step, *pool_ours[b], seed=s)
        elif i % 2 == 0:
            t_ref(ref.step, *pool[b], seed=s)
            t_ours(ours.step, *pool_ours[b], seed=s)
        else:
            t_ours(ours.step, *pool_ours[b], seed=s)
            t_ref(ref.step, *pool[b], seed=s)
    return t_ours, t_ref


def _result(method, fast, batch_size, steps, device, t_ours: _Timer, t_ref: _Timer) -> StepTiming:
    """Medians, ratios, last losses and peak memory of both sides."""
    res = StepTiming(method, fast.label, batch=batch_size, steps=steps)
    if not steps:
        return res
    res.ours_all_ms = [1e3 * t for t in t_ours.times]
    res.ours_ms = statistics.median(res.ours_all_ms)
    res.steps_per_s = 1e3 / res.ours_ms
    res.ours_loss = _first_loss(t_ours.last)
    if device.type == "cuda":
        res.ours_peak_mib = t_ours.peak
    if t_ref.times:
        res.ref_all_ms = [1e3 * t for t in t_ref.times]
        res.ref_ms = statistics.median(res.ref_all_ms)
        res.ratio = res.ref_ms / res.ours_ms
        res.pair_ratio = statistics.median(r / o for r, o in zip(res.ref_all_ms, res.ours_all_ms))
        res.ref_loss = _first_loss(t_ref.last)
        if device.type == "cuda":
            res.ref_peak_mib = t_ref.peak
    return res


def time_steps(
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
    """Time the steps of ``methods``; returns ``{"results": [...], "notes": [...], "env": {...}}``.

    ``json=True`` returns plain JSON-ready data (the per-step lists included); ``echo`` (e.g. ``print``) receives
    one line per finished method. Raises :class:`ReferenceMissing` when ``reference`` is on and a method's
    reference implementation is not installed.
    """
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda but torch sees no CUDA device")
    names, notes = available_methods(methods)
    for m in names if reference else ():  # one clear error before anything runs, not a note per method
        if (ref_cls := reference_class(m)) is not None:
            ref_cls.check_installed()
    results: list[StepTiming] = []
    for m in names:
        try:
            r = time_one(
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
@click.command("time-steps")
@click.option("--methods", default=",".join(DEFAULT_METHODS), show_default=True, help="comma-separated methods")
@click.option(
    "--size",
    type=click.Choice(sorted(SIZES)),
    default="search",
    show_default=True,
    help="search = C=16, N=5, 32x32, the nb201 batch (64, or the method's own); quick = C=8, N=1, 16x16, batch 16",
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
@click.option("--no-reference", is_flag=True, help="time ours only (no reference implementation needed)")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of the table")
def time_steps_cmd(
    methods, size, device, batch, steps, warmup, threads, amp, tf32, channels_last, compile_, no_reference, as_json
) -> None:
    """Time one search step of every method against its reference implementation (same process, interleaved)."""
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
    out = time_steps(
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
