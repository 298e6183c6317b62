"""One owner per run: a claim file ``runs/<id>/claim`` so that several processes (or cluster jobs) sharing one
results folder execute each run exactly once.

A claim holds who runs it: pid, host, the process's start time (to tell a reused pid from the owner), the
cluster job id when there is one, and when it was taken. A claim is *live* while its owner may still be running:

- same host: the pid exists and (where ``/proc`` tells) started when the claim says;
- another host: its heartbeat (the file's mtime, refreshed after every epoch) is younger than ``stale_after_s``;
- a claim taken by our own cluster job id (a requeued job, perhaps on another node) is ours to take over.

A claim that is not live is *stale* and is taken over (logged as ``recovered``). Inspecting and taking a claim
happens under a short :mod:`filelock` lock on ``runs/<id>/.claim.lock``, so two processes never both win.
Every execution, take-over and release is appended to ``runs/<id>/claims.log``: who executed a run, and how often.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from .store import atomic_write_json

CLAIM_FILE = "claim"
LOCK_FILE = ".claim.lock"
LOG_FILE = "claims.log"
DEFAULT_STALE_AFTER_S = 2 * 3600.0


class ClaimHeld(Exception):
    """The run is claimed by another live process; ``holder`` is that claim's content."""

    def __init__(self, run_id: str, holder: dict[str, Any]):
        self.run_id = run_id
        self.holder = holder
        super().__init__(f"{run_id} is being run by {describe(holder)}")


def describe(holder: dict[str, Any]) -> str:
    """``pid 123 on host (job 42), since 12:00:01``, for messages."""
    job = f" (job {holder['job']})" if holder.get("job") else ""
    since = time.strftime("%H:%M:%S", time.localtime(holder.get("claimed_at", 0)))
    return f"pid {holder.get('pid')} on {holder.get('host')}{job}, since {since}"


def _proc_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), or None where /proc does not tell."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22 counted from the pid; the command may contain spaces


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def cluster_job_id() -> str | None:
    """This process's cluster job id (kept by Slurm and submitit across requeues), else None."""
    for var in ("SLURM_JOB_ID", "SUBMITIT_LOCAL_JOB_ID"):
        if os.environ.get(var):
            return f"{var.split('_')[0].lower()}:{os.environ[var]}"
    return None


def _me() -> dict[str, Any]:
    pid = os.getpid()
    return {
        "pid": pid,
        "host": socket.gethostname(),
        "proc_start": _proc_start(pid),
        "job": cluster_job_id(),
        "token": uuid.uuid4().hex,
        "claimed_at": time.time(),
    }


@dataclass
class Claim:
    """A claim this process holds; release it when the run ends (or let it go stale if the process dies)."""

    path: Path
    info: dict[str, Any]

    def heartbeat(self) -> None:
        """Show other hosts the owner is alive (called after each epoch)."""
        try:
            os.utime(self.path)
        except OSError:
            pass

    def started(self) -> None:
        """Log that this owner is executing the run now (one ``executing`` line per execution)."""
        _log(self.path.parent, "executing", self.info)

    def release(self) -> None:
        """Remove the claim if it is still ours."""
        with FileLock(str(self.path.with_name(LOCK_FILE)), timeout=60):
            cur = _read(self.path)
            if cur is not None and cur.get("token") == self.info["token"]:
                self.path.unlink(missing_ok=True)
        _log(self.path.parent, "released", self.info)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # unreadable (e.g. a crash before the atomic write existed): judged by mtime alone


def _log(run_dir: Path, event: str, info: dict[str, Any], **extra: Any) -> None:
    line = {
        "event": event,
        "at": time.time(),
        "pid": info.get("pid"),
        "host": info.get("host"),
        "job": info.get("job"),
        "token": info.get("token"),
        **extra,
    }
    # One short O_APPEND write per line: lines from concurrent processes do not interleave.
    fd = os.open(run_dir / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (json.dumps(line, sort_keys=True) + "\n").encode())
    finally:
        os.close(fd)


def stale_reason(holder: dict[str, Any], age_s: float, stale_after_s: float) -> str | None:
    """Why ``holder``'s claim may be taken over (None: it is live). ``age_s``: seconds since its heartbeat."""
    me = _me()
    if holder.get("job") and holder.get("job") == me["job"]:
        return f"claimed by this same cluster job {holder['job']} before a requeue"
    if holder.get("host") == me["host"] and isinstance(holder.get("pid"), int):
        pid = holder["pid"]
        if not _pid_alive(pid):
            return f"pid {pid} on this host is dead"
        started = holder.get("proc_start")
        if started is not None and _proc_start(pid) not in (None, started):
            return f"pid {pid} on this host is another process now"
        return None
    if age_s > stale_after_s:
        return f"no heartbeat for {age_s:.0f}s (> {stale_after_s:.0f}s)"
    return None


def live_holder(run_dir: Path, stale_after_s: float = DEFAULT_STALE_AFTER_S) -> dict[str, Any] | None:
    """The claim's content while another live process holds ``run_dir``'s run; None when nobody (alive) does."""
    path = Path(run_dir) / CLAIM_FILE
    holder = _read(path)
    if holder is None:
        return None
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None
    if not holder:
        return {"pid": "?", "host": "?"} if age <= stale_after_s else None
    return holder if stale_reason(holder, age, stale_after_s) is None else None


def acquire(run_dir: Path, stale_after_s: float = DEFAULT_STALE_AFTER_S) -> Claim:
    """Claim the run in ``run_dir`` for this process; :class:`ClaimHeld` if another live process holds it."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / CLAIM_FILE
    with FileLock(str(run_dir / LOCK_FILE), timeout=60):
        holder = _read(path)
        event = "fresh"
        if holder is not None:
            try:
                age = time.time() - path.stat().st_mtime
            except FileNotFoundError:
                age = 0.0
            # an unreadable claim (claims are written atomically, so: another user's file we may not read) is
            # judged by its heartbeat alone
            reason = (
                stale_reason(holder, age, stale_after_s)
                if holder
                else (f"unreadable claim file without heartbeat for {age:.0f}s" if age > stale_after_s else None)
            )
            if reason is None:
                raise ClaimHeld(run_dir.name, holder or {"pid": "?", "host": "?"})
            event = "recovered"
        info = _me()
        atomic_write_json(path, info)
    if event == "recovered":
        _log(run_dir, event, info, previous=holder)
    return Claim(path, info)


def executions(run_dir: Path) -> list[dict[str, Any]]:
    """The ``executing`` events of a run's claim log: one per time a process started (or resumed) executing it."""
    path = Path(run_dir) / LOG_FILE
    if not path.exists():
        return []
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return [x for x in lines if x["event"] == "executing"]
