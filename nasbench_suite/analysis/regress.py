"""Regression check: rerun a small deterministic configuration of every registered method and compare it with a
stored baseline.

The baseline folder (``results/regression`` by default) holds ``plan.json`` (what to run: protocol preset, seed,
``--set`` overrides, tolerances, and the machine that wrote it) and one compact ``<method>.json`` per method: per
epoch the derived cell and the train/valid losses, and the final cell. Cells must match exactly; losses within
``rtol``/``atol`` (``|got - expected| <= atol + rtol * |expected|``).

The numbers must not depend on the machine: float32 CPU kernels sum in an order that depends on the instruction set
(oneDNN's convolutions, ATen's vectorised loops, MKL), and two epochs of training amplify that to ~1e-3 in the
losses and to different cells. The plan therefore runs in float64 with oneDNN off, deterministic algorithms on and
one intra-op thread (torch's thread count, restored afterwards). The spread measured across instruction sets
(``ATEN_CPU_CAPABILITY`` default / avx2 / avx512, ``ONEDNN_MAX_CPU_ISA`` and ``MKL_ENABLE_INSTRUCTIONS`` alike)
and the tolerance chosen from it are in ``docs/performance.md`` ("Portable regression").
"""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config import RunSpec
from ..errors import ConfigError, NasSuiteError, StoreError
from ..records import EpochMetrics, RunRecord
from ..store import atomic_write_json

# Measured spread across instruction sets (float64, oneDNN off): <= 4.1e-16 relative in every loss, cells identical
# (docs/performance.md); the smallest behavioural change the mutation test makes moves a loss by far more than 1e-8.
RTOL, ATOL = 1e-10, 1e-10
DEFAULT_PLAN: dict[str, Any] = {
    "protocol": "quick",
    "seed": 0,
    # grad_clip 1.5: this configuration's weight-gradient norms are 1-2.2, so at the protocol's 5 clipping would
    # never act and a change to it (SETN clipping, DARTS' arch gradient in the clip norm) would go unseen
    # derive_every 1: every epoch's cell is compared (the quick preset derives the scored methods' cells every 4th)
    "overrides": {
        "epochs": "2",
        "grad_clip": "1.5",
        "derive_every": "1",
        "dtype": "float64",
        "onednn": "false",
        "deterministic": "true",
    },
    "rtol": RTOL,
    "atol": ATOL,
    "threads": 1,
}
PLAN_FILE = "plan.json"
MACHINE_KEY = "machine"  # in plan.json and in each method's file: where the baseline's numbers were computed
LOSS_KEYS = ("train_loss", "valid_loss")
#: Environment variables that cap the instruction set the CPU kernels use (the portability test varies them).
ISA_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR")


def machine_info() -> dict[str, Any]:
    """Where numbers are computed: the CPU model, the instruction set torch's kernels dispatch to (and the
    environment variables that capped it), the torch build and its BLAS."""
    cpu = platform.processor()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8", errors="replace"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu or platform.machine(),
        "isa": torch.backends.cpu.get_cpu_capability(),
        "isa_env": {k: os.environ[k] for k in ISA_ENV if k in os.environ},
        "torch": torch.__version__,
        "torch_commit": (torch.version.git_version or "")[:12],
        "blas": "MKL" if torch.backends.mkl.is_available() else "other",
        "python": platform.python_version(),
        "os": platform.platform(terse=True),
    }


def describe_machine(m: dict[str, Any] | None) -> str:
    """One line for a :func:`machine_info` dict (or "unknown" for baselines written before it was recorded)."""
    if not m:
        return "unknown (recorded before machines were)"
    env = ", ".join(f"{k}={v}" for k, v in m.get("isa_env", {}).items())
    return f"{m.get('cpu')} [{m.get('isa')}{'; ' + env if env else ''}], torch {m.get('torch')} ({m.get('blas')})"


@dataclass
class Diff:
    """One mismatch between the baseline and the rerun."""

    method: str
    epoch: int | None  # None: the final cell
    field: str
    expected: Any
    got: Any

    def __str__(self) -> str:
        where = "final" if self.epoch is None else f"epoch {self.epoch}"
        return f"{self.method} {where} {self.field}: expected {self.expected!r}, got {self.got!r}"


@dataclass
class RegressReport:
    """Outcome of :func:`regress`. ``ok`` is False on any diff, any method without a baseline, any baseline of
    a method that is no longer registered, or any method that could not run."""

    baseline: Path
    plan: dict[str, Any]
    checked: list[str] = field(default_factory=list)
    diffs: list[Diff] = field(default_factory=list)
    not_in_baseline: list[str] = field(default_factory=list)
    not_registered: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # method -> why it could not run
    machine: dict[str, Any] = field(default_factory=machine_info)  # where this check ran

    @property
    def ok(self) -> bool:
        return not (self.diffs or self.not_in_baseline or self.not_registered or self.errors)

    def format(self) -> str:
        """A readable summary: one line per problem."""
        lines = []
        if self.updated:
            lines.append(f"baseline {self.baseline} updated for: {', '.join(self.updated)}")
        tol = f"rtol {self.plan.get('rtol')}, atol {self.plan.get('atol')}"
        lines.append(f"ran on: {describe_machine(self.machine)}")
        if self.checked:
            lines.append(f"checked {', '.join(self.checked)} against {self.baseline} (cells exact, losses {tol})")
            lines.append(f"baseline written on: {describe_machine(self.plan.get(MACHINE_KEY))}")
        for m in self.not_in_baseline:
            lines.append(f"FAIL {m}: registered but absent from the baseline; run `nas-suite regress --update`")
        for m in self.not_registered:
            lines.append(f"FAIL {m}: in the baseline but not a registered method (removed or renamed?)")
        lines += [f"FAIL {m}: could not run: {e}" for m, e in self.errors.items()]
        lines += [f"FAIL {d}" for d in self.diffs]
        if not self.updated:
            lines.append("OK: no regression" if self.ok else f"REGRESSION: {len(self.diffs)} difference(s)")
        return "\n".join(lines)

    __str__ = format

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "baseline": str(self.baseline),
            "plan": self.plan,
            "checked": self.checked,
            "diffs": [d.__dict__ for d in self.diffs],
            "not_in_baseline": self.not_in_baseline,
            "not_registered": self.not_registered,
            "updated": self.updated,
            "errors": self.errors,
            "machine": self.machine,
        }


def compact(record: RunRecord, epochs: list[EpochMetrics]) -> dict[str, Any]:
    """The facts a baseline keeps of one run: per-epoch cell and losses, the final cell."""
    return {
        "method": record.method,
        "variant": record.variant,
        "code_version": record.code_version,
        "epochs": [{"epoch": e.epoch, "arch": e.arch, **{k: getattr(e, k) for k in LOSS_KEYS}} for e in epochs],
        "final_arch": record.final.arch,
        MACHINE_KEY: machine_info(),
    }


def _close(a: Any, b: Any, rtol: float, atol: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(b - a) <= atol + rtol * abs(a)


def compare(method: str, expected: dict[str, Any], got: dict[str, Any], rtol: float, atol: float) -> list[Diff]:
    """Differences between two compact results of ``method``."""
    diffs = []
    exp_e = {e["epoch"]: e for e in expected["epochs"]}
    got_e = {e["epoch"]: e for e in got["epochs"]}
    for ep in sorted(set(exp_e) | set(got_e)):
        if ep not in got_e or ep not in exp_e:
            diffs.append(Diff(method, ep, "epoch present", ep in exp_e, ep in got_e))
            continue
        x, y = exp_e[ep], got_e[ep]
        if x["arch"] != y["arch"]:
            diffs.append(Diff(method, ep, "arch", x["arch"], y["arch"]))
        for k in LOSS_KEYS:
            if not _close(x.get(k), y.get(k), rtol, atol):
                diffs.append(Diff(method, ep, k, x.get(k), y.get(k)))
    if expected["final_arch"] != got["final_arch"]:
        diffs.append(Diff(method, None, "arch", expected["final_arch"], got["final_arch"]))
    return diffs


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise StoreError(f"regression baseline file {path} is unreadable ({e}); recreate it with --update") from None


def run_plan(method: str, plan: dict[str, Any], results: Path) -> dict[str, Any]:
    """Run ``method`` under ``plan`` into ``results`` (always afresh) and return its compact facts."""
    from ..ownership import run_one
    from ..runner import RunOptions
    from ..store import Store, read_metrics

    spec = RunSpec(
        method, int(plan["seed"]), plan["protocol"], tuple(sorted((k, str(v)) for k, v in plan["overrides"].items()))
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(int(plan.get("threads", 1)))
    try:
        record = run_one(spec, RunOptions(results=results, force=True))
    finally:
        torch.set_num_threads(threads)
    return compact(record, read_metrics(Store(results).metrics_path(spec.run_id)))


def _resolve_plan(
    plan_path: Path, update: bool, methods: list[str] | None, plan: dict[str, Any] | None
) -> dict[str, Any]:
    """The plan a check runs under: the stored one (with the defaults of keys it predates), or, when updating, the
    given one, else the stored one, else :data:`DEFAULT_PLAN`. A plan change needs every method and ``update``."""
    if update:
        old = _read_json(plan_path) if plan_path.exists() else None
        plan = {**DEFAULT_PLAN, **(plan or old or {})}
        if methods and old is not None and {**DEFAULT_PLAN, **old} != plan:
            # the other methods' baselines were made under the old plan: they would silently stop matching
            raise ConfigError("changing the regression plan needs all methods (update without a method list)")
        return plan
    if plan is not None:
        raise ConfigError("a regression plan can only be changed together with update=True (--update)")
    if not plan_path.exists():
        raise StoreError(
            f"no regression baseline at {plan_path.parent} (no {PLAN_FILE}); create one with `nas-suite regress --update`"
        )
    return {**DEFAULT_PLAN, **_read_json(plan_path)}


def regress(
    results_baseline: Path = Path("results/regression"),
    update: bool = False,
    workdir: Path | None = None,
    methods: list[str] | None = None,
    plan: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> RegressReport:
    """Rerun the regression plan for ``methods`` (default: every registered method) and compare with the baseline.

    ``update=True`` (re)writes the baseline for those methods (and ``plan.json``: ``plan`` if given, else the
    stored one, else :data:`DEFAULT_PLAN`); with every method, baselines of unregistered methods are removed.
    Without ``update``, the stored ``plan.json`` decides what runs (``plan`` must then be None).
    A method that cannot run (a user-fixable :class:`NasSuiteError`, e.g. missing weights) is reported in
    ``errors`` and fails the check; the other methods still run.
    ``workdir``: where the runs are written (kept); default a temporary folder, removed afterwards.
    """
    from ..method import canonical_name, method_names

    base = Path(results_baseline)
    plan_path = base / PLAN_FILE
    registered = method_names()
    selected = [canonical_name(m) for m in methods] if methods else registered
    plan = _resolve_plan(plan_path, update, methods, plan)
    report = RegressReport(base, plan)
    stored = {p.stem for p in base.glob("*.json") if p.name != PLAN_FILE} if base.is_dir() else set()

    with tempfile.TemporaryDirectory(prefix="nas-regress-") as tmp:
        results = Path(workdir) if workdir is not None else Path(tmp)
        for m in selected:
            if not update and m not in stored:
                report.not_in_baseline.append(m)
                continue
            if progress:
                progress(f"regression: running {m} ({plan['protocol']}, seed {plan['seed']}, {plan['overrides']})")
            try:
                got = run_plan(m, plan, results)
            except NasSuiteError as e:  # e.g. a method's missing artefact: report it, check the others
                report.errors[m] = str(e)
                continue
            if update:
                atomic_write_json(base / f"{m}.json", got)
                report.updated.append(m)
            else:
                report.checked.append(m)
                report.diffs += compare(
                    m, _read_json(base / f"{m}.json"), got, float(plan["rtol"]), float(plan["atol"])
                )
    if update:
        atomic_write_json(plan_path, {**plan, MACHINE_KEY: report.machine})
        if not methods:
            for stale in sorted(stored - set(registered)):
                (base / f"{stale}.json").unlink()
    elif not methods:
        report.not_registered = sorted(stored - set(registered))
    return report
