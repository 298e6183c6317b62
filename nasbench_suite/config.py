"""Protocols, presets, ``--set`` overrides and run specs.

Every number of a protocol is data: the presets in ``nasbench_suite/presets/*.yaml`` give the shared values
(``base``) and per-method values (``methods``). A method's own hyperparameters are a dataclass on the method
class (``Method.Hparams``). Resolution order, later wins: Protocol defaults < preset base < preset per-method <
the user's ``--set key=value``. Keys form one flat namespace (protocol fields and the method's hparam fields), so
``--set epochs=3 --set eps=0.25`` reads naturally; an unknown key or a value of the wrong type is a
:class:`ConfigError` that lists what is valid.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from importlib import resources
from typing import Any, Mapping

import yaml

from .errors import ConfigError


@dataclass(frozen=True)
class Protocol:
    """Everything the runner needs that is shared by all methods (numbers from the protocol spec)."""

    name: str = "quick"
    dataset: str = "digits"
    C: int = 16
    N: int = 5
    epochs: int = 250
    batch_size: int = 64
    lr: float = 0.025
    lr_min: float = 0.001
    lr_tmax: int | None = None
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    grad_clip: float = 5.0
    arch_lr: float = 3e-4
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = 1e-3
    affine: bool = False
    track_running_stats: bool = False
    select_batch_size: int = 512
    select_candidates: int = 100
    # Derive (and look up) the cell after every k-th epoch and always after the last; 0 = after the last only.
    # Derivation never changes the search (own RNG streams, eval mode): it is logging, costly for scored methods.
    derive_every: int = 1
    split_seed: int = 0
    steps_per_epoch: int | None = None  # None = one pass over the weight split
    # Opt-in execution options for GPUs (docs/performance.md); the defaults are exact fp32 eager everywhere.
    amp: str = "off"  # "bf16": autocast the supernet forward in bfloat16 (changes numerics)
    tf32: bool = False  # TF32 matmuls/convolutions on CUDA (changes numerics)
    channels_last: bool = False  # channels-last activations (cuDNN's fast layout with bf16)
    compile: str = "off"  # torch.compile the mixture forward: default | reduce-overhead | max-autotune

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
    if protocol.epochs < 1 or protocol.batch_size < 1:
        raise ConfigError("epochs and batch_size must be at least 1")
    try:
        hparams = hparams_cls(**hvals)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"bad hyperparameters for {method_name}: {e}") from None
    return ResolvedConfig(protocol, hparams, sources)


def _type_name(typ: Any) -> str:
    import typing

    if typing.get_origin(typ) is not None:
        return " | ".join(_type_name(a) for a in typing.get_args(typ)) if typing.get_origin(typ) is not tuple else (
            "(" + ", ".join(_type_name(a) for a in typing.get_args(typ)) + ")")
    return "None" if typ is type(None) else getattr(typ, "__name__", str(typ))


def describe_settings(method_cls: Any, protocol: str = "quick") -> tuple[dict[str, dict], dict[str, dict]]:
    """What ``--set`` accepts for a method class under ``protocol``: (protocol keys, the method's own keys), each
    ``{key: {"type", "default", "source"}}``: the value this method resolves to and where it comes from (a
    per-method preset value has source ``preset <protocol> (<method>)``)."""
    resolved = resolve(RunSpec(method_cls.name, 0, protocol), method_cls.Hparams, method_cls.name)
    ptypes, htypes = _field_types(Protocol), _field_types(method_cls.Hparams)

    def entry(typ: Any, value: Any, key: str) -> dict[str, Any]:
        return {"type": _type_name(typ), "default": value, "source": resolved.sources.get(key, "default")}

    proto = {k: entry(ptypes[k], getattr(resolved.protocol, k), k) for k in PROTOCOL_KEYS}
    own = {k: entry(htypes[k], getattr(resolved.hparams, k), k) for k in htypes}
    return proto, own
