"""nas-suite: fair, fast comparison of one-shot NAS methods on NAS-Bench-201.

The Python API, for notebooks and scripts (the ``nas-suite`` CLI is a thin layer over the same functions)::

    import nasbench_suite as ns
    runs = ns.load_runs("results")        # .runs, .epochs: pandas DataFrames; .records; .problems
    print(ns.report("results"))           # the Markdown tables; format="csv" | "latex" | "json" | "html"
    bench = ns.open_benchmark(None)       # the embedded table, or a NATS-Bench folder / NB201 .pth path
    outcomes = ns.run(["rsps", "darts"], seeds=2, results="results")   # what `nas-suite run` does

Imports are lazy, so ``import nasbench_suite`` stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable, Iterable

    from .analysis.frames import LoadedRuns
    from .benchmarks import Benchmark
    from .executors import Outcome

__all__ = ["__version__", "load_runs", "open_benchmark", "report", "run"]


def load_runs(path: str | Path = "results") -> LoadedRuns:
    """Every finished run stored under ``path`` as tidy frames (see
    :class:`nasbench_suite.analysis.frames.LoadedRuns` for the columns): ``.runs`` (one row per run), ``.epochs``
    (one row per run and epoch, every scalar the run recorded), ``.records`` (each run's
    :class:`~nasbench_suite.records.RunRecord` by run id; ``.to_json()`` gives the stored JSON) and ``.problems``
    (what could not be read)."""
    from .analysis.frames import load_runs as _load

    return _load(path)


def report(
    path: str | Path = "results",
    format: str = "md",
    out: str | Path | None = None,
    benchmark: Any = None,
    published: bool = True,
) -> str:
    """The report of the runs under ``path``, as the CLI's ``nas-suite report`` renders it; returns its text (for
    ``html``, the page) and writes the files into ``out`` when given. ``benchmark``: a Benchmark or a path, for
    the optimum row; ``published``: add the published reference rows."""
    from .analysis import render_report

    bench = benchmark if benchmark is None or hasattr(benchmark, "optimum") else open_benchmark(benchmark)
    return render_report(
        Path(path), format, Path(out) if out is not None else None, benchmark=bench, published=published
    )


def open_benchmark(path: str | Path | None = None) -> Benchmark:
    """A benchmark: ``None`` for the embedded table, a NATS-Bench ``-simple`` folder, or an NB201 ``.pth`` file."""
    from .benchmarks import open_benchmark as _open

    return _open(path)


def run(
    methods: str | Iterable[str],
    seeds: int = 1,
    *,
    seed_start: int = 0,
    protocol: str = "quick",
    dataset: str | None = None,
    sets: Iterable[str] = (),
    grid: str | None = None,
    results: str | Path = "results",
    data_root: str | Path | None = None,
    benchmark: str | Path | None = None,
    device: str | None = None,
    workers: int = 1,
    force: bool = False,
    vectorize: str = "auto",
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> list[Outcome]:
    """Search as ``nas-suite run`` does: ``methods`` (names or aliases, a list or comma-separated) x ``seeds`` (x the ``grid``'s points), each
    run stored under ``results``; returns one :class:`~nasbench_suite.executors.Outcome` per run. The plan is checked
    first (:func:`nasbench_suite.preflight.preflight`: settings, data, benchmark opened once, device, results folder;
    a :class:`NasSuiteError` before anything runs); ``sets``: ``"key=value"`` overrides; ``workers > 1``: a local
    pool of processes; ``vectorize``: as ``--vectorize`` (the seeds of a method as one search: ``auto`` on a GPU);
    ``progress`` receives the step and epoch events of :mod:`nasbench_suite.progress`."""
    from .config import parse_set
    from .executors import run_inprocess, run_pool
    from .method import canonical_name
    from .plan import build_plan
    from .preflight import preflight
    from .runner import RunOptions

    listed = methods.split(",") if isinstance(methods, str) else methods
    names = list(dict.fromkeys(canonical_name(m) for m in listed))
    plan = build_plan(names, range(seed_start, seed_start + seeds), protocol, dataset, parse_set(tuple(sets)), grid)
    root = Path(data_root) if data_root is not None else None
    checked = preflight(
        plan, Path(results), data_root=root, benchmark=benchmark, device=device, force=force, vectorize=vectorize
    )
    options = RunOptions(Path(results), root, benchmark, checked.device, force, vectorize=vectorize)
    if workers == 1:
        return run_inprocess(plan, options, progress, benchmark=checked.benchmark)
    return run_pool(plan, options, workers, progress=progress)
