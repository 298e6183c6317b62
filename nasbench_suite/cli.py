"""The ``nas-suite`` command line: thin click commands that parse, call the library and print.

Every error a user can cause is a :class:`NasSuiteError`; :func:`main` turns it into one line on stderr and exit
code 2, with no traceback. Nothing stored is touched before the inputs are checked.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from .errors import ConfigError, NasSuiteError

DEFAULT_RESULTS = Path("results")
#: a plan with more runs than this is refused at once (a typo, not a study); one above CONFIRM_RUNS needs --yes
MAX_SEEDS = 100_000
CONFIRM_RUNS = 1000


def _results_folder(value) -> Path:
    # click turns "" into Path("."): an empty --results would silently write into the working directory
    if not str(value).strip():
        raise ConfigError("--results needs a folder, got an empty string")
    return Path(value)


def _methods_list(value: str) -> list[str]:
    from .method import canonical_name

    names = [v for v in (s.strip() for s in value.split(",")) if v]
    if not names:
        raise ConfigError("--methods needs at least one method name")
    out: list[str] = []
    for n in names:
        c = canonical_name(n)
        if c not in out:
            out.append(c)
    return out


class LazyGroup(click.Group):
    """A click group whose extra commands are imported only when one of them runs (click's LazyGroup pattern).

    ``lazy_commands`` maps a command name to ``("module:attribute", short help)``. The short help is given here so
    that ``--help`` can list a command without importing it (several of these modules import torch, which alone
    takes seconds); ``tests/test_cli_lazy.py`` checks it equals the command's own. A command whose module is not
    installed (an optional method package) is listed but answers "No such command".
    """

    def __init__(self, *args, lazy_commands: dict[str, tuple[str, str]] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands or name not in self.lazy_commands:
            return super().get_command(ctx, name)
        return self._load(name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in self.commands:
                cmd = self.commands[name]
                if not cmd.hidden:
                    rows.append((name, cmd.get_short_help_str(formatter.width - 6 - len(name))))  # as click does
            else:
                limit = formatter.width - 6 - len(name)  # as click.Group.format_commands
                rows.append((name, click.utils.make_default_short_help(self.lazy_commands[name][1], limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def _load(self, name: str) -> click.Command | None:
        from .imports import import_optional

        module, _, attr = self.lazy_commands[name][0].partition(":")
        mod = import_optional(module)
        if mod is None:
            return None
        cmd = getattr(mod, attr)
        self.commands[name] = cmd  # imported once
        return cmd


#: Commands living in other modules (method packages contribute groups, e.g. `nas-suite e2nas train-vae`).
LAZY_COMMANDS = {
    "bench": (
        "nasbench_suite.bench:bench",
        "Time one search step of every method against the xautodl reference (same process, interleaved).",
    ),
    "e2nas": ("methods.e2nas.cli:e2nas", "E2NAS: train the graph autoencoder, check its gates."),
    "probe-search": (
        "nasbench_suite.probe:probe_search_cmd",
        "Run each method's arch update alone on a known additive landscape; report the reached cells' rank.",
    ),
    "regress": (
        "nasbench_suite.analysis.cli:regress",
        "Rerun a small deterministic configuration of every method and compare it with the stored baseline.",
    ),
}


@click.group(cls=LazyGroup, lazy_commands=LAZY_COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nas-suite")
def cli() -> None:
    """Compare one-shot NAS methods on NAS-Bench-201: search, query, store, report."""
    _log_to_stderr()


class _EchoHandler(logging.Handler):
    """The library's log records as plain lines on the command's stderr (looked up at each record, so a test's
    captured stderr gets them too)."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(self.format(record), err=True)


def _log_to_stderr() -> None:
    # Library code logs through `logging` (a notebook routes or silences it); the CLI shows its warnings as the one
    # line each that docs/errors.md lists, without a level prefix.
    logger = logging.getLogger("nasbench_suite")
    if not any(isinstance(h, _EchoHandler) for h in logger.handlers):
        handler = _EchoHandler(logging.WARNING)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)


@cli.command()
@click.option("--methods", "methods", default="rsps,darts", show_default=True, help="comma-separated method names")
@click.option("--seeds", type=int, default=1, show_default=True, help="number of seeds per method")
@click.option("--seed-start", type=int, default=0, show_default=True, help="first seed")
@click.option("--dataset", default=None, help="search dataset (default: the protocol's)")
@click.option("--protocol", default=None, help="protocol preset: quick, nb201 or nats (default: quick)")
@click.option("--data-root", type=click.Path(path_type=Path), default=None, help="folder with the dataset files")
@click.option("--benchmark", type=click.Path(path_type=Path), default=None, help="NB201 .pth or NATS -simple folder")
@click.option("--results", type=click.Path(), default=str(DEFAULT_RESULTS), show_default=True)
@click.option("--workers", type=int, default=1, show_default=True, help="parallel worker processes (GPU slots)")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="override a protocol or method setting")
@click.option("--grid", default=None, help="run a named grid of settings (e.g. gamma, eps for e2nas)")
@click.option("--force", is_flag=True, help="rerun runs that are already stored")
@click.option("--yes", is_flag=True, help=f"run a plan of more than {CONFIRM_RUNS} runs")
@click.option("--quiet", is_flag=True, help="no progress output")
@click.option("--json", "as_json", is_flag=True, help="print the outcomes as JSON")
@click.option(
    "--executor",
    type=click.Choice(["inprocess", "local", "slurm", "submitit-local"]),
    default=None,
    help="where runs execute: inprocess (default for --workers 1), local (a pool of --workers processes, "
    "one GPU each; default for --workers > 1), slurm (one job per run, a job array), "
    "submitit-local (the slurm path run on this machine, for checking a setup)",
)
@click.option("--partition", default=None, help="slurm: partition to submit to")
@click.option("--gpus-per-job", type=int, default=1, show_default=True, help="slurm: GPUs per job (0: CPU jobs)")
@click.option(
    "--time-limit",
    type=int,
    default=240,
    show_default=True,
    help="slurm: minutes per job; a longer run is checkpointed, requeued and resumed",
)
@click.option("--array-parallelism", type=int, default=64, show_default=True, help="slurm: jobs running at once")
@click.option(
    "--cluster-log-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="slurm: folder for job scripts and logs (default: RESULTS/submitit)",
)
def run(
    methods,
    seeds,
    seed_start,
    dataset,
    protocol,
    data_root,
    benchmark,
    results,
    workers,
    device,
    sets,
    grid,
    force,
    yes,
    quiet,
    as_json,
    executor,
    partition,
    gpus_per_job,
    time_limit,
    array_parallelism,
    cluster_log_dir,
) -> None:
    """Search with METHODS x SEEDS, query the benchmark, store one record per run."""
    import dataclasses

    from .config import MAX_SEED, parse_set, resolve
    from .executors import run_inprocess, run_pool
    from .method import get_method
    from .plan import build_plan
    from .runner import RunOptions
    from .store import Store

    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    if seed_start < 0:
        raise ConfigError(f"--seed-start must be >= 0, got {seed_start}")
    if seeds > MAX_SEEDS:
        raise ConfigError(f"--seeds {seeds} is more than any study needs (at most {MAX_SEEDS})")
    if seed_start + seeds - 1 > MAX_SEED:
        raise ConfigError(f"--seed-start {seed_start} with --seeds {seeds} goes past the largest seed, {MAX_SEED}")
    results = _results_folder(results)
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    executor = executor or ("inprocess" if workers == 1 else "local")
    copts = None
    if executor in ("slurm", "submitit-local"):
        from .cluster import ClusterOptions

        copts = ClusterOptions(executor, partition, gpus_per_job, time_limit, array_parallelism, cluster_log_dir)
        copts.check()
    names = _methods_list(methods)
    overrides = parse_set(sets)
    embedded = protocol is None and data_root is None and benchmark is None
    protocol = protocol or "quick"
    plan = build_plan(names, range(seed_start, seed_start + seeds), protocol, dataset, overrides, grid)
    if len(plan) > CONFIRM_RUNS and not yes:
        raise ConfigError(
            f"the plan has {len(plan)} runs ({len(names)} method(s) x {seeds} seed(s)"
            f"{' x the grid' if grid else ''}); add --yes to run them all"
        )
    # Check every spec resolves (unknown keys, bad types, values out of range) before anything runs; the seed
    # plays no part in that, so each distinct configuration is resolved once.
    protocols = {}
    for spec in plan:
        key = dataclasses.replace(spec, seed=0)
        if key not in protocols:
            cls = get_method(spec.method)
            protocols[key] = resolve(spec, cls.Hparams, cls.name).protocol
    datasets = {p.dataset for p in protocols.values()}
    # for an ETA from the first epochs on, not only after the first run
    say = (lambda *a, **k: None) if quiet or as_json else (lambda *a, **k: click.echo(*a, err=True, **k))
    # Loading a dataset or a benchmark file to check it can take a while: say so if it does (a quick refusal
    # stays the one line of its error).
    import threading

    slow = threading.Timer(1.0, say, (f"plan: {len(plan)} run(s); checking the data and benchmark files...",))
    slow.daemon = True
    slow.start()
    try:
        if data_root is not None and not data_root.exists():
            from .errors import DataError

            raise DataError(f"data root {data_root} does not exist")
        if data_root is not None and datasets <= {"digits"}:
            raise ConfigError(
                f"--data-root {data_root} would be ignored: the plan's dataset is the embedded 'digits' "
                "(choose --dataset cifar10, cifar100 or ImageNet16-120)"
            )
        if executor != "slurm":  # (a cluster's data paths need not exist on the login node)
            _check_data(protocols.values(), data_root)
        from .benchmarks import open_benchmark

        bench = open_benchmark(benchmark)  # validates the path now, not in a worker later
        import torch

        if copts is not None:  # jobs run elsewhere: this (login) node's GPUs say nothing about theirs
            device = device or ("cuda" if gpus_per_job > 0 else "cpu")
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        _check_device(device, protocols.values(), local=copts is None)
        Store(results).ensure_writable()
        if not force:  # a stored run made under other settings is not silently reused
            from .runner import check_stored_configs

            check_stored_configs(plan, results)
    finally:
        slow.cancel()
    options = RunOptions(results=results, data_root=data_root, benchmark=benchmark, device=device, force=force)
    if embedded:
        say(f"no data or benchmark given: quick protocol on the embedded digits dataset, {bench.name} benchmark")
    say(f"plan: {len(plan)} run(s) -> {results}")
    from .progress import PlanProgress, throttled

    display = PlanProgress(len(plan), quiet=quiet or as_json)  # bars on a terminal, else a line per epoch
    on_outcome, progress = display.outcome, throttled(display.event)  # (a redraw per step would cost fast steps)
    if copts is not None:
        from .cluster import run_cluster

        say(f"submitting {len(plan)} job(s) ({copts.executor}); job logs under {copts.log_dir or results / 'submitit'}")
        outcomes = run_cluster(plan, options, copts, on_outcome)
    elif executor == "inprocess":
        outcomes = run_inprocess(plan, options, progress, on_outcome)
    else:
        outcomes = run_pool(plan, options, workers, on_outcome, progress)
    display.close()
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "claimed", "failed")}
    counts["requeued"] = sum(o.requeues > 0 for o in outcomes)
    abandoned = _abandoned(outcomes, Store(results), options.claim_stale_s)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "run_id": o.run_id,
                        "status": o.status,
                        "error": o.error,
                        "arch": o.record.final.arch if o.record else None,
                        "requeues": o.requeues,
                        "log": o.log,
                    }
                    for o in outcomes
                ],
                indent=1,
            )
        )
    for run_id, holder in abandoned:
        say(f"    {run_id}: skipped for {holder}, which ended without finishing it; run again to finish it")
    left = f" ({len(abandoned)} left unfinished by it)" if abandoned else ""
    say(
        f"finished: {counts['done']} run, {counts['skipped']} already stored, {counts['claimed']} run by another "
        f"process{left}, {counts['failed']} failed" + (f", {counts['requeued']} requeued" if copts is not None else "")
    )
    if counts["failed"] or abandoned:
        sys.exit(1)


def _abandoned(outcomes, store, stale_after_s: float) -> list[tuple[str, str]]:
    """Runs skipped because another process held them, which has since ended with the run unfinished:
    ``(run_id, who held it)`` for each."""
    from .claims import live_holder

    out = []
    for o in outcomes:
        if o.status == "claimed" and not store.is_done(o.run_id):
            if live_holder(store.run_dir(o.run_id), stale_after_s) is None:
                out.append((o.run_id, (o.error or "").split(" is being run by ")[-1] or "another process"))
    return out


def _check_data(protocols, data_root) -> None:
    """Load each planned dataset once (a missing or malformed data file fails now, not in every run) and refuse a
    batch larger than a half of its search split."""
    from .data import load_dataset, search_split
    from .data.checks import STANDARD_SIZES, dataset_warnings

    loaded = {}
    for p in protocols:
        if p.dataset not in loaded:
            loaded[p.dataset] = load_dataset(p.dataset, data_root if p.dataset != "digits" else None)
        split = search_split(loaded[p.dataset], p.split_seed, official=p.split == "official")
        room = min(len(split.train), len(split.valid))
        if p.batch_size > room:
            std = STANDARD_SIZES.get(p.dataset)
            usual = f" (the standard {p.dataset} has {std[0]:,} training and {std[1]:,} test images)" if std else ""
            raise ConfigError(
                f"batch_size={p.batch_size} is out of range: the search split of {p.dataset} has "
                f"{len(split.train)} + {len(split.valid)} images, so it must be <= {room}{usual}"
            )
    for ds in loaded.values():  # a set far smaller than the standard one is allowed, with a warning
        for warning in dataset_warnings(ds, source=str(data_root)):
            click.echo(warning, err=True)


def _check_device(device: str, protocols, local: bool) -> None:
    """Refuse a device torch does not know, a CUDA device this machine lacks, or an amp mode the device lacks."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device {device!r} is not a device (use cpu, cuda or cuda:N)") from None
    if not local or dev.type != "cuda":
        return  # (cluster jobs: this node's GPUs say nothing about theirs; CPU autocast supports bf16)
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: no CUDA device is visible on this machine (use --device cpu)")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if any(p.amp == "bf16" for p in protocols) and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"amp='bf16' is out of range: {torch.cuda.get_device_name(dev)} has no bfloat16 support")


@cli.command()
@click.option("--results", type=click.Path(), default=str(DEFAULT_RESULTS), show_default=True)
@click.option(
    "--format", "fmt", type=click.Choice(["md", "csv", "latex", "html", "json"]), default="md", show_default=True
)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="folder to write the report files into")
@click.option("--benchmark", type=click.Path(path_type=Path), default=None, help="benchmark for the optimum row")
@click.option("--no-published", is_flag=True, help="leave out the published reference rows")
@click.option("--json", "as_json", is_flag=True, help="same as --format json")
def report(results, fmt, out, benchmark, no_published, as_json) -> None:
    """Tables (and figures, with --out) from the stored runs."""
    from . import open_benchmark
    from . import report as make_report

    results = _results_folder(results)

    bench = open_benchmark(benchmark)
    fmt = "json" if as_json else fmt
    if fmt == "html" and out is None:
        out = Path("reports") / "latest"
    text = make_report(results, fmt, out, benchmark=bench, published=not no_published)
    if fmt == "html":  # the page embeds its figures: print where it is, not its bytes
        click.echo(str(Path(out) / "report.html"))
    elif text:
        click.echo(text)


@cli.command()
@click.option("--protocol", default="quick", show_default=True, help="preset whose values are shown as defaults")
@click.option("--json", "as_json", is_flag=True)
def methods(protocol, as_json) -> None:
    """The registered methods with their aliases, every setting (--set KEY=VALUE) with its type and default, and
    each method's grids (--grid NAME)."""
    from .config import describe_settings, preset_names
    from .method import get_method, method_aliases, method_names

    aliases = method_aliases()
    shared: dict[str, dict] = {}
    rows = []
    for name in method_names():
        cls = get_method(name)
        proto, own = describe_settings(cls, protocol)
        mine = f"preset {protocol} ({name})"
        for k, v in proto.items():
            if v["source"] != mine:
                shared.setdefault(k, v)
        rows.append(
            {
                "name": name,
                "display_name": cls.display_name,
                "aliases": sorted(a for a, n in aliases.items() if n == name),
                "hparams": own,
                "protocol_overrides": {k: v for k, v in proto.items() if v["source"] == mine},
                "grids": {g: list(points) for g, points in cls.grids.items()},
            }
        )
    if as_json:
        click.echo(
            json.dumps(
                {"protocol": protocol, "protocol_settings": shared, "methods": rows, "presets": preset_names()},
                indent=1,
                default=str,
            )
        )
        return
    click.echo(f"protocol settings, every method (--set KEY=VALUE; type, default in {protocol!r}, valid values):")
    for k, v in shared.items():
        click.echo(f"  {k:<27} {v['type']:<16} {v['default']!s:<14} {v['valid']}")
    for r in rows:
        alias = f" (aliases: {', '.join(r['aliases'])})" if r["aliases"] else ""
        click.echo(f"\n{r['name']}: {r['display_name']}{alias}")
        for k, v in r["protocol_overrides"].items():
            click.echo(
                f"  {k:<27} {v['type']:<16} {v['default']!s:<14} {v['valid']}  (this method's value in {protocol!r})"
            )
        for k, v in r["hparams"].items():
            click.echo(f"  {k:<27} {v['type']:<16} {v['default']!s:<14} {v['valid']}")
        for g, points in r["grids"].items():
            click.echo(f"  --grid {g}: " + "; ".join(", ".join(f"{k}={x}" for k, x in p.items()) for p in points))
    click.echo(f"\npresets: {', '.join(preset_names())}")


@cli.command()
@click.argument("arch")
@click.option("--benchmark", type=click.Path(path_type=Path), default=None, help="NB201 .pth or NATS -simple folder")
@click.option("--json", "as_json", is_flag=True)
def query(arch, benchmark, as_json) -> None:
    """What the benchmark says about one cell (ARCH: the official arch string)."""
    from .benchmarks import open_benchmark
    from .space import Cell

    cell = Cell.parse(arch)
    bench = open_benchmark(benchmark)
    res = bench.query_all(cell)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "arch": cell.arch_str,
                    "benchmark": bench.name,
                    "provenance": bench.provenance,
                    "results": {ds: {"valid": r.valid, "test": r.test} for ds, r in res.items()},
                },
                indent=1,
            )
        )
        return
    click.echo(cell.arch_str)
    click.echo(f"benchmark: {bench.provenance}")
    for ds, r in res.items():
        valid = "n/a" if r.valid is None else f"{r.valid:.2f}"
        click.echo(f"  {ds:<15} valid {valid:>6}  test {r.test:.2f}")


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived. A BaseException, so that no ``except Exception`` (a run's failure handling)
    swallows it, while every ``finally`` on the way out runs: the run's claim is released, a half-written file
    removed; the run's last complete checkpoint is what the next ``run`` resumes from."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum, frame) -> None:
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):  # one is enough; a second must not cut the clean-up short
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signum)


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2; SIGINT/SIGTERM one line and 130/143."""
    import signal

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        cli.main(standalone_mode=False)
    except Interrupted as e:
        name = signal.Signals(e.signum).name
        click.echo(
            f"interrupted ({name}): finished runs are stored, claims released; a run cut short resumes from "
            "its last complete epoch when the same command runs again",
            err=True,
        )
        sys.exit(128 + e.signum)
    except NasSuiteError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except OSError as e:  # the machine, not the user's input nor a bug: a full disk, a folder we may not write
        where = f"{e.filename}: " if e.filename else ""
        click.echo(f"error: {where}{e.strerror or e}", err=True)
        sys.exit(2)
    except click.ClickException as e:  # usage errors too: one line, not click's usage block
        click.echo(f"error: {e.format_message()}", err=True)
        sys.exit(2 if e.exit_code in (1, 2) else e.exit_code)
    except SystemExit:
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    main()
