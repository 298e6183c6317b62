"""``nas-suite regress``: the regression check as a click command (registered by ``nasbench_suite.cli``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.command()
@click.option(
    "--baseline",
    type=click.Path(path_type=Path),
    default=Path("results/regression"),
    show_default=True,
    help="folder holding plan.json and one <method>.json per method",
)
@click.option("--update", is_flag=True, help="rewrite the baseline from this code (deliberately)")
@click.option("--methods", default=None, help="comma-separated methods (default: every registered method)")
@click.option("--workdir", type=click.Path(path_type=Path), default=None, help="keep the rerun's records here")
@click.option("--quiet", is_flag=True, help="no progress output")
@click.option("--json", "as_json", is_flag=True, help="machine-readable result")
def regress(baseline, update, methods, workdir, quiet, as_json) -> None:
    """Rerun a small deterministic configuration of every method and compare it with the stored baseline.

    Exit code 0: no regression (or baseline updated); 1: differences, methods without a baseline, or methods that
    could not run; 2: no baseline or a bad option.
    """
    from ..store import json_default
    from . import regress as run_regress

    chosen = [m.strip() for m in methods.split(",") if m.strip()] if methods else None
    progress = None if quiet or as_json else (lambda msg: click.echo(msg, err=True))
    rep = run_regress(baseline, update=update, workdir=workdir, methods=chosen, progress=progress)
    click.echo(json.dumps(rep.to_dict(), indent=1, default=json_default) if as_json else rep.format())
    if not rep.ok:
        sys.exit(1)
