"""No code runs from a data file: a crafted pickle in every container the suite reads is refused, not executed.

Each payload's ``__reduce__`` would create a marker file through ``os.system``. The test asserts that the marker
is never created, and that the command fails with one line on stderr (exit 2) naming the file and the global;
a planted checkpoint is set aside with one line and the run starts afresh.
"""

from __future__ import annotations

import bz2
import os
import pickle
import pickletools
import shutil
from pathlib import Path

import pytest
import torch

from nasbench_suite.benchmarks.base import BENCHMARK_PICKLE_GLOBALS
from nasbench_suite.config import RunSpec
from nasbench_suite.data.pickles import unlisted_global
from nasbench_suite.ownership import run_one
from nasbench_suite.runner import CHECKPOINT_VERSION, RunOptions
from tests.test_cli_errors import GOOD_ARCH, TINY, invoke


class Payload:
    """Unpickling this runs ``touch <marker>``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _nb201_dict(payload) -> dict:
    # the three keys the adapter looks for, with the payload where a real file has its results
    return {"meta_archs": [GOOD_ARCH], "arch2infos": {0: {"full": payload, "less": {}}}, "evaluated_indexes": [0]}


def _nats_copy(nats_fixture_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "NATS-tss-v1_0-3ffb9-simple"
    shutil.copytree(nats_fixture_dir, folder)
    for p in folder.iterdir():
        p.chmod(0o644)  # the shared fixture is read-only
    return folder


def _benchmarks(tmp_path: Path, nats_fixture_dir: Path, marker: Path) -> dict[str, tuple[Path, str | None]]:
    """Each container format with the payload inside: (path to give --benchmark, the arch to query)."""
    out = {}
    p = tmp_path / "zip.pth"  # torch >= 1.6 zip .pth: the pickle is <name>/data.pkl
    torch.save(_nb201_dict(Payload(marker)), p)
    out["nb201-zip"] = (p, None)
    p = tmp_path / "legacy.pth"  # the raw format the published NB201 files use: five pickles in a row
    torch.save(_nb201_dict(Payload(marker)), p, _use_new_zipfile_serialization=False)
    out["nb201-raw"] = (p, None)
    p = tmp_path / "plain.pth"  # one plain pickle (protocol 4: STACK_GLOBAL, memoised strings) named .pth
    p.write_bytes(pickle.dumps(_nb201_dict(Payload(marker)), protocol=4))
    out["pickle-as-pth"] = (p, None)
    folder = _nats_copy(nats_fixture_dir, tmp_path / "meta")
    (folder / "meta.pickle.pbz2").write_bytes(bz2.compress(pickle.dumps({"meta_archs": Payload(marker)}, protocol=4)))
    out["nats-meta"] = (folder, None)
    folder = _nats_copy(nats_fixture_dir, tmp_path / "record")
    (folder / "000011.pickle.pbz2").write_bytes(bz2.compress(pickle.dumps({"200": Payload(marker)})))
    from nats_bench.api_utils import pickle_load

    arch11 = pickle_load(str(nats_fixture_dir / "meta.pickle.pbz2"))["meta_archs"][11]
    out["nats-record"] = (folder, arch11)  # read (and checked) only when cell 11 is queried
    return out


FORMATS = ["nb201-zip", "nb201-raw", "pickle-as-pth", "nats-meta", "nats-record"]


# a NATS record is read when its cell is queried: the query command covers it
CASES = [(f, c) for f in FORMATS for c in ("run", "report", "query") if f != "nats-record" or c == "query"]


@pytest.mark.parametrize("fmt, command", CASES)
def test_payload_in_a_benchmark_file_is_refused_not_run(tmp_path, nats_fixture_dir, monkeypatch, fmt, command):
    marker = tmp_path / "PWNED"
    path, arch = _benchmarks(tmp_path, nats_fixture_dir, marker)[fmt]
    args = {
        "run": ["run", "--benchmark", str(path), "--results", str(tmp_path / "results"), "--set", "epochs=1"],
        "report": ["report", "--benchmark", str(path), "--results", str(tmp_path / "results")],
        "query": ["query", arch or GOOD_ARCH, "--benchmark", str(path)],
    }[command]
    code, out, err = invoke(args, monkeypatch)
    assert not marker.exists(), "the payload ran"
    assert code == 2, (code, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "posix.system" in err and "refusing" in err, err
    assert str(path) in err or (arch and str(path / "000011.pickle.pbz2") in err), err
    assert not (tmp_path / "results" / "runs").exists() or not any((tmp_path / "results" / "runs").iterdir())


def test_planted_checkpoint_is_set_aside_not_run(tmp_path, capsys):
    marker = tmp_path / "PWNED"
    spec = RunSpec("rsps", 0, "quick", tuple(sorted(TINY.items())))
    options = RunOptions(results=tmp_path / "results")
    reference = run_one(spec, RunOptions(results=tmp_path / "clean"))
    ck = options.results / "runs" / spec.run_id / "checkpoint.pt"
    ck.parent.mkdir(parents=True)
    torch.save({"version": CHECKPOINT_VERSION, "run_id": spec.run_id, "epoch": 1, "epochs_done": Payload(marker)}, ck)
    capsys.readouterr()
    record = run_one(spec, options)
    err = capsys.readouterr().err
    assert not marker.exists(), "the payload ran"
    lines = [x for x in err.splitlines() if "checkpoint" in x]
    assert len(lines) == 1 and "posix.system" in lines[0] and str(ck) in lines[0], err
    assert len(list(ck.parent.glob("checkpoint.corrupt-*.pt"))) == 1
    # the run started afresh and ends exactly where an untouched run does
    assert record.final.arch == reference.final.arch
    assert record.final.train_loss == reference.final.train_loss


def test_planted_checkpoint_through_the_cli(tmp_path, monkeypatch):
    marker = tmp_path / "PWNED"
    spec = RunSpec("rsps", 0, "quick", tuple(sorted(TINY.items())))
    ck = tmp_path / "results" / "runs" / spec.run_id / "checkpoint.pt"
    ck.parent.mkdir(parents=True)
    torch.save({"version": CHECKPOINT_VERSION, "run_id": spec.run_id, "x": Payload(marker)}, ck)
    sets = [a for k, v in sorted(TINY.items()) for a in ("--set", f"{k}={v}")]
    code, out, err = invoke(["run", "--methods", "rsps", "--results", str(tmp_path / "results"), *sets], monkeypatch)
    assert not marker.exists() and code == 0, err
    assert "ignoring unreadable checkpoint" in err and "posix.system" in err, err


# -- the scanner itself ---------------------------------------------------------------------------------------
def test_scanner_passes_the_official_files(nats_fixture_dir, tmp_path):
    for p in nats_fixture_dir.iterdir():
        assert unlisted_global(bz2.decompress(p.read_bytes()), BENCHMARK_PICKLE_GLOBALS) is None, p


def test_scanner_reads_stack_global_operands_through_the_memo():
    data = pickle.dumps([Payload(Path("/nonexistent")), "posix", "system"], protocol=4)
    assert "STACK_GLOBAL" in {op.name for op, _, _ in pickletools.genops(data)}
    assert unlisted_global(data, BENCHMARK_PICKLE_GLOBALS) == "posix.system"
    # the same global named twice: the second STACK_GLOBAL's strings come back through BINGET
    data = pickle.dumps([Payload(Path("/a")), Payload(Path("/b"))], protocol=4)
    assert unlisted_global(data, {("posix", "system")}) is None
    assert unlisted_global(data, set()) == "posix.system"


def test_scanner_refuses_a_global_it_cannot_name():
    # STACK_GLOBAL whose operands are not literal strings (here: the result of a call) cannot be checked
    crafted = b"\x80\x04" + b"\x8c\x05posix" + b"\x8c\x06system" + b"\x86" + b"\x8c\x01x" + b"\x93" + b"."
    assert "computed" in unlisted_global(crafted, BENCHMARK_PICKLE_GLOBALS)
    ext = b"\x80\x02\x82\x01."  # EXT1 1: a global from copyreg's extension registry
    assert "extension" in unlisted_global(ext, BENCHMARK_PICKLE_GLOBALS)
