"""A finished run is reused only under the settings it was made with; reports mark mixed code versions."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from nasbench_suite import config as config_mod
from nasbench_suite.analysis.report import build_report
from nasbench_suite.cli import cli, main
from nasbench_suite.config import RunSpec
from nasbench_suite.errors import ConfigError
from nasbench_suite.ownership import run_one
from nasbench_suite.runner import RunOptions, config_hash
from nasbench_suite.store import Store, atomic_write_json, json_default, read_record

TINY = (("epochs", "2"), ("steps_per_epoch", "2"), ("select_candidates", "4"), ("C", "4"))


def _preset_with(monkeypatch, **base) -> None:
    """As if the shipped quick preset had been edited (a new release, a changed default)."""
    real = config_mod.load_preset

    def edited(name):
        p = real(name)
        return {**p, "base": {**p["base"], **base}}

    monkeypatch.setattr(config_mod, "load_preset", edited)


def test_record_holds_the_config_hash_and_a_changed_preset_is_refused(tmp_path, monkeypatch):
    spec = RunSpec("rsps", 0, "quick", TINY)
    rec = run_one(spec, RunOptions(results=tmp_path))
    assert rec.config_hash == config_hash(rec.config) and len(rec.config_hash) == 16
    reused = run_one(spec, RunOptions(results=tmp_path))  # same settings: reused (as stored: tuples are lists)
    assert reused.to_json() == json.loads(json.dumps(rec.to_json(), default=json_default))
    before = Store(tmp_path).record_path(spec.run_id).read_bytes()

    _preset_with(monkeypatch, lr="0.05", select_batch_size="32")
    with pytest.raises(ConfigError) as err:
        run_one(spec, RunOptions(results=tmp_path))
    msg = str(err.value)
    assert "lr: stored 0.025, now 0.05" in msg and "select_batch_size: stored 128, now 32" in msg
    assert "--force" in msg and "--results" in msg and "epochs" not in msg
    assert Store(tmp_path).record_path(spec.run_id).read_bytes() == before  # nothing stored is touched

    forced = run_one(spec, RunOptions(results=tmp_path, force=True))
    assert forced.protocol_settings["lr"] == 0.05 and forced.config_hash != rec.config_hash


def test_cli_refuses_before_running_and_force_reruns(tmp_path, monkeypatch, capsys):
    sets = [a for k, v in TINY for a in ("--set", f"{k}={v}")]
    args = ["run", "--methods", "rsps", "--seeds", "2", "--results", str(tmp_path), "--quiet", *sets]
    assert CliRunner().invoke(cli, args).exit_code == 0
    _preset_with(monkeypatch, momentum="0.5")
    monkeypatch.setattr("sys.argv", ["nas-suite", *args])
    with pytest.raises(SystemExit) as ex:
        main()
    err = capsys.readouterr().err
    assert ex.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "momentum: stored 0.9, now 0.5" in err and "1 more stored run(s)" in err
    res = CliRunner().invoke(cli, [*args, "--force"])
    assert res.exit_code == 0, res.output
    rid = RunSpec("rsps", 0, "quick", TINY).run_id
    assert read_record(Store(tmp_path).record_path(rid)).protocol_settings["momentum"] == 0.5


def test_report_marks_a_group_mixing_code_versions(tmp_path):
    for seed in (0, 1):
        run_one(RunSpec("rsps", seed, "quick", TINY), RunOptions(results=tmp_path))
    notes = " ".join(build_report(tmp_path, published=False).tables[0].notes)
    assert "mix" not in notes
    path = Store(tmp_path).record_path(RunSpec("rsps", 1, "quick", TINY).run_id)
    rec = read_record(path)
    atomic_write_json(path, {**rec.to_json(), "code_version": "0123456789ab"})
    notes = " ".join(build_report(tmp_path, published=False).tables[0].notes)
    assert "WARNING: these runs mix 2 code versions" in notes and "0123456789ab" in notes
