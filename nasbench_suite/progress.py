"""Progress a person can watch: per-run bars over steps (running loss, ETA) and a plan bar, or plain lines.

The runner reports through a callback (:data:`nasbench_suite.runner.ProgressFn`) with plain-dict events:

- ``{"kind": "step", "run_id", "epoch", "epochs", "step", "steps", "loss"}``: after a search step (``epoch`` and
  ``step`` count from 1; ``loss`` is the running mean of the epoch's ``train_loss``, None if the method gives none);
- ``{"kind": "epoch", "run_id", "epoch", "epochs", "line"}``: after an epoch's checkpoint (``line`` = the metrics
  line: derived ``arch``, mean losses, ``wall_s``, benchmark numbers);
- ``{"kind": "select", "run_id", "epoch", "epochs", "candidate", "candidates"}``: every few seconds while a method
  scores candidates for its derived cell (a long selection is never silent).

Worker processes forward the same events to the parent (:mod:`nasbench_suite.executors`), adding ``pid``, so one
:class:`PlanProgress` in the parent shows every run wherever it executes. On a terminal it draws tqdm bars; when
the output is not a terminal (log files, CI) it writes one plain line per epoch and per finished run instead.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

#: Step events are forwarded from workers at most this often per run (the epoch events always are).
STEP_EVENT_INTERVAL_S = 0.2

_STATUS = {
    "done": "done",
    "skipped": "already stored",
    "failed": "FAILED",
    "claimed": "skipped, another process is running it",
}


def throttled(progress: Callable[[dict[str, Any]], None], interval: float = STEP_EVENT_INTERVAL_S):
    """Wrap ``progress`` so that step events reach it at most every ``interval`` seconds per run (the last step
    of an epoch and every other event always pass): what a worker sends its parent over a queue."""
    last: dict[str, float] = {}

    def fn(ev: dict[str, Any]) -> None:
        if ev.get("kind") == "step" and ev["step"] < ev["steps"]:
            now = time.monotonic()
            prev = last.get(ev["run_id"])
            if prev is not None and now - prev < interval:
                return
            last[ev["run_id"]] = now
        progress(ev)

    return fn


class PlanProgress:
    """What ``nas-suite run`` shows while a plan executes; thread-safe (a pool's events arrive on a thread).

    ``bars=None`` draws bars when ``stream`` is a terminal, else plain lines. ``quiet`` shows nothing.
    Call :meth:`event` for runner events, :meth:`outcome` when a run finishes, :meth:`close` at the end.
    """

    def __init__(self, total_runs: int, stream: TextIO | None = None, bars: bool | None = None, quiet: bool = False):
        self.total = total_runs
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.bars = (not quiet) and (bars if bars is not None else _isatty(self.stream))
        self.done = 0
        self.t0 = time.perf_counter()
        self._lock = threading.Lock()
        self._frac: dict[str, float] = {}  # run_id -> fraction of that unfinished run done
        self._run_bars: dict[str, Any] = {}
        self._finished: set[str] = set()
        self._plan_bar = None
        if self.bars:
            from tqdm.auto import tqdm

            self._tqdm = tqdm
            self._plan_bar = tqdm(
                total=total_runs,
                desc="plan",
                unit="run",
                position=0,
                file=self.stream,
                dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n:.2f}/{total} runs [{elapsed}<{remaining}]",
            )

    # -- inputs ------------------------------------------------------------------------------------------------
    def event(self, ev: dict[str, Any]) -> None:
        """A runner event (in this process or forwarded from a worker)."""
        if self.quiet:
            return
        with self._lock:
            kind = ev.get("kind", "epoch")
            rid = ev["run_id"]
            steps = ev.get("steps") or 1
            if rid in self._finished:  # a worker's event may arrive after its run's outcome: a line, no bar
                if kind == "epoch":
                    self._line(self._epoch_text(ev))
                return
            if kind == "select":
                self._line(
                    f"  {rid} epoch {ev['epoch']}/{ev['epochs']} scoring candidate {ev['candidate']}/{ev['candidates']}"
                )
                return
            if kind == "step":
                self._frac[rid] = ((ev["epoch"] - 1) * steps + ev["step"]) / (ev["epochs"] * steps)
            else:
                self._frac[rid] = ev["epoch"] / ev["epochs"]
            if self.bars:
                self._draw(ev)
            elif kind == "epoch":
                self._line(
                    self._epoch_text(ev) + f" (ETA run {self._fmt(self._run_eta(ev))}, "
                    f"plan {self._fmt(self.plan_eta())})"
                )

    def outcome(self, out) -> None:
        """A run of the plan finished (an :class:`~nasbench_suite.executors.Outcome`)."""
        with self._lock:
            self.done += 1
            self._finished.add(out.run_id)
            self._frac.pop(out.run_id, None)
            bar = self._run_bars.pop(out.run_id, None)
            if bar is not None:
                bar.close()
            if self.quiet:
                return
            arch = (out.record.final.arch if out.record else None) or ""
            text = f"[{self.done}/{self.total}] {out.run_id}: {_STATUS.get(out.status, out.status)} {arch}".rstrip()
            text += f" (plan ETA {self._fmt(self.plan_eta())})" if self.done < self.total else ""
            if out.status == "failed":
                text += "\n    " + ((out.error or "").strip().splitlines() or [""])[-1]
            elif out.status == "claimed":
                text += "\n    " + (out.error or "")
            if self._plan_bar is not None:
                self._plan_bar.n = self._plan_n()
                self._plan_bar.refresh()
            self._line(text)

    def close(self) -> None:
        """Close every bar (call once, at the end of the plan)."""
        with self._lock:
            for bar in self._run_bars.values():
                bar.close()
            self._run_bars.clear()
            if self._plan_bar is not None:
                self._plan_bar.n = self._plan_n()
                self._plan_bar.close()
                self._plan_bar = None

    # -- estimates ---------------------------------------------------------------------------------------------
    def plan_eta(self) -> float | None:
        """Seconds left for the whole plan, from the work done so far (finished runs + fractions of running ones)."""
        n = self._plan_n()
        if n <= 0:
            return None
        return (time.perf_counter() - self.t0) / n * (self.total - n)

    def _plan_n(self) -> float:
        return self.done + sum(self._frac.values())

    def _run_eta(self, ev: dict[str, Any]) -> float | None:
        wall = [ev["line"].get("wall_s")] if "line" in ev else []
        if not wall or wall[0] is None:
            return None
        return wall[0] * (ev["epochs"] - ev["epoch"])  # the last epoch's time for each epoch left

    # -- output ------------------------------------------------------------------------------------------------
    @staticmethod
    def _fmt(seconds: float | None) -> str:
        if seconds is None:
            return "?"
        s = int(round(seconds))
        return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"

    def _epoch_text(self, ev: dict[str, Any]) -> str:
        line = ev["line"]
        loss = line.get("train_loss")
        loss_s = "n/a" if loss is None else f"{loss:.3f}"
        where = f" [pid {ev['pid']}]" if "pid" in ev else ""
        arch = line.get("arch") or "(cell not derived this epoch)"  # derive_every > 1
        return (
            f"  {ev['run_id']} epoch {ev['epoch']}/{ev['epochs']} loss {loss_s} {arch} "
            f"({line.get('wall_s', 0.0):.1f}s){where}"
        )

    def _draw(self, ev: dict[str, Any]) -> None:
        rid = ev["run_id"]
        steps = ev.get("steps")
        bar = self._run_bars.get(rid)
        if bar is None and steps:
            bar = self._tqdm(
                total=ev["epochs"] * steps,
                desc=rid,
                unit="step",
                leave=False,
                file=self.stream,
                position=1 + len(self._run_bars),
                dynamic_ncols=True,
            )
            self._run_bars[rid] = bar
        if bar is not None and steps:
            bar.n = (ev["epoch"] - 1) * steps + (ev["step"] if ev.get("kind") == "step" else steps)
            loss = ev.get("loss") if ev.get("kind") == "step" else ev["line"].get("train_loss")
            bar.set_postfix_str(
                f"epoch {ev['epoch']}/{ev['epochs']}" + ("" if loss is None else f" loss {loss:.3f}"), refresh=False
            )
            bar.refresh()
        if ev.get("kind") == "epoch":
            self._line(self._epoch_text(ev))
        if self._plan_bar is not None:
            self._plan_bar.n = self._plan_n()
            self._plan_bar.refresh()

    def _line(self, text: str) -> None:
        if self.bars:
            self._tqdm.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
