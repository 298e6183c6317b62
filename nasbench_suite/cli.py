"""The ``nas-suite`` command line: thin click commands that parse, call the library and print.

Every error a user can cause is a :class:`NasSuiteError`; :func:`main` turns it into one line on stderr and exit
code 2, with no traceback. Nothing stored is touched before the inputs are checked.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
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
    installed (an optional method package) is listed but answers "No such command". ``aliases`` maps an old
    command name to its command.
    """

    def __init__(
        self,
        *args,
        lazy_commands: dict[str, tuple[str, str]] | None = None,
        aliases: dict[str, str] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})
        self.aliases = dict(aliases or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands, *self.aliases})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        name = self.aliases.get(name, name)
        if name in self.commands or name not in self.lazy_commands:
            return super().get_command(ctx, name)
        return self._load(name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in self.aliases:
                rows.append((name, f"The same as {self.aliases[name]}."))
            elif name in self.commands:
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
    "time-steps": (
        "nasbench_suite.timing:time_steps_cmd",
        "Time one search step of every method against its reference implementation (same process, interleaved).",
    ),
    "e2nas": (
        "nasbench_suite_methods.e2nas.cli:e2nas",
        "E2NAS: train the graph autoencoder, check its gates, time its step.",
    ),
    "probe-search": (
        "nasbench_suite.probe:probe_search_cmd",
        "Run each method's arch update alone on a known additive landscape; report the reached cells' rank.",
    ),
    "regress": (
        "nasbench_suite.analysis.cli:regress",
        "Rerun a small deterministic configuration of every method and compare it with the stored baseline.",
    ),
}
#: Old command names kept working: alias -> command. (``bench`` timed steps; "benchmark" means NB201's tables.)
COMMAND_ALIASES = {"bench": "time-steps"}


@click.group(
    cls=LazyGroup,
    lazy_commands=LAZY_COMMANDS,
    aliases=COMMAND_ALIASES,
    context_settings={"help_option_names": ["-h", "--help"]},
)
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
@click.option(
    "--vectorize",
    type=click.Choice(["auto", "on", "off"]),
    default="auto",
    show_default=True,
    help="run the seeds of a method as one vectorized search (the same results per seed): auto = on a GPU, for "
    "every method that can; on = on any device, every method must; off = one search per seed",
)
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
    vectorize,
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
    from .executors import summary
    from .preflight import preflight
    from .progress import PlanProgress
    from .runner import RunOptions
    from .store import Store

    _check_run_args(seeds, seed_start, workers)
    results = _results_folder(results)
    executor = executor or ("inprocess" if workers == 1 else "local")
    copts = None
    if executor in ("slurm", "submitit-local"):
        from .cluster import ClusterOptions

        copts = ClusterOptions(executor, partition, gpus_per_job, time_limit, array_parallelism, cluster_log_dir)
        copts.check()
    embedded = protocol is None and data_root is None and benchmark is None
    plan = _run_plan(methods, seeds, seed_start, protocol or "quick", dataset, sets, grid, yes)
    say = (lambda *a, **k: None) if quiet or as_json else (lambda *a, **k: click.echo(*a, err=True, **k))
    with _say_if_slow(say, f"plan: {len(plan)} run(s); checking the data and benchmark files..."):
        checked = preflight(
            plan,
            results,
            data_root=data_root,
            benchmark=benchmark,
            device=device,
            force=force,
            cluster_gpus=gpus_per_job if copts is not None else None,
            load_data=executor != "slurm",
            vectorize=vectorize,
        )
    options = RunOptions(
        results=results,
        data_root=data_root,
        benchmark=benchmark,
        device=checked.device,
        force=force,
        vectorize=vectorize,
    )
    if embedded:
        bench_name = checked.benchmark.name
        say(f"no data or benchmark given: quick protocol on the embedded digits dataset, {bench_name} benchmark")
    say(f"plan: {len(plan)} run(s) -> {results}")
    display = PlanProgress(len(plan), quiet=quiet or as_json)  # bars on a terminal, else a line per epoch
    outcomes = _dispatch(plan, options, executor, workers, copts, checked.benchmark, display, say)
    display.close()
    if as_json:
        click.echo(json.dumps([_outcome_json(o) for o in outcomes], indent=1))
    abandoned = _abandoned(outcomes, Store(results), options.claim_stale_s)
    _say_summary(say, summary(outcomes), abandoned, cluster=copts is not None)
    if any(o.status == "failed" for o in outcomes) or abandoned:
        sys.exit(1)


def _run_plan(methods, seeds: int, seed_start: int, protocol: str, dataset, sets, grid, yes: bool) -> list:
    """The plan of ``run`` (methods x grid points x seeds); more than CONFIRM_RUNS runs need ``--yes``."""
    from .config import parse_set
    from .plan import build_plan

    names = _methods_list(methods)
    plan = build_plan(names, range(seed_start, seed_start + seeds), protocol, dataset, parse_set(sets), grid)
    if len(plan) > CONFIRM_RUNS and not yes:
        raise ConfigError(
            f"the plan has {len(plan)} runs ({len(names)} method(s) x {seeds} seed(s)"
            f"{' x the grid' if grid else ''}); add --yes to run them all"
        )
    return plan


def _dispatch(plan, options, executor: str, workers: int, copts, benchmark, display, say) -> list:
    """Hand the plan to its executor; the display receives the outcomes and the (throttled) progress events."""
    from .executors import run_inprocess, run_pool
    from .progress import throttled

    on_outcome, progress = display.outcome, throttled(display.event)  # (a redraw per step would cost fast steps)
    if copts is not None:
        from .cluster import run_cluster

        logs = copts.log_dir or options.results / "submitit"
        say(f"submitting {len(plan)} job(s) ({copts.executor}); job logs under {logs}")
        return run_cluster(plan, options, copts, on_outcome)
    if executor == "inprocess":
        return run_inprocess(plan, options, progress, on_outcome, benchmark=benchmark)
    return run_pool(plan, options, workers, on_outcome, progress)


def _check_run_args(seeds: int, seed_start: int, workers: int) -> None:
    """The numbers of ``run`` that need no library to check."""
    from .config import MAX_SEED

    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    if seed_start < 0:
        raise ConfigError(f"--seed-start must be >= 0, got {seed_start}")
    if seeds > MAX_SEEDS:
        raise ConfigError(f"--seeds {seeds} is more than any study needs (at most {MAX_SEEDS})")
    if seed_start + seeds - 1 > MAX_SEED:
        raise ConfigError(f"--seed-start {seed_start} with --seeds {seeds} goes past the largest seed, {MAX_SEED}")
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")


@contextlib.contextmanager
def _say_if_slow(say, message: str, after_s: float = 1.0):
    """Say ``message`` if the block takes longer than ``after_s`` (loading a dataset or a benchmark file to check it
    can take a while; a quick refusal stays the one line of its error)."""
    slow = threading.Timer(after_s, say, (message,))
    slow.daemon = True
    slow.start()
    try:
        yield
    finally:
        slow.cancel()


def _outcome_json(o) -> dict:
    return {
        "run_id": o.run_id,
        "status": o.status,
        "error": o.error,
        "arch": o.record.final.arch if o.record else None,
        "requeues": o.requeues,
        "log": o.log,
    }


def _say_summary(say, counts: dict[str, int], abandoned: list[tuple[str, str]], cluster: bool) -> None:
    for run_id, holder in abandoned:
        say(f"    {run_id}: skipped for {holder}, which ended without finishing it; run again to finish it")
    left = f" ({len(abandoned)} left unfinished by it)" if abandoned else ""
    say(
        f"finished: {counts['done']} run, {counts['skipped']} already stored, {counts['claimed']} run by another "
        f"process{left}, {counts['failed']} failed" + (f", {counts['requeued']} requeued" if cluster else "")
    )


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
                # "" = its seeds can run as one vectorized search (--vectorize), else why not
                "vectorize": cls.vectorize_reason(cls.Hparams()),
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
        yes = f"yes ({get_method(r['name']).vectorize_note})" if get_method(r["name"]).vectorize_note else "yes"
        click.echo(f"  vectorized seeds: {yes if not r['vectorize'] else 'no, ' + r['vectorize']}")
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
