"""Progress a person can watch: step and epoch events, forwarded from workers, shown as bars or plain lines."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nasbench_suite.config import RunSpec
from nasbench_suite.executors import Outcome, run_inprocess, run_pool
from nasbench_suite.progress import PlanProgress, throttled
from nasbench_suite.records import FinalResult, RunRecord
from nasbench_suite.runner import Run, RunOptions
from nasbench_suite.store import Store

pytestmark = pytest.mark.timeout(900)  # subprocesses: a hung one fails the test instead of the CI run

REPO = Path(__file__).resolve().parents[1]
TINY = (("epochs", "2"), ("steps_per_epoch", "3"), ("select_candidates", "4"), ("C", "4"))


def test_two_workers_forward_per_epoch_progress_from_both(tmp_path):
    plan = [RunSpec("rsps", 0, "quick", TINY), RunSpec("rsps", 1, "quick", TINY)]
    events: list[dict] = []
    outs = run_pool(plan, RunOptions(results=tmp_path), 2, progress=events.append)
    assert [o.status for o in outs] == ["done", "done"]
    epochs = {(ev["run_id"], ev["epoch"]) for ev in events if ev["kind"] == "epoch"}
    assert epochs == {(s.run_id, e) for s in plan for e in (1, 2)}  # every epoch of both runs
    pids = {ev["pid"] for ev in events}
    assert len(pids) == 2 and os.getpid() not in pids  # two worker processes, none of it from the parent
    last_steps = {(ev["run_id"], ev["epoch"]) for ev in events if ev["kind"] == "step" and ev["step"] == ev["steps"]}
    assert last_steps == epochs  # the last step of each epoch always comes through the throttle
    assert all(ev["loss"] is not None and ev["loss"] > 0 for ev in events if ev["kind"] == "step")


def test_cli_workers_print_a_plain_line_per_epoch_when_not_a_terminal(tmp_path):
    sets = [a for k, v in TINY for a in ("--set", f"{k}={v}")]
    cmd = [sys.executable, "-m", "nasbench_suite.cli", "run", "--methods", "rsps", "--results", str(tmp_path), *sets]
    res = subprocess.run(
        [*cmd, "--seeds", "2", "--workers", "2"], capture_output=True, text=True, cwd=REPO, timeout=600
    )
    assert res.returncode == 0, res.stderr
    for seed in (0, 1):
        rid = RunSpec("rsps", seed, "quick", TINY).run_id
        for epoch in (1, 2):
            line = re.search(
                rf"^  {re.escape(rid)} epoch {epoch}/2 loss \d+\.\d+ (\|.*\||\(cell not derived this epoch\)) "
                rf"\(.*s\) \[pid \d+\]"
                rf" \(ETA run \S+, plan \S+\)$",
                res.stderr,
                re.M,
            )
            assert line, (rid, epoch, res.stderr)
    assert "\r" not in res.stderr  # no bar redraws in a log file
    assert "2 run, 0 already stored" in res.stderr
    quiet = subprocess.run([*cmd, "--quiet", "--force"], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


def test_inprocess_events_steps_then_epoch(tmp_path):
    events: list[dict] = []
    run_inprocess([RunSpec("darts-v1", 0, "quick", TINY)], RunOptions(results=tmp_path), events.append)
    kinds = [(ev["kind"], ev["epoch"], ev.get("step")) for ev in events]
    assert kinds == [
        ("step", 1, 1),
        ("step", 1, 2),
        ("step", 1, 3),
        ("epoch", 1, None),
        ("step", 2, 1),
        ("step", 2, 2),
        ("step", 2, 3),
        ("epoch", 2, None),
    ]
    assert events[3]["line"]["arch"].startswith("|") and events[3]["steps"] == 3


def test_bars_on_a_terminal_show_loss_epoch_and_plan():
    out = io.StringIO()
    p = PlanProgress(2, stream=out, bars=True)
    base = {"run_id": "r0", "epochs": 2, "steps": 4}
    for step in range(1, 5):
        p.event({**base, "kind": "step", "epoch": 1, "step": step, "loss": 2.5 - 0.1 * step})
    assert 0.49 < p._plan_n() < 0.51 and p.plan_eta() is not None  # half of one run of two
    p.event({**base, "kind": "epoch", "epoch": 1, "line": {"train_loss": 2.25, "arch": "|a|", "wall_s": 1.0}})
    p.outcome(Outcome("r0", "done", RunRecord("r0", final=FinalResult(arch="|a|"))))
    p.event({**base, "kind": "epoch", "epoch": 2, "line": {"train_loss": 2.0, "arch": "|b|", "wall_s": 1.0}})  # late
    p.close()
    text = out.getvalue()
    assert "loss 2.100" in text and "epoch 1/2" in text and "plan" in text and "runs" in text
    assert "r0 epoch 2/2 loss 2.000 |b|" in text  # a late worker event still gets its line, and no new bar
    assert "[1/2] r0: done |a|" in text


def test_quiet_shows_nothing_and_throttle_keeps_epoch_ends():
    out = io.StringIO()
    p = PlanProgress(1, stream=out, quiet=True)
    p.event({"kind": "epoch", "run_id": "r", "epoch": 1, "epochs": 1, "line": {"arch": "", "wall_s": 0.0}})
    p.outcome(Outcome("r", "done"))
    p.close()
    assert out.getvalue() == ""
    got: list[dict] = []
    fn = throttled(got.append, interval=3600)
    for step in range(1, 6):
        fn({"kind": "step", "run_id": "r", "epoch": 1, "step": step, "steps": 5})
    fn({"kind": "epoch", "run_id": "r", "epoch": 1})
    assert [ev.get("step") for ev in got] == [1, 5, None]


def test_library_warnings_go_through_logging(tmp_path, caplog):
    spec = RunSpec("rsps", 0, "quick", TINY)
    opts = RunOptions(results=tmp_path)
    run = Run(spec, opts)
    path = Store(tmp_path).checkpoint_path(spec.run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.WARNING, logger="nasbench_suite"):
        assert run.try_resume() is False
    assert any(r.name == "nasbench_suite.runner" and "unreadable checkpoint" in r.getMessage() for r in caplog.records)
