"""``nas-suite e2nas ...``: the E2NAS autoencoder's training command, its gates check, and E2NAS's step cost.

The one command line of the E2NAS tools (click, as the main CLI); registered by the main CLI as the plugin group
``nasbench_suite_methods.e2nas.cli:e2nas``. Exit status of ``train-vae`` and ``gates``: 0 when all three gates pass,
1 when one fails, 2 for a user error (e.g. missing weights file).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import click

from nasbench_suite.errors import ConfigError

#: (pass key, label, value key, format, second value key) per gate, as in train_vae.evaluate_gates' report
_GATES = (
    (
        "gate_i_pass",
        "(i)   argmax-decode(mu(a)) == a",
        "gate_i_argmax_recon",
        "{:.4%} of cells, {} failures",
        "gate_i_failures",
    ),
    (
        "gate_ii_pass",
        "(ii)  mu vectors pairwise distinct",
        "gate_ii_distinct_mu",
        "{} distinct, min L2 {:.3g}",
        "gate_ii_min_pairwise_l2",
    ),
    ("gate_iii_pass", "(iii) stochastic reconstruction >= 99%", "gate_iii_stochastic_recon", "{:.4%}", None),
)


def _print_gates(report: dict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
        return
    if report.get("sha256"):
        click.echo(f"weights: {report.get('out') or report.get('path', '')}  sha256 {report['sha256']}")
    for ok_key, label, key, fmt, extra in _GATES:
        values = (report[key],) if extra is None else (report[key], report[extra])
        click.echo(f"  {'PASS' if report[ok_key] else 'FAIL'}  {label}: {fmt.format(*values)}")
    click.echo("all gates pass" if report["all_pass"] else "a gate FAILS")


@click.group("e2nas")
def e2nas() -> None:
    """E2NAS: train the graph autoencoder, check its gates, time its step."""


@e2nas.command("train-vae")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of initialisation, shuffling and noise")
@click.option("--hidden", type=int, default=None, help="hidden size (default: the chosen size, see train_vae)")
@click.option("--epochs", type=int, default=None, help="training epochs (default: see train_vae)")
@click.option("--batch-size", type=int, default=None, help="minibatch size (default: see train_vae)")
@click.option("--lr", type=float, default=None, help="Adam peak learning rate, cosine-decayed (default: see train_vae)")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="output file (default: graph_vae-seed<SEED>.pt in the current folder; the committed "
    "methods/e2nas/weights/graph_vae.pt only with --force)",
)
@click.option("--force", is_flag=True, help="allow --out to replace the committed weights file")
@click.option("--json", "as_json", is_flag=True, help="print the gates report as JSON")
def train_vae(
    seed: int,
    hidden: int | None,
    epochs: int | None,
    batch_size: int | None,
    lr: float | None,
    out: Path | None,
    force: bool,
    as_json: bool,
) -> None:
    """Train the autoencoder on all 15,625 cells, save it, and check the three gates (exit 1 if one fails)."""
    from . import train_vae as tv

    out = Path(f"graph_vae-seed{seed}.pt") if out is None else out
    if out.resolve() == tv.DEFAULT_WEIGHTS.resolve() and not force:
        raise ConfigError(
            f"{out} is the committed autoencoder every E2NAS run uses; pass --force to replace it, "
            "or choose another --out"
        )
    report = tv.train_vae(
        seed=seed,
        hidden=tv.DEFAULT_HIDDEN if hidden is None else hidden,
        epochs=tv.DEFAULT_EPOCHS if epochs is None else epochs,
        batch_size=tv.DEFAULT_BATCH if batch_size is None else batch_size,
        lr=tv.DEFAULT_LR if lr is None else lr,
        out=out,
        log=lambda line: click.echo(line, err=True),  # progress on stderr: stdout is the report (or its JSON)
    )
    _print_gates(report, as_json)
    if not report["all_pass"]:
        sys.exit(1)


@e2nas.command("gates")
@click.option(
    "--weights",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="weights file (default: the committed one)",
)
@click.option("--seed", type=int, default=0, show_default=True, help="seed of gate (iii)'s sampling")
@click.option("--json", "as_json", is_flag=True, help="print the gates report as JSON")
def gates(weights: Path | None, seed: int, as_json: bool) -> None:
    """Check the three gates on the committed (or given) autoencoder weights (exit 1 if one fails)."""
    from .train_vae import evaluate_gates
    from .vae import DEFAULT_WEIGHTS, load_vae, missing_weights_message

    path = DEFAULT_WEIGHTS if weights is None else weights
    if not path.exists():
        raise ConfigError(missing_weights_message(path))
    try:
        model, sha = load_vae(path)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user-facing error
        raise ConfigError(f"cannot read autoencoder weights {path}: {e}") from None
    report = {"path": str(path), "sha256": sha, "config": dataclasses.asdict(model.config)}
    if not as_json:  # the check takes minutes on a CPU: say so before it starts
        click.echo(
            "checking the three gates on all 15,625 cells (gate iii decodes every cell 100 times; a few "
            "minutes on a CPU)...",
            err=True,
        )
    report.update(evaluate_gates(model, seed=seed))
    _print_gates(report, as_json)
    if not report["all_pass"]:
        sys.exit(1)


@e2nas.command("time-step")
@click.option("--C", "C", type=int, default=16, show_default=True, help="supernet channels")
@click.option("--N", "N", type=int, default=5, show_default=True, help="cells per stage")
@click.option("--batch", type=int, default=64, show_default=True, help="batch size")
@click.option("--hw", type=int, default=32, show_default=True, help="image height and width")
@click.option("--steps", type=int, default=5, show_default=True, help="timed step pairs")
@click.option("--warmup", type=int, default=1, show_default=True, help="untimed step pairs first")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1")
def time_step(C: int, N: int, batch: int, hw: int, steps: int, warmup: int, device: str) -> None:
    """Time E2NAS's search step against GDAS's, interleaved, in E2NAS's most expensive regime (JSON)."""
    from .bench_step import bench_step

    if steps < 1 or warmup < 0:
        raise ConfigError("--steps must be >= 1 and --warmup >= 0")
    click.echo(json.dumps(bench_step(C, N, batch, hw, steps, warmup, device), indent=2))
