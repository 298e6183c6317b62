"""Execute one run spec: data, supernet, method, epochs, checkpoints, benchmark queries, the stored record.

Exact resume: each epoch ends with an atomic checkpoint holding the supernet, the method's state, the weight
optimiser, every RNG (python, numpy, torch CPU/CUDA, the method's generator) and the data streams' positions,
plus the metrics so far. A run killed at any moment and started again continues from the last complete epoch and
ends with the same record (cells and losses) as an uninterrupted run on the same device.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import platform
import random
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .benchmarks import Benchmark, open_benchmark
from .claims import DEFAULT_STALE_AFTER_S
from .config import RunSpec, resolve
from .data import BatchStream, load_dataset, search_split
from .data.splits import split_name
from .errors import BenchmarkError, ConfigError
from .method import get_method, make_context, plain_state, rng_state, set_rng_state
from .numerics import numerics, torch_dtype
from .ranking import distribution_entry, ranking_quality, ranking_sample, ranking_truth_dataset
from .records import BenchmarkInfo, DataInfo, Environment, EpochMetrics, FinalResult, RunRecord, Timings
from .store import Store, atomic_write_bytes, json_default, read_record
from .supernet import Supernet, SupernetConfig

# 2: plain data only, loaded with torch.load(weights_only=True); a version-1 file (numpy RNG state) is set aside.
# 3: the supernet state holds which (edge, op) rows have a gradient (sgd_semantics); a version-2 file is set aside
CHECKPOINT_VERSION = 3
log = logging.getLogger(__name__)
#: how often candidate scoring reports progress (seconds), so a long selection is never silent
SELECT_PROGRESS_S = 5.0
#: the selection-stream salt of the ranking-quality batches (0: derive, 1: ENAS's controller phase)
RANK_SALT = 2


@dataclass
class RunOptions:
    """Where and how runs execute (not part of a run's identity)."""

    results: Path
    data_root: Path | None = None
    benchmark: str | Path | None = None
    device: str = "cpu"
    force: bool = False  # rerun even when a finished record exists
    keep_checkpoint: bool = False
    #: the seeds of one method and configuration as one vectorized search: "auto" (on a GPU, when the method
    #: can), "on" (any device; a method that cannot is an error), "off" (nasbench_suite.seedgroup)
    vectorize: str = "off"
    claim_stale_s: float = (
        DEFAULT_STALE_AFTER_S  # a claim from another host without heartbeat for this long is taken over
    )


#: Receives the step and epoch events described in :mod:`nasbench_suite.progress`.
ProgressFn = Callable[[dict[str, Any]], None]


@lru_cache(maxsize=1)
def code_version() -> str:
    """The git commit of the source tree (``+dirty`` when modified), else the package version."""
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
        if sha:
            dirty = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
            return f"{sha}{'+dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        pass
    return f"nas-suite {__version__}"


def config_values(config: dict[str, Any]) -> dict[str, Any]:
    """The flat ``{key: value}`` of a resolved config (``ResolvedConfig.to_dict()`` or a record's ``config``):
    protocol and method settings, JSON-normalised (tuples as lists); where each value came from is left out."""
    flat = {**(config.get("protocol") or {}), **(config.get("hparams") or {})}
    return json.loads(json.dumps(flat, sort_keys=True, default=json_default))


def config_hash(config: dict[str, Any]) -> str:
    """A short hash of :func:`config_values`: equal exactly when every resolved setting is equal."""
    text = json.dumps(config_values(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stored_config_mismatch(record: RunRecord, config: dict[str, Any]) -> str | None:
    """None when ``record`` was made with the resolved ``config``; else which keys differ (stored vs now).

    A record without a stored config (never written by this tool) cannot be compared and counts as matching.
    """
    if not record.config:
        return None
    old, new = config_values(record.config), config_values(config)
    if config_hash(record.config) == config_hash(config):
        return None
    keys = sorted(k for k in set(old) | set(new) if old.get(k, "<absent>") != new.get(k, "<absent>"))
    return ", ".join(f"{k}: stored {old.get(k, '<absent>')!r}, now {new.get(k, '<absent>')!r}" for k in keys)


def check_stored_config(store: Store, spec: RunSpec, record: RunRecord | None = None) -> None:
    """ConfigError when ``spec``'s finished record was made under another resolved configuration than the one
    that would run now (a preset, a default or the code changed): reusing it would report old numbers as new."""
    record = record if record is not None else read_record(store.record_path(spec.run_id))
    cls = get_method(spec.method)
    diff = stored_config_mismatch(record, resolve(spec, cls.Hparams, cls.name).to_dict())
    if diff:
        raise ConfigError(
            f"stored run {spec.run_id} in {store.root} was made with other settings ({diff}); "
            "rerun with --force to replace it, or use another --results folder"
        )


def check_stored_configs(plan: list[RunSpec], results: Path) -> None:
    """:func:`check_stored_config` for every finished run of ``plan``, before anything runs: one ConfigError
    naming the first mismatch and how many more there are."""
    store = Store(results)
    errors = []
    for spec in plan:
        if store.is_done(spec.run_id):
            try:
                check_stored_config(store, spec)
            except ConfigError as e:
                errors.append(str(e))
    if errors:
        more = f" [{len(errors) - 1} more stored run(s) of this plan differ too]" if len(errors) > 1 else ""
        raise ConfigError(errors[0] + more)


def seed_everything(seed: int) -> None:
    """The one place global seeds are set."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_snapshot() -> dict[str, Any]:
    # numpy's legacy state as a dict of lists and numbers: a checkpoint holds plain data only (weights_only load)
    snap = {
        "python": random.getstate(),
        "numpy": plain_state(np.random.get_state(legacy=False)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        snap["cuda"] = torch.cuda.get_rng_state_all()
    return snap


def _rng_restore(snap: dict[str, Any]) -> None:
    random.setstate(snap["python"])
    np.random.set_state(snap["numpy"])
    torch.set_rng_state(snap["torch"])
    if "cuda" in snap and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(snap["cuda"])


def _reason(exc: BaseException) -> str:
    """One line saying why a checkpoint was refused (torch's weights_only message runs over many lines)."""
    text = str(exc)
    refused = re.search(r"GLOBAL ([\w.]+)", text)  # "Unsupported global: GLOBAL x.y" / "unsupported GLOBAL x.y"
    if refused:
        return f"it refers to {refused.group(1)}, which a checkpoint never holds; not loaded"
    first = (text.strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def apply_protocol_fast_options(supernet: Supernet, p) -> None:
    """The protocol's opt-in GPU options (amp, tf32, channels_last, compile); a no-op at their defaults."""
    if (p.amp, p.tf32, p.channels_last, p.compile) == ("off", False, False, "off"):
        return
    from .supernet import apply_fast_options

    apply_fast_options(supernet, amp=p.amp, channels_last=p.channels_last or None, compile=p.compile)
    if p.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


class Run:
    """One run being executed: built from a spec, stepped epoch by epoch, checkpointed, recorded."""

    def __init__(self, spec: RunSpec, options: RunOptions, benchmark: Benchmark | None = None):
        self.spec = spec
        self.options = options
        cls = get_method(spec.method)
        self.method_cls = cls
        self.config = resolve(spec, cls.Hparams, cls.name)
        self.protocol = p = self.config.protocol
        self.store = Store(options.results)
        self.run_id = spec.run_id
        self.benchmark = benchmark if benchmark is not None else open_benchmark(options.benchmark)
        self.device = torch.device(options.device)

        # Everything the run creates (supernet, data, arch parameters, controllers) follows the protocol's numerics.
        with self.numerics():
            seed_everything(spec.seed)
            self.dataset = load_dataset(p.dataset, options.data_root)
            split = search_split(self.dataset, p.split_seed, official=p.split == "official")
            # As the reference's loaders: every training image once per epoch with a smaller last batch (no
            # drop_last; 391 steps at batch 64 on 25k images), and for each training image one validation image
            # drawn with replacement (xautodl's SearchDataset), so the arch batch has the train batch's size (draw()).
            stream = dict(device=self.device, batch_size=p.batch_size, dtype=torch_dtype(p.dtype), drop_last=False)
            self.train_stream = BatchStream.from_part(split.train, self.dataset, seed=spec.seed * 2 + 1, **stream)
            self.valid_stream = BatchStream.from_part(split.valid, self.dataset, seed=spec.seed * 2 + 2, **stream)
            self.split_name = split_name(self.dataset.name, p.split_seed, official=p.split == "official")
            self._valid_part = split.valid
            self.steps_per_epoch = p.steps_per_epoch or self.train_stream.steps_per_epoch

            self.supernet = Supernet(
                SupernetConfig(
                    p.C, p.N, self.dataset.num_classes, p.affine, p.track_running_stats, p.lastact_follows_flags
                )
            ).to(self.device, torch_dtype(p.dtype))
            apply_protocol_fast_options(self.supernet, p)
            self.method = cls(self.config.hparams)
            self.ctx = make_context(
                self.supernet,
                p,
                seed=spec.seed,
                steps_per_epoch=self.steps_per_epoch,
                device=self.device,
                selection_batches=self.selection_batches,
            )
            self.w_optimizer = self.ctx.w_optimizer
            self.method.setup(self.ctx)
        self.epochs_done: list[EpochMetrics] = []
        self.elapsed = 0.0  # search seconds accumulated over all sessions of this run
        self._progress: ProgressFn | None = None  # set by execute; receives step, epoch and select events
        self._rank_sample: tuple[str, list, list] | None = None  # (truth dataset, cells, test accuracies)
        #: how many seeds' searches ran as one vectorized search with this one (1: alone); set by the group runner
        self.vectorized_seeds = 1
        #: the RNG state the run starts its first epoch from (a group builds all its runs first: seedgroup.py)
        self._initial_rng = _rng_snapshot()

    def numerics(self):
        """The protocol's numerics (dtype, oneDNN, determinism) as a context: entered while the run is built and
        around every epoch, left in between, so other code in the process keeps its own settings."""
        p = self.protocol
        return numerics(p.dtype, p.onednn, p.deterministic)

    def selection_batches(self, epoch: int, *, augment: bool | None = None, salt: int = 0):
        """Validation batches for candidate scoring, from a stream seeded by (seed, epoch, salt): deriving a cell
        never consumes the search's own random numbers, so per-epoch derivation cannot change the search.

        Like the reference's ``valid_loader``: batches of ``select_batch_size`` over the validation part, a fresh
        shuffle per pass with a smaller last batch, the test transform unless the protocol's ``select_augment``
        (NB201's ENAS script) or ``augment`` says otherwise."""
        p = self.protocol
        bs = min(p.select_batch_size, len(self._valid_part))
        seed = 10_000 * (self.spec.seed + 1) + epoch + 1_000_003 * salt
        aug = p.select_augment if augment is None else augment
        stream = BatchStream.from_part(
            self._valid_part,
            self.dataset,
            device=self.device,
            batch_size=bs,
            seed=seed,
            augment=aug,
            drop_last=False,
            dtype=torch_dtype(p.dtype),
        )
        # candidate scoring reports progress; another pass (ENAS's controller phase, salt 1) is part of the epoch
        return stream if self._progress is None or salt else self._counted(stream, epoch)

    def _counted(self, stream, epoch: int):
        """``stream``, reporting every few seconds which selection batch (candidate being scored) it gives."""
        last = time.perf_counter()
        for i, batch in enumerate(stream, 1):
            if time.perf_counter() - last >= SELECT_PROGRESS_S:
                last = time.perf_counter()
                self._progress(
                    {
                        "run_id": self.run_id,
                        "kind": "select",
                        "epoch": epoch + 1,
                        "epochs": self.protocol.epochs,
                        "candidate": i,
                        "candidates": self.protocol.select_candidates,
                    }
                )
            yield batch

    # -- checkpoints ------------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "run_id": self.run_id,
            "epoch": len(self.epochs_done),
            "supernet": self.supernet.state_dict(),
            "method": self.method.state_dict(),
            "w_optimizer": self.w_optimizer.state_dict(),
            "train_stream": self.train_stream.state_dict(),
            "valid_stream": self.valid_stream.state_dict(),
            "ctx_rng": rng_state(self.ctx.rng),
            "rng": _rng_snapshot(),
            "epochs_done": [e.to_json() for e in self.epochs_done],  # plain data: a weights_only load reads it
            "elapsed": self.elapsed,
        }

    def save_checkpoint(self) -> None:
        buf = io.BytesIO()
        torch.save(self._state(), buf)
        atomic_write_bytes(self.store.checkpoint_path(self.run_id), buf.getvalue())

    def _apply_state(self, state: dict[str, Any]) -> None:
        self.supernet.load_state_dict(state["supernet"])
        self.method.load_state_dict(state["method"])
        self.w_optimizer.load_state_dict(state["w_optimizer"])
        self.train_stream.load_state_dict(state["train_stream"])
        self.valid_stream.load_state_dict(state["valid_stream"])
        set_rng_state(self.ctx.rng, state["ctx_rng"])
        _rng_restore(state["rng"])
        self.epochs_done = [EpochMetrics.from_json(e) for e in state["epochs_done"]]
        self.elapsed = float(state["elapsed"])

    def try_resume(self) -> bool:
        """Load the last checkpoint if there is a usable one; any other is set aside, never used.

        Loaded with ``weights_only=True``: a checkpoint is data (tensors, numbers, strings, lists, dicts), and a
        planted one that asks for anything else is refused without running it. A checkpoint that is unreadable, of
        an older format or another run, or that loads but no longer fits the code (a changed network or method
        state) is moved to ``checkpoint.corrupt-<time>.pt`` and the run starts from scratch, from exactly the state
        an uninterrupted run starts from.
        """
        path = self.store.checkpoint_path(self.run_id)
        if not path.exists():
            return False
        fresh = copy.deepcopy(self._state())  # (state_dict() returns the live tensors)
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
            if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
                raise ValueError(f"not a version-{CHECKPOINT_VERSION} nas-suite checkpoint")
            if state.get("run_id") != self.run_id:
                raise ValueError(f"a checkpoint of run {state.get('run_id')!r}")
            self._apply_state(state)
        except Exception as e:  # noqa: BLE001 - any unusable checkpoint is set aside the same way
            self._apply_state(fresh)
            bad = path.with_name(f"checkpoint.corrupt-{int(time.time())}.pt")
            path.rename(bad)
            self._log(f"ignoring unreadable checkpoint {path} ({_reason(e)}); moved to {bad.name}, starting afresh")
            return False
        return True

    def _log(self, msg: str) -> None:
        log.warning(msg)

    # -- the loop ---------------------------------------------------------------------------------------------
    def run_epoch(self, epoch: int) -> EpochMetrics:
        """Train one epoch, derive the cell, query the benchmark; return the epoch's metrics line."""
        with self.numerics():
            return self._run_epoch(epoch)

    def _run_epoch(self, epoch: int) -> EpochMetrics:
        t0 = time.perf_counter()
        self.begin_epoch(epoch)
        sums: dict[str, float] = {}
        for step in range(self.steps_per_epoch):
            train_batch, valid_batch = self.next_batches()
            self.add_step(sums, self.method.search_step(train_batch, valid_batch, epoch, step), epoch, step)
        self.method.end_epoch(epoch)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return self.finish_epoch(epoch, sums, time.perf_counter() - t0)

    def begin_epoch(self, epoch: int) -> None:
        """Train mode, the epoch's learning rate, the method's per-epoch schedules."""
        self.supernet.train()
        for group in self.w_optimizer.param_groups:
            group["lr"] = self.protocol.lr_at(epoch)
        self.method.begin_epoch(epoch)

    def next_batches(self):
        """The step's train batch and, for each of its images, one validation image drawn with replacement."""
        train_batch = next(self.train_stream)
        return train_batch, self.valid_stream.draw(len(train_batch[1]))

    def add_step(self, sums: dict[str, float], out: dict[str, float], epoch: int, step: int) -> None:
        """Add a step's logged scalars to the epoch's sums and report the step."""
        for k, v in out.items():
            sums[k] = sums.get(k, 0.0) + float(v)
        if self._progress:
            loss = sums.get("train_loss")
            self._progress(
                {
                    "kind": "step",
                    "run_id": self.run_id,
                    "epoch": epoch + 1,
                    "epochs": self.protocol.epochs,
                    "step": step + 1,
                    "steps": self.steps_per_epoch,
                    "loss": None if loss is None else loss / (step + 1),
                }
            )

    def finish_epoch(self, epoch: int, sums: dict[str, float], search_s: float) -> EpochMetrics:
        """The epoch's metrics line after its ``search_s`` seconds of search: mean step scalars, the architecture
        distribution, ranking quality and the derived cell when due (their time: ``wall_s``, ranking excluded)."""
        t0 = time.perf_counter()
        line = EpochMetrics(epoch, lr=self.protocol.lr_at(epoch), search_s=search_s)
        line.update({k: v / self.steps_per_epoch for k, v in sums.items()})  # the method's scalars, kept by name
        with torch.no_grad():  # search dynamics: the method's architecture distribution (logging only)
            line.update(distribution_entry(self.method.arch_distribution()))
        rank_s = 0.0
        if self.ranks_at(epoch):
            line.update(self._rank_quality(epoch))
            rank_s = line.scalars["rank_s"]
        if self.derives_at(epoch):
            cell = self.method.derive(epoch)
            line.update(arch=cell.arch_str, bench=self._bench(cell))
        else:  # derivation is logging only (it never changes the search): skipped between derive_every epochs
            line.update(arch=None, bench={})
        line.wall_s = search_s + time.perf_counter() - t0 - rank_s  # a measurement, not the method's cost: kept out
        return line

    def ranks_at(self, epoch: int) -> bool:
        """Whether ranking quality is measured after ``epoch``: every ``rank_every`` epochs and after the last,
        unless ``rank_cells`` is 0."""
        p = self.protocol
        return p.rank_cells > 0 and (epoch == p.epochs - 1 or (epoch + 1) % p.rank_every == 0)

    def _rank_quality(self, epoch: int) -> dict[str, Any]:
        """Score the fixed ranking sample with the current supernet (the method's ``score_cells``: eval mode, a
        selection stream of its own, salt :data:`RANK_SALT`) and compare with the benchmark's test accuracy."""
        t0 = time.perf_counter()
        if self._rank_sample is None:
            ds = ranking_truth_dataset(self.benchmark, self.protocol.dataset)
            cells = ranking_sample(self.protocol.rank_cells)
            truth = []
            for cell in cells:
                try:
                    truth.append(self.benchmark.query(cell, ds).test)
                except BenchmarkError:  # a partial benchmark: that cell is left out of the correlation
                    truth.append(None)
            self._rank_sample = (ds, cells, truth)
        ds, cells, truth = self._rank_sample
        scores = self.method.score_cells(cells, self.selection_batches(epoch, salt=RANK_SALT))
        out = ranking_quality(scores, truth)
        return {**out, "rank_dataset": ds, "rank_s": time.perf_counter() - t0}

    def derives_at(self, epoch: int) -> bool:
        """Whether the cell is derived after ``epoch``: every ``derive_every`` epochs and always after the last
        (0: after the last only, as NB201's RANDOM-NAS script)."""
        k = self.protocol.derive_every
        return epoch == self.protocol.epochs - 1 or (k > 0 and (epoch + 1) % k == 0)

    def _bench(self, cell) -> dict[str, dict[str, float | None]]:
        try:
            return {ds: {"valid": r.valid, "test": r.test} for ds, r in self.benchmark.query_all(cell).items()}
        except Exception as e:  # noqa: BLE001 - a partial benchmark must not kill a long search
            self._log(f"benchmark query failed for {cell}: {e}")
            return {}

    def execute(self, progress: ProgressFn | None = None, stop_after: int | None = None) -> RunRecord | None:
        """Run (or resume) to the end and write the record; returns it.

        ``stop_after=k`` stops after epoch k's checkpoint as if the process had been killed there (returns None).
        """
        resumed = self.start(progress)
        for epoch in range(len(self.epochs_done), self.protocol.epochs):
            if stop_after is not None and epoch >= stop_after:
                return None
            self.end_epoch(self.run_epoch(epoch))
        return self.finish(resumed)

    def start(self, progress: ProgressFn | None = None) -> bool:
        """Before the first epoch of this session: check the store, resume from the checkpoint if there is a usable
        one (returns whether it did)."""
        self.store.ensure_writable()
        self._progress = progress
        return self.try_resume()

    def end_epoch(self, line: EpochMetrics) -> None:
        """Keep an epoch's line: metrics file, checkpoint, progress event."""
        self.epochs_done.append(line)
        self.elapsed += line.wall_s
        self.store.write_metrics(self.run_id, self.epochs_done)
        self.save_checkpoint()
        if self._progress:
            self._progress(
                {
                    "kind": "epoch",
                    "run_id": self.run_id,
                    "epoch": line.epoch + 1,
                    "epochs": self.protocol.epochs,
                    "steps": self.steps_per_epoch,
                    "line": line.to_json(),
                }
            )

    def finish(self, resumed: bool) -> RunRecord:
        """Write the record (and drop the checkpoint unless kept); returns the record."""
        record = self.build_record(resumed)
        self.store.write_record(record)
        if not self.options.keep_checkpoint:
            self.store.checkpoint_path(self.run_id).unlink(missing_ok=True)
        return record

    def build_record(self, resumed: bool) -> RunRecord:
        """The finished run's record, from its epochs and what it was built with."""
        last = self.epochs_done[-1]
        return RunRecord(
            run_id=self.run_id,
            status="done",
            method=self.method_cls.name,
            variant=self.method.variant(),
            seed=self.spec.seed,
            protocol=self.spec.protocol,
            dataset=self.protocol.dataset,
            spec=self.spec.to_dict(),
            config=self.config.to_dict(),
            config_hash=config_hash(self.config.to_dict()),
            code_version=code_version(),
            environment=Environment(
                device=str(self.device) if self.device.type != "cuda" else torch.cuda.get_device_name(self.device),
                torch=torch.__version__,
                python=platform.python_version(),
                host=platform.node(),
            ),
            data=DataInfo(
                dataset=self.dataset.name, data_root=str(self.options.data_root or ""), split=self.split_name
            ),
            benchmark=BenchmarkInfo(
                name=self.benchmark.name,
                provenance=self.benchmark.provenance,
                fingerprint=self.benchmark.fingerprint(),
                path=str(self.options.benchmark or ""),
                datasets=list(self.benchmark.datasets),
                metrics=list(self.benchmark.metrics),
            ),
            method_info=self.method.run_info(),
            final=FinalResult(arch=last.arch, bench=last.bench, train_loss=last.train_loss, valid_loss=last.valid_loss),
            timings=Timings(
                total_s=self.elapsed,
                search_s=sum(e.search_s for e in self.epochs_done),
                per_epoch_s=[e.wall_s for e in self.epochs_done],
                steps_per_epoch=self.steps_per_epoch,
                resumed=resumed,
                vectorized_seeds=self.vectorized_seeds,
            ),
            finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        )
