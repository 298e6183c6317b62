"""Protocols, presets, ``--set`` overrides and run specs.

Every number of a protocol is data: the presets in ``nasbench_suite/presets/*.yaml`` give the shared values
(``base``) and per-method values (``methods``). A method's own hyperparameters are a dataclass on the method
class (``Method.Hparams``). Resolution order, later wins: Protocol defaults < preset base < preset per-method <
the user's ``--set key=value``. Keys form one flat namespace (protocol fields and the method's hparam fields), so
``--set epochs=3 --set eps=0.25`` reads naturally; an unknown key or a value of the wrong type is a
:class:`ConfigError` that lists what is valid.

Every key declares its valid values beside its default, one line each: ``lr: float = setting(0.025, gt=0)``
(bounds ``ge``/``gt``/``le``/``lt``, a set ``choices=(...)``, or a ``check`` function raising ValueError; booleans
are their own set). :func:`resolve` refuses a value outside them with one line naming the key, the value, the
range and where the value came from, so a whole plan is checked before anything runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from importlib import resources
from typing import Any

import yaml

from .errors import ConfigError

AMP_MODES = ("off", "bf16")  # the Protocol's mixed-precision modes (supernet.AMP_DTYPES maps them to dtypes)
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")  # torch.compile modes of the mixture forward

#: The largest seed (and split seed): numpy and torch take it, and every seed derived from it, without overflow.
MAX_SEED = 2**31 - 1


@dataclass(frozen=True)
class Range:
    """The valid values of one setting. Bounds apply to numbers (each element of a tuple); ``None`` always passes
    for an optional key (it means "the default behaviour"); ``check`` raises ValueError for a bad value."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] | None = None
    check: Callable[[Any], Any] | None = None
    doc: str = ""  # what ``check`` accepts, for messages and docs

    def describe(self) -> str:
        """``> 0 and <= 1``, ``one of 'off', 'bf16'``, or the ``doc`` of a check."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        parts = [
            f"{op} {_num(v)}"
            for op, v in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
            if v is not None
        ]
        return " and ".join(parts) or self.doc or "any value"

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not valid (None: it is)."""
        if value is None:
            return None
        if isinstance(value, tuple):
            return next((p for p in map(self.problem, value) if p), None)
        if self.choices is not None and value not in self.choices:
            return self.describe()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            ok = (
                (self.ge is None or value >= self.ge)
                and (self.gt is None or value > self.gt)
                and (self.le is None or value <= self.le)
                and (self.lt is None or value < self.lt)
            )
            if not ok:
                return self.describe()
        if self.check is not None:
            try:
                self.check(value)
            except (TypeError, ValueError) as e:
                return self.doc or str(e)
        return None


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{v:g}"


def setting(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[Any, ...] | None = None,
    check: Callable[[Any], Any] | None = None,
    doc: str = "",
) -> Any:
    """A dataclass field with its valid values declared beside its default: ``lr: float = setting(0.025, gt=0)``."""
    rng = Range(ge, gt, le, lt, tuple(choices) if choices is not None else None, check, doc)
    return field(default=default, metadata={"valid": rng})


def valid_range(f: dataclasses.Field) -> Range | None:
    """The declared range of a field (None: undeclared; a boolean needs none)."""
    return f.metadata.get("valid")


def check_ranges(obj: Any, sources: Mapping[str, str] | None = None) -> None:
    """Refuse (ConfigError, one line) the first field of dataclass ``obj`` outside its declared range."""
    for f in fields(obj):
        rng = valid_range(f)
        value = getattr(obj, f.name)
        why = rng.problem(value) if rng is not None else None
        if why is not None:
            src = f" (from {sources[f.name]})" if sources and f.name in sources else ""
            raise ConfigError(f"{f.name}={value!r} is out of range: it must be {why}{src}")


@dataclass(frozen=True)
class Protocol:
    """Everything the runner needs that is shared by all methods (numbers from the protocol spec).

    Each key's valid values are declared beside its default (:func:`setting`); a new key is one line.
    """

    name: str = "quick"
    dataset: str = setting("digits", doc="a dataset name (checked against the data sources)")
    C: int = setting(16, ge=1, le=1024)
    N: int = setting(5, ge=1, le=100)
    epochs: int = setting(250, ge=1, le=100_000)
    batch_size: int = setting(64, ge=1, le=1_000_000)  # (and at most the search split: checked with the data)
    lr: float = setting(0.025, gt=0, le=100)
    lr_min: float = setting(0.001, ge=0, le=100)  # (and at most lr)
    lr_tmax: int | None = setting(None, ge=1, le=1_000_000)
    momentum: float = setting(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = setting(5e-4, ge=0, lt=1)
    grad_clip: float = setting(5.0, ge=0)  # 0 = no clipping
    arch_lr: float = setting(3e-4, gt=0, le=100)
    arch_betas: tuple[float, float] = setting((0.5, 0.999), ge=0, lt=1)
    arch_weight_decay: float = setting(1e-3, ge=0, lt=1)
    affine: bool = False
    track_running_stats: bool = False
    select_batch_size: int = setting(512, ge=1, le=1_000_000)
    select_candidates: int = setting(100, ge=1, le=15_625)
    # Derive (and look up) the cell after every k-th epoch and always after the last; 0 = after the last only.
    # Derivation never changes the search (own RNG streams, eval mode): it is logging, costly for scored methods.
    derive_every: int = setting(1, ge=0, le=1_000_000)
    # Supernet ranking quality (nasbench_suite/ranking.py): score rank_cells fixed cells every rank_every epochs (and
    # after the last) with the current weights, correlate with the benchmark; 0 cells = off. Logging only.
    rank_cells: int = setting(100, ge=0, le=15_625)
    rank_every: int = setting(10, ge=1, le=1_000_000)
    # "official": NB201's split files where they exist (CIFAR-10/100, ImageNet16-120), seeded halves elsewhere;
    # "seeded": seeded halves for every dataset (a partial data folder, a smoke test: not the protocol)
    split: str = setting("official", choices=("official", "seeded"))
    split_seed: int = setting(0, ge=0, le=MAX_SEED)  # the seeded split of datasets without an official one (digits)
    # Which weights the SGD step touches (nasbench_suite/sgd.py): "zero" = PyTorch 1.x zero_grad (the published
    # runs), "none" = PyTorch >= 2.0 (xautodl run today).
    sgd_semantics: str = setting("zero", choices=("zero", "none"))
    select_augment: bool = False  # candidate selection on augmented images (NB201's ENAS script), else test transform
    lastact_follows_flags: bool = False  # final BN takes affine/track_running_stats (NATS-Bench's model)
    steps_per_epoch: int | None = setting(None, ge=1, le=10_000_000)  # None = one pass over the weight split
    # Opt-in execution options for GPUs (docs/performance.md); the defaults are exact fp32 eager everywhere.
    amp: str = setting("off", choices=AMP_MODES)  # "bf16": autocast the supernet forward (changes numerics)
    tf32: bool = False  # TF32 matmuls/convolutions on CUDA (changes numerics)
    channels_last: bool = False  # channels-last activations (cuDNN's fast layout with bf16)
    compile: str = setting("off", choices=COMPILE_MODES)  # torch.compile the mixture forward
    # Numerics (nasbench_suite/numerics.py). The regression check runs float64 with oneDNN off so that its numbers
    # do not depend on the CPU's instruction set; real searches keep the fast defaults.
    # dtype: every tensor of the run (supernet, data, arch parameters, optimisers); numerics.DTYPES maps the names
    dtype: str = setting("float32", choices=("float32", "float64"))
    onednn: bool = True  # oneDNN CPU kernels (their float32 summation order depends on the instruction set)
    deterministic: bool = False  # torch.use_deterministic_algorithms for the run

    def lr_at(self, epoch: int) -> float:
        """Cosine schedule stepped once per epoch (xautodl's CosineAnnealingLR; period ``lr_tmax`` or epochs)."""
        import math

        tmax = self.lr_tmax or self.epochs
        return self.lr_min + (self.lr - self.lr_min) * (1 + math.cos(math.pi * epoch / tmax)) / 2


PROTOCOL_KEYS = tuple(f.name for f in fields(Protocol) if f.name != "name")


def preset_names() -> list[str]:
    """Names of the shipped protocol presets."""
    return sorted(p.name[:-5] for p in resources.files("nasbench_suite.presets").iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str) -> dict[str, Any]:
    """The raw preset mapping (``description``, ``base``, ``methods``)."""
    if name not in preset_names():
        raise ConfigError(f"unknown protocol preset {name!r}; choose one of: {', '.join(preset_names())}")
    text = resources.files("nasbench_suite.presets").joinpath(f"{name}.yaml").read_text()
    return yaml.safe_load(text)


def _field_types(cls) -> dict[str, Any]:
    import typing

    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}


def coerce(key: str, value: Any, typ: Any) -> Any:
    """Convert ``value`` (a string from the command line, or YAML data) to the field type ``typ``."""
    import types
    import typing

    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for a in inner:
            try:
                return coerce(key, value, a)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: cannot use {value!r}")
    if origin is tuple:
        items = value
        if isinstance(value, str):
            items = [v for v in value.strip("()[] ").split(",") if v.strip()]
        if not isinstance(items, (list, tuple)) or len(items) != len(args):
            raise ConfigError(f"{key} needs {len(args)} comma-separated values, got {value!r}")
        return tuple(coerce(key, v, a) for v, a in zip(items, args))
    if typ is bool:
        if isinstance(value, bool):
            return value
        s = str(value).strip().lower()
        if s in ("1", "true", "yes", "on"):
            return True
        if s in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key} needs true/false, got {value!r}")
    if typ is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key} needs an integer, got {value!r}")
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} needs an integer, got {value!r}") from None
        if not math.isfinite(f) or f != int(f):
            raise ConfigError(f"{key} needs an integer, got {value!r}")
        return int(f)
    if typ is float:
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} needs a number, got {value!r}") from None
        if not math.isfinite(f):
            raise ConfigError(f"{key} needs a finite number, got {value!r}")
        return f
    if typ is str:
        return str(value)
    raise ConfigError(f"{key}: unsupported type {typ}")


def parse_set(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Parse ``key=value`` strings; a malformed item is a :class:`ConfigError`."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or not key.replace("_", "").replace(".", "").isalnum():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        out[key] = value.strip()
    return out


@dataclass(frozen=True)
class RunSpec:
    """What to run: one method, one seed, one protocol preset, the user's overrides."""

    method: str
    seed: int
    protocol: str = "quick"
    overrides: tuple[tuple[str, str], ...] = ()
    dataset: str | None = None  # None = the preset's dataset

    @property
    def run_id(self) -> str:
        """A readable, deterministic id: the same spec always maps to the same stored run."""
        ds = self.dataset or "default"
        rid = f"{self.method}--{ds}--{self.protocol}--s{self.seed}"
        if self.overrides:
            h = hashlib.sha256(json.dumps(sorted(self.overrides)).encode()).hexdigest()[:8]
            rid += f"--{h}"
        return rid

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["overrides"] = dict(self.overrides)
        return d


@dataclass(frozen=True)
class ResolvedConfig:
    """A run's exact configuration: the protocol and the method's hyperparameters, all values explicit."""

    protocol: Protocol
    hparams: Any
    sources: Mapping[str, str] = field(default_factory=dict)  # key -> where its value came from

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocol": dataclasses.asdict(self.protocol),
            "hparams": dataclasses.asdict(self.hparams),
            "sources": dict(self.sources),
        }


def resolve(spec: RunSpec, hparams_cls: type, method_name: str) -> ResolvedConfig:
    """Resolve a spec against its preset and the method's Hparams dataclass."""
    preset = load_preset(spec.protocol)
    ptypes = _field_types(Protocol)
    htypes = _field_types(hparams_cls)
    clash = set(ptypes) & set(htypes)
    if clash:  # a programming error in a method class, not a user error
        raise TypeError(f"{hparams_cls.__name__} redefines protocol keys {sorted(clash)}")
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def apply(mapping: Mapping[str, Any], source: str) -> None:
        for key, raw in mapping.items():
            if key in ptypes and key != "name":
                values[key] = coerce(key, raw, ptypes[key])
            elif key in htypes:
                values[key] = coerce(key, raw, htypes[key])
            else:
                valid = sorted(k for k in list(ptypes) + list(htypes) if k != "name")
                raise ConfigError(
                    f"unknown setting {key!r} for {method_name} (from {source}); valid keys: {', '.join(valid)}"
                )
            sources[key] = source

    apply(preset.get("base", {}), f"preset {spec.protocol}")
    apply((preset.get("methods") or {}).get(method_name, {}), f"preset {spec.protocol} ({method_name})")
    if spec.dataset:
        apply({"dataset": spec.dataset}, "--dataset")
    apply(dict(spec.overrides), "--set")
    pvals = {k: v for k, v in values.items() if k in ptypes}
    hvals = {k: v for k, v in values.items() if k in htypes}
    protocol = Protocol(name=spec.protocol, **pvals)
    check_ranges(protocol, sources)
    if protocol.lr_min > protocol.lr:
        raise ConfigError(
            f"lr_min={protocol.lr_min!r} is out of range: it must be <= lr={protocol.lr!r} "
            f"(from {sources.get('lr_min', 'the defaults')})"
        )
    try:
        hparams = hparams_cls(**hvals)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"bad hyperparameters for {method_name}: {e}") from None
    check_ranges(hparams, sources)
    return ResolvedConfig(protocol, hparams, sources)


def _type_name(typ: Any) -> str:
    import typing

    if typing.get_origin(typ) is not None:
        return (
            " | ".join(_type_name(a) for a in typing.get_args(typ))
            if typing.get_origin(typ) is not tuple
            else ("(" + ", ".join(_type_name(a) for a in typing.get_args(typ)) + ")")
        )
    return "None" if typ is type(None) else getattr(typ, "__name__", str(typ))


def describe_settings(method_cls: Any, protocol: str = "quick") -> tuple[dict[str, dict], dict[str, dict]]:
    """What ``--set`` accepts for a method class under ``protocol``: (protocol keys, the method's own keys), each
    ``{key: {"type", "default", "valid", "source"}}`` (``valid``: the declared range): the value this method resolves to and where it comes from (a
    per-method preset value has source ``preset <protocol> (<method>)``)."""
    resolved = resolve(RunSpec(method_cls.name, 0, protocol), method_cls.Hparams, method_cls.name)
    ptypes, htypes = _field_types(Protocol), _field_types(method_cls.Hparams)
    ranges = {f.name: valid_range(f) for cls in (Protocol, method_cls.Hparams) for f in fields(cls)}

    def entry(typ: Any, value: Any, key: str) -> dict[str, Any]:
        rng = ranges.get(key)
        valid = rng.describe() if rng is not None else ("true or false" if typ is bool else "any value")
        return {
            "type": _type_name(typ),
            "default": value,
            "valid": valid,
            "source": resolved.sources.get(key, "default"),
        }

    proto = {k: entry(ptypes[k], getattr(resolved.protocol, k), k) for k in PROTOCOL_KEYS}
    own = {k: entry(htypes[k], getattr(resolved.hparams, k), k) for k in htypes}
    return proto, own
