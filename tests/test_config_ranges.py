"""Every protocol and method key declares its valid values beside its default, and they are enforced."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from nasbench_suite.config import Protocol, RunSpec, check_ranges, resolve, setting, valid_range
from nasbench_suite.errors import ConfigError
from nasbench_suite.method import get_method, method_names


def _settings():
    yield "Protocol", Protocol
    for name in method_names():
        yield name, get_method(name).Hparams


@pytest.mark.parametrize("owner, cls", list(_settings()), ids=[o for o, _ in _settings()])
def test_every_key_declares_its_valid_values(owner, cls):
    # a boolean is its own set; `name` is the preset's name, not a setting
    undeclared = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name != "name" and valid_range(f) is None and f.type not in (bool, "bool")
    ]
    assert not undeclared, f"{owner}: declare the valid values with config.setting(default, ...): {undeclared}"
    check_ranges(cls())  # every default lies in its own range


def test_a_new_key_is_one_line_and_is_enforced():
    @dataclass(frozen=True)
    class Hparams:
        derive_every: int = setting(1, ge=1)
        sgd_semantics: str = setting("xautodl", choices=("xautodl", "torch"))

    check_ranges(Hparams())
    with pytest.raises(ConfigError, match=r"^derive_every=0 is out of range: it must be >= 1 \(from --set\)$"):
        check_ranges(Hparams(derive_every=0), {"derive_every": "--set"})
    with pytest.raises(ConfigError, match=r"sgd_semantics='keras' is out of range: it must be one of 'xautodl', 'torc"):
        check_ranges(Hparams(sgd_semantics="keras"))


def test_a_preset_value_out_of_range_names_the_preset(monkeypatch):
    import nasbench_suite.config as config

    real = config.load_preset
    monkeypatch.setattr(config, "load_preset", lambda name: {**real(name), "base": {"momentum": 1.5}})
    cls = get_method("rsps")
    with pytest.raises(ConfigError, match=r"momentum=1.5 is out of range: it must be >= 0 and < 1 \(from preset quic"):
        resolve(RunSpec("rsps", 0, "quick"), cls.Hparams, cls.name)


@pytest.mark.parametrize("preset", ["quick", "nb201", "nats"])
@pytest.mark.parametrize("method", method_names())
def test_every_shipped_preset_is_in_range(preset, method):
    cls = get_method(method)
    resolve(RunSpec(method, 0, preset), cls.Hparams, cls.name)
