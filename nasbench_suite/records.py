"""The run record and the per-epoch metrics line: the one schema of what a run stores, defined once.

A finished run stores a :class:`RunRecord` (``runs/<run_id>/record.json``) and one :class:`EpochMetrics` per epoch
(``runs/<run_id>/metrics.jsonl``). The runner builds them, the store reads and writes them, the analysis and the
regression check read their fields; nobody re-reads the JSON with ``.get()`` chains, so a renamed key is an error
here, not a silent ``None`` somewhere else.

On disk the JSON keeps the shape it has had since schema 1 (``to_json`` writes exactly the keys the runner always
wrote): records written by every earlier version load, and ``from_json(d).to_json() == d`` for each of them. Keys
this version does not know are kept (``extra``; for an epoch line, a method's own values are ``scalars``), never
dropped. ``from_json`` checks the types of what it reads and raises ``ValueError`` naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

#: the version of the record layout this code writes; a record with a higher one is refused by the store
SCHEMA_VERSION = 1

#: ``{dataset: {"valid": accuracy or None, "test": accuracy or None}}``: a cell's benchmark numbers (%)
BenchScores = dict[str, dict[str, float | None]]

# Kinds a stored value may have, and their name in an error (None is always allowed: a value the run did not
# have, or a key an older record lacks).
_KINDS: dict[str, tuple[tuple[type, ...], str]] = {
    "number": ((int, float), "a number"),
    "integer": ((int,), "an integer"),
    "text": ((str,), "a string"),
    "flag": ((bool,), "true or false"),
    "list": ((list,), "a list"),
    "mapping": ((dict,), "a mapping"),
}


def _check(value: Any, kind: str, where: str) -> Any:
    """``value`` when it is None or of ``kind``; else ValueError naming ``where`` (a bool is never a number)."""
    if value is None or kind == "any":
        return value
    types, name = _KINDS[kind]
    if not isinstance(value, types) or (kind != "flag" and isinstance(value, bool)):
        raise ValueError(f"{where} is {value!r}, not {name}")
    return value


def _mapping(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValueError(f"{where} is {data!r}, not a mapping")
    return data


def check_bench(bench: Any, where: str) -> BenchScores:
    """``bench`` validated as :data:`BenchScores` (a dataset's entry may be null); ValueError otherwise."""
    for ds, res in _mapping({} if bench is None else bench, where).items():
        if res is not None:
            for metric, v in _mapping(res, f"{where}.{ds}").items():
                _check(v, "number", f"{where}.{ds}.{metric}")
    return {} if bench is None else bench


def bench_value(bench: BenchScores, dataset: str, metric: str) -> float | None:
    """The ``metric`` ("valid" | "test") accuracy of ``dataset`` in ``bench``; None when the benchmark lacks it."""
    return (bench.get(dataset) or {}).get(metric)


class _Part:
    """A JSON object of the record with known, typed keys (``KINDS``); unknown keys are kept in ``extra``.

    ``to_json`` writes every known key (None as null), the shape the runner has always written, except the keys an
    older record did not have (``absent``, still None): such a record writes back exactly as it was read.
    """

    KINDS: ClassVar[dict[str, str]] = {}
    extra: dict[str, Any]
    absent: frozenset[str]

    @classmethod
    def _names(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name not in ("extra", "absent")]

    def to_json(self) -> dict[str, Any]:
        """The part as the JSON object stored on disk."""
        out = dict(self.extra)
        for name in self._names():
            v = getattr(self, name)
            if v is not None or name not in self.absent:
                out[name] = v.to_json() if isinstance(v, _Part) else v
        return out

    @classmethod
    def _read(cls, data: dict[str, Any], values: dict[str, Any]):
        names = cls._names()
        return cls(
            **values,
            extra={k: v for k, v in data.items() if k not in names},
            absent=frozenset(n for n in names if n not in data),
        )

    @classmethod
    def from_json(cls, data: Any, where: str):
        """Read a stored JSON object; ValueError naming the key whose value has the wrong type."""
        data = _mapping({} if data is None else data, where)
        return cls._read(data, {n: _check(data.get(n), cls.KINDS.get(n, "any"), f"{where}.{n}") for n in cls._names()})


@dataclass
class Environment(_Part):
    """Where the run executed."""

    device: str | None = None  # "cpu", "cuda:0", or the GPU's name
    torch: str | None = None
    python: str | None = None
    host: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    absent: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    KINDS: ClassVar[dict[str, str]] = {"device": "text", "torch": "text", "python": "text", "host": "text"}


@dataclass
class DataInfo(_Part):
    """The search data."""

    dataset: str | None = None
    data_root: str | None = None  # "" for the embedded data / default location
    split: str | None = None  # the split's name (absent in records written before splits were recorded)
    extra: dict[str, Any] = field(default_factory=dict)
    absent: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    KINDS: ClassVar[dict[str, str]] = {"dataset": "text", "data_root": "text", "split": "text"}

    @property
    def label(self) -> str | None:
        """``"<dataset> from <root>"`` for reports; None when the record says nothing about its data."""
        if self.dataset is None and not self.data_root:
            return None
        return f"{self.dataset or '?'} from {self.data_root or 'embedded/default location'}"


@dataclass
class BenchmarkInfo(_Part):
    """The benchmark the found cells were looked up in."""

    name: str | None = None
    provenance: str | None = None
    fingerprint: str | None = None
    path: str | None = None
    #: what the benchmark holds, so a report keeps its columns when a found cell is not in it (None: an older
    #: record, written before these were recorded)
    datasets: list[str] | None = None
    metrics: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    absent: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    KINDS: ClassVar[dict[str, str]] = {
        "name": "text",
        "provenance": "text",
        "fingerprint": "text",
        "path": "text",
        "datasets": "list",
        "metrics": "list",
    }


@dataclass
class FinalResult(_Part):
    """The run's answer: the last epoch's cell, its benchmark numbers and losses."""

    arch: str | None = None
    bench: BenchScores = field(default_factory=dict)
    train_loss: float | None = None
    valid_loss: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    absent: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    KINDS: ClassVar[dict[str, str]] = {"arch": "text", "train_loss": "number", "valid_loss": "number"}

    @classmethod
    def from_json(cls, data: Any, where: str) -> FinalResult:
        part = super().from_json(data, where)
        part.bench = check_bench(part.bench, f"{where}.bench")
        return part


@dataclass
class Timings(_Part):
    """Seconds: ``total_s`` (the epochs' wall time, ranking measurements excluded), ``search_s`` (their training,
    without derivation), ``per_epoch_s``; and how the run executed: ``vectorized_seeds`` = K when its search ran as
    one of K seeds in one vectorized search (``nasbench_suite.seedgroup``; its search time is then the group's / K),
    1 alone, None in a record older than that."""

    total_s: float | None = None
    search_s: float | None = None
    per_epoch_s: list[float] = field(default_factory=list)
    steps_per_epoch: int | None = None
    resumed: bool | None = None
    vectorized_seeds: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    absent: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    KINDS: ClassVar[dict[str, str]] = {
        "total_s": "number",
        "search_s": "number",
        "per_epoch_s": "list",
        "steps_per_epoch": "integer",
        "resumed": "flag",
        "vectorized_seeds": "integer",
    }


@dataclass
class RunRecord(_Part):
    """One finished run (``record.json``): identity, the exact resolved config, provenance, answer, timings.

    ``spec`` is ``RunSpec.to_dict()``, ``config`` is ``ResolvedConfig.to_dict()`` (``protocol``, ``hparams``,
    ``sources``) and ``method_info`` the method's ``run_info()``: free-form mappings, read through the properties
    below.
    """

    run_id: str
    method: str | None = None
    seed: int | None = None
    schema_version: int = SCHEMA_VERSION
    status: str | None = None  # "done" for a finished run
    variant: str | None = None  # the method's variant name (row label), e.g. "DARTS-V1"
    protocol: str | None = None  # the preset's name
    dataset: str | None = None  # the search dataset
    spec: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    config_hash: str | None = None  # absent in records written before it was recorded
    code_version: str | None = None
    environment: Environment = field(default_factory=Environment)
    data: DataInfo = field(default_factory=DataInfo)
    benchmark: BenchmarkInfo = field(default_factory=BenchmarkInfo)
    method_info: dict[str, Any] = field(default_factory=dict)
    final: FinalResult = field(default_factory=FinalResult)
    timings: Timings = field(default_factory=Timings)
    finished_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    absent: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    KINDS: ClassVar[dict[str, str]] = {
        "run_id": "text",
        "method": "text",
        "seed": "integer",
        "schema_version": "integer",
        "status": "text",
        "variant": "text",
        "protocol": "text",
        "dataset": "text",
        "spec": "mapping",
        "config": "mapping",
        "config_hash": "text",
        "code_version": "text",
        "method_info": "mapping",
        "finished_at": "text",
    }
    PARTS: ClassVar[dict[str, type[_Part]]] = {
        "environment": Environment,
        "data": DataInfo,
        "benchmark": BenchmarkInfo,
        "final": FinalResult,
        "timings": Timings,
    }

    @classmethod
    def from_json(cls, data: Any, where: str = "record") -> RunRecord:
        """Read a stored record (any schema up to :data:`SCHEMA_VERSION`); ValueError names a mistyped key."""
        data = _mapping(data, where)
        if not isinstance(data.get("run_id"), str):
            raise ValueError(f"{where}.run_id is {data.get('run_id')!r}, not a string")
        names = cls._names()
        values = {}
        for n in names:
            part = cls.PARTS.get(n)
            values[n] = (
                part.from_json(data.get(n), f"{where}.{n}")
                if part
                else _check(data.get(n), cls.KINDS.get(n, "any"), f"{where}.{n}")
            )
        if values["schema_version"] is None:
            raise ValueError(f"{where} has no schema_version")
        for n in ("spec", "config", "method_info"):
            values[n] = values[n] or {}
        rec = cls._read(data, values)
        _check(rec.protocol_settings, "mapping", f"{where}.config.protocol")
        _check(rec.epochs, "integer", f"{where}.config.protocol.epochs")
        _check(rec.hparams, "mapping", f"{where}.config.hparams")
        return rec

    @property
    def is_done(self) -> bool:
        """Whether the run finished."""
        return self.status == "done"

    @property
    def variant_name(self) -> str | None:
        """The row label's base: the method's variant, or its name for records without one."""
        return self.variant or self.method

    @property
    def protocol_settings(self) -> dict[str, Any]:
        """The resolved protocol settings (``config["protocol"]``)."""
        return self.config.get("protocol") or {}

    @property
    def hparams(self) -> dict[str, Any]:
        """The resolved method hyperparameters (``config["hparams"]``)."""
        return self.config.get("hparams") or {}

    @property
    def epochs(self) -> int | None:
        """The number of search epochs the run was configured with."""
        return self.protocol_settings.get("epochs")

    @property
    def overrides(self) -> dict[str, str]:
        """The user's ``--set`` overrides of the spec, as text."""
        ov = self.spec.get("overrides") or {}
        if isinstance(ov, (list, tuple)):  # RunSpec keeps them as pairs; to_dict writes a mapping
            ov = dict(ov)
        return {str(k): str(v) for k, v in ov.items()}


@dataclass
class EpochMetrics:
    """One epoch's line in ``metrics.jsonl``.

    Typed: the epoch (0-based), the derived cell ``arch`` (None where ``derive_every`` skipped it) and its
    benchmark numbers ``bench``, the learning rate, seconds ``search_s`` (training) and ``wall_s`` (the epoch,
    ranking measurement excluded), the mean losses/accuracies over the epoch's steps, and ``arch_probs`` (the
    method's 6 x 5 architecture distribution, when it has one). ``scalars``: every other value of the line, kept
    as recorded: a method's own means (GDAS's ``tau``, E2NAS's ``gamma``, ...), ``arch_entropy`` and the ranking
    quality (``rank_kendall``, ``rank_dataset``, ``rank_s``, ...; see :mod:`nasbench_suite.ranking`).
    """

    epoch: int
    arch: str | None = None
    bench: BenchScores = field(default_factory=dict)
    lr: float | None = None
    search_s: float | None = None
    wall_s: float | None = None
    train_loss: float | None = None
    train_acc: float | None = None
    valid_loss: float | None = None
    valid_acc: float | None = None
    arch_probs: list[list[float]] | None = None
    scalars: dict[str, Any] = field(default_factory=dict)

    KINDS: ClassVar[dict[str, str]] = {
        "epoch": "integer",
        "arch": "text",
        "lr": "number",
        "search_s": "number",
        "wall_s": "number",
        "train_loss": "number",
        "train_acc": "number",
        "valid_loss": "number",
        "valid_acc": "number",
        "arch_probs": "list",
    }
    #: written even when None/empty: a skipped derivation is stored as ``"arch": null, "bench": {}``
    ALWAYS: ClassVar[tuple[str, ...]] = ("epoch", "arch", "bench")

    @classmethod
    def _names(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "scalars"]

    def update(self, values: dict[str, Any] | None = None, **more: Any) -> None:
        """Set values by their line key: typed fields by name, anything else into ``scalars``."""
        names = self._names()
        for k, v in {**(values or {}), **more}.items():
            if k in names:
                setattr(self, k, v)
            else:
                self.scalars[k] = v

    def to_json(self) -> dict[str, Any]:
        """The line as stored (one flat JSON object; typed fields that are None are left out, as the runner always
        did, except :attr:`ALWAYS`)."""
        out = dict(self.scalars)
        for name in self._names():
            v = getattr(self, name)
            if v is not None or name in self.ALWAYS:
                out[name] = v
        return out

    @classmethod
    def from_json(cls, data: Any, where: str = "epoch line") -> EpochMetrics:
        """Read a stored line; ValueError naming a mistyped key."""
        data = _mapping(data, where)
        names = cls._names()
        values = {n: _check(data.get(n), cls.KINDS.get(n, "any"), f"{where}.{n}") for n in names if n != "bench"}
        if values["epoch"] is None:
            raise ValueError(f"{where} has no epoch")
        bench = check_bench(data.get("bench"), f"{where}.bench")
        return cls(**values, bench=bench, scalars={k: v for k, v in data.items() if k not in names})

    def columns(self) -> dict[str, Any]:
        """Every scalar of the line by its key (typed and ``scalars`` alike; not ``bench`` or ``arch_probs``):
        what a tidy per-epoch frame shows of it."""
        return {k: v for k, v in self.to_json().items() if v is None or isinstance(v, (int, float, str, bool))}
