"""Benchmark adapters: NATS-Bench fixture numbers, a tiny NB201 .pth round trip, the embedded table, opening."""

from __future__ import annotations

import bz2
import functools
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nasbench_suite.benchmarks import (
    BenchResult,
    EmbeddedBenchmark,
    NatsBenchmark,
    NB201Benchmark,
    open_benchmark,
)
from nasbench_suite.benchmarks import embedded as embedded_mod
from nasbench_suite.benchmarks import nb201 as nb201_mod
from nasbench_suite.errors import BenchmarkError
from nasbench_suite.space import NUM_CELLS, Cell

INDEX0_ARCH = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"


# -- NATS-Bench (real fixture: meta + records 0, 11, 284) ---------------------------------------------------
@pytest.fixture
def nats(nats_fixture_dir: Path) -> NatsBenchmark:
    return NatsBenchmark(nats_fixture_dir)


def test_nats_cell_11_matches_the_benchmark(nats: NatsBenchmark) -> None:
    cell = nats.arch_str(11)
    got = {ds: (round(r.valid, 2), round(r.test, 2)) for ds, r in nats.query_all(cell).items()}
    assert got == {
        "cifar10": (87.94, 91.58),
        "cifar100": (67.45, 67.61),
        "ImageNet16-120": (30.41, 30.17),
    }
    # Same answer through a Cell and through op ids; dataset names are case/underscore insensitive.
    c = Cell.parse(cell)
    assert nats.official_index(c) == 11
    assert nats.query(c.ops, "imagenet16_120") == nats.query(cell, "ImageNet16-120")


def test_nats_index_0_is_the_official_arch(nats: NatsBenchmark) -> None:
    assert nats.arch_str(0) == INDEX0_ARCH
    assert nats.official_index(Cell.parse(INDEX0_ARCH)) == 0


def test_nats_absent_record_is_a_benchmark_error(nats: NatsBenchmark) -> None:
    with pytest.raises(BenchmarkError, match="absent"):
        nats.query(Cell((3,) * 6), "cifar10")


def test_nats_unknown_dataset_is_a_benchmark_error(nats: NatsBenchmark) -> None:
    with pytest.raises(BenchmarkError, match="not in this benchmark"):
        nats.query(nats.arch_str(11), "mnist")


def test_nats_optimum_is_max_over_present_records(nats: NatsBenchmark) -> None:
    rows = [nats.query_all(nats.arch_str(i)) for i in (0, 11, 284)]
    for ds in nats.datasets:
        opt = nats.optimum(ds)
        assert opt.valid == max(r[ds].valid for r in rows)
        assert opt.test == max(r[ds].test for r in rows)
    assert "3 of 15625 records" in nats.provenance and "hp=200" in nats.provenance


def test_nats_fingerprint_is_stable(nats: NatsBenchmark, nats_fixture_dir: Path) -> None:
    fp = nats.fingerprint()
    assert len(fp) == 16 and fp == NatsBenchmark(nats_fixture_dir).fingerprint()


def test_open_benchmark_picks_nats(nats_fixture_dir: Path) -> None:
    assert isinstance(open_benchmark(nats_fixture_dir), NatsBenchmark)
    assert isinstance(open_benchmark(str(nats_fixture_dir / "meta.pickle.pbz2")), NatsBenchmark)


def test_nats_corrupt_meta_is_a_benchmark_error(tmp_path: Path) -> None:
    folder = tmp_path / "NATS-tss-v1_0-3ffb9-simple"
    folder.mkdir()
    (folder / "meta.pickle.pbz2").write_bytes(b"not bz2 at all")
    with pytest.raises(BenchmarkError, match="meta"):
        open_benchmark(folder)


def test_nats_simple_folder_without_meta_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "NATS-tss-v1_0-3ffb9-simple"
    folder.mkdir()
    with pytest.raises(BenchmarkError, match="meta.pickle.pbz2"):
        open_benchmark(folder)


def test_nats_truncated_record_is_a_benchmark_error(nats_fixture_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "NATS-tss-v1_0-3ffb9-simple"
    folder.mkdir()
    shutil.copyfile(nats_fixture_dir / "meta.pickle.pbz2", folder / "meta.pickle.pbz2")
    data = (nats_fixture_dir / "000011.pickle.pbz2").read_bytes()
    (folder / "000011.pickle.pbz2").write_bytes(data[: len(data) // 2])
    bench = NatsBenchmark(folder)
    with pytest.raises(BenchmarkError):
        bench.query(bench.arch_str(11), "cifar10")


# -- NB201 .pth (a tiny file built with the real nas_201_api classes) -----------------------------------
TINY_ARCHS = [INDEX0_ARCH, Cell((3,) * 6).arch_str, Cell((1,) * 6).arch_str, Cell((2,) * 6).arch_str]
TINY_EVALUATED = (0, 1, 2)  # index 3 is listed but not evaluated, like a partial v1_0 entry
SEEDS = (777, 888)
EPOCHS = 2


def _expected(index: int) -> dict[str, tuple[float, float]]:
    """Per dataset, (valid, test) the adapter must report: exact binary fractions so means are exact."""
    base = 60.0 + 10.0 * index
    return {
        "cifar10": (base + 0.25, base + 0.5),
        "cifar100": (base - 20.0 + 0.75, base - 20.0 + 0.125),
        "ImageNet16-120": (base - 40.0 + 0.375, base - 40.0 + 0.625),
    }


def _results_count(api_utils, arch: str, dataset: str, seed: int, evals: dict[str, float]):
    """One trial; seeds differ by +-0.5 so the mean over seeds (is_random=False) is the expected value."""
    offset = 0.5 if seed == SEEDS[0] else -0.5
    rc = api_utils.ResultsCount(
        dataset,
        None,
        {e: np.float64(50.0 + e) for e in range(EPOCHS)},
        {e: np.float64(1.0) for e in range(EPOCHS)},
        np.float64(1.0),
        np.float64(10.0),
        {"arch_str": arch},
        seed,
        EPOCHS,
        None,
    )
    accs, losses, times = {}, {}, {}
    for name, value in evals.items():
        for e in range(EPOCHS):
            # Only the last epoch carries the real number, so reading an earlier epoch would be caught.
            accs[f"{name}@{e}"] = np.float64(value + offset if e == EPOCHS - 1 else 1.0)
            losses[f"{name}@{e}"] = np.float64(0.1)
            times[f"{name}@{e}"] = np.float64(0.01)
    rc.update_eval(accs, losses, times)
    return rc


def _arch_results(api_utils, index: int, hp_shift: float):
    ar = api_utils.ArchResults(index, TINY_ARCHS[index])
    exp = _expected(index)
    sets = {
        "cifar10-valid": {"x-valid": exp["cifar10"][0] + hp_shift, "ori-test": 11.0},
        "cifar10": {"ori-test": exp["cifar10"][1] + hp_shift},
        "cifar100": {
            "x-valid": exp["cifar100"][0] + hp_shift,
            "x-test": exp["cifar100"][1] + hp_shift,
            "ori-test": 12.0,
        },
        "ImageNet16-120": {
            "x-valid": exp["ImageNet16-120"][0] + hp_shift,
            "x-test": exp["ImageNet16-120"][1] + hp_shift,
            "ori-test": 13.0,
        },
    }
    for dataset, evals in sets.items():
        for seed in SEEDS:
            ar.update(dataset, seed, _results_count(api_utils, TINY_ARCHS[index], dataset, seed, evals))
    return ar


@pytest.fixture
def tiny_pth(tmp_path: Path) -> Path:
    from nas_201_api import api_utils

    data = {
        "meta_archs": list(TINY_ARCHS),
        # 'less' (hp=12) differs by -30 so that querying the wrong hp shows up.
        "arch2infos": {
            i: {
                "less": _arch_results(api_utils, i, -30.0).state_dict(),
                "full": _arch_results(api_utils, i, 0.0).state_dict(),
            }
            for i in TINY_EVALUATED
        },
        "evaluated_indexes": list(TINY_EVALUATED),
    }
    path = tmp_path / "NAS-Bench-201-tiny.pth"
    torch.save(data, path)
    return path


def test_nb201_tiny_file_round_trip(tiny_pth: Path) -> None:
    bench = open_benchmark(tiny_pth)
    assert isinstance(bench, NB201Benchmark)
    assert bench.datasets == ("cifar10", "cifar100", "ImageNet16-120")
    for index in TINY_EVALUATED:
        got = {ds: (r.valid, r.test) for ds, r in bench.query_all(TINY_ARCHS[index]).items()}
        assert got == _expected(index)
    for ds in bench.datasets:
        assert bench.optimum(ds) == BenchResult(*_expected(max(TINY_EVALUATED))[ds])
    assert "hp=200" in bench.provenance and "is_random=False" in bench.provenance
    assert len(bench.fingerprint()) == 16


def test_nb201_refuses_weights_only_but_adapter_loads(tiny_pth: Path) -> None:
    # The premise of the adapter's allowlisted numpy globals: numpy scalars make the plain weights_only load fail.
    with pytest.raises(pickle.UnpicklingError):
        torch.load(tiny_pth, map_location="cpu", weights_only=True)
    assert NB201Benchmark(tiny_pth).query(TINY_ARCHS[0], "cifar10").test == _expected(0)["cifar10"][1]


def test_nb201_raw_pickle_format_loads(tiny_pth: Path, tmp_path: Path) -> None:
    # The published NB201 files predate torch's zip format: five raw pickles in a row, scanned and then loaded.
    raw = tmp_path / "NAS-Bench-201-raw.pth"
    torch.save(torch.load(tiny_pth, weights_only=False), raw, _use_new_zipfile_serialization=False)
    assert raw.read_bytes()[:1] == b"\x80"
    assert NB201Benchmark(raw).query(TINY_ARCHS[1], "cifar100") == BenchResult(*_expected(1)["cifar100"])


def test_nb201_missing_cells_are_benchmark_errors(tiny_pth: Path) -> None:
    bench = NB201Benchmark(tiny_pth)
    with pytest.raises(BenchmarkError, match="not evaluated"):
        bench.query(TINY_ARCHS[3], "cifar10")
    with pytest.raises(BenchmarkError, match="not in this benchmark"):
        bench.query(Cell((4,) * 6), "cifar10")


def test_nb201_large_file_warns(tiny_pth: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nb201_mod, "LARGE_FILE_BYTES", 0)
    with pytest.warns(UserWarning, match="28 GB"):
        NB201Benchmark(tiny_pth)


def test_nb201_pth_without_the_keys_is_a_benchmark_error(tmp_path: Path) -> None:
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(BenchmarkError, match="not a NAS-Bench-201 benchmark"):
        open_benchmark(path)


# -- open_benchmark errors ------------------------------------------------------------------------------
def test_open_nonexistent_path(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match="does not exist"):
        open_benchmark(tmp_path / "nope.pth")


@pytest.mark.parametrize("name", ["notes.txt", "notes.pth"])
def test_open_text_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("hello\n")
    with pytest.raises(BenchmarkError, match="not a"):
        open_benchmark(path)


def test_open_truncated_pth(tiny_pth: Path, tmp_path: Path) -> None:
    data = tiny_pth.read_bytes()
    path = tmp_path / "truncated.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BenchmarkError, match="truncated or corrupt"):
        open_benchmark(path)


def test_open_empty_folder(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(BenchmarkError, match="not a recognised benchmark"):
        open_benchmark(folder)


def test_open_single_file_nats_points_to_simple_folder(tmp_path: Path) -> None:
    path = tmp_path / "NATS-tss-v1_0-3ffb9.pickle.pbz2"
    path.write_bytes(bz2.compress(b"x"))
    with pytest.raises(BenchmarkError, match="-simple"):
        open_benchmark(path)


# -- embedded NB201 table (package data) -------------------------------------------------------------------
@pytest.fixture(scope="module")
def embedded() -> EmbeddedBenchmark:
    bench = open_benchmark(None)
    assert isinstance(bench, EmbeddedBenchmark)
    return bench


@functools.lru_cache(maxsize=1)
def _load_reference(path: str) -> dict[int, tuple[float, float, float]]:
    # read as text: every value must equal the float the CSV's own digits parse to
    ref = pd.read_csv(path, dtype=str)
    cols = ["cifar10_test", "cifar100_test", "imagenet16_120_test"]
    return {
        Cell.parse(a).index: tuple(float(v) for v in vals) for a, *vals in zip(ref["arch"], *(ref[c] for c in cols))
    }


@pytest.fixture
def reference(reference_csv: Path) -> dict[int, tuple[float, float, float]]:
    """NB201 test accuracy (C10, C100, IN16-120) keyed by ``Cell.index`` (parsed once per session)."""
    return _load_reference(str(reference_csv))


def test_embedded_covers_all_cells_three_datasets(embedded: EmbeddedBenchmark) -> None:
    assert embedded.table.shape == (NUM_CELLS, 3)
    assert embedded.datasets == ("cifar10", "cifar100", "ImageNet16-120")
    # the all-skip cell (DARTS' collapse) and the NB201 optima, as the shared README states them
    skip = embedded.query_all(Cell((1,) * 6))
    assert [round(skip[d].test, 2) for d in embedded.datasets] == [54.30, 15.61, 16.32]
    assert all(r.valid is None for r in skip.values())
    assert [embedded.optimum(d).test for d in embedded.datasets] == [94.3733, 73.5133, 47.3111]
    assert all(embedded.optimum(d).valid is None for d in embedded.datasets)
    assert "NATS-tss-v1_0-3ffb9" in embedded.provenance and "MIT" in embedded.provenance
    assert embedded.name == "embedded-nb201" and len(embedded.fingerprint()) == 16


def test_embedded_equals_the_reference_csv_for_every_cell(embedded: EmbeddedBenchmark, reference) -> None:
    got = {i: tuple(float(v) for v in embedded.table[i]) for i in range(NUM_CELLS)}
    diff = [i for i in range(NUM_CELLS) if got[i] != reference[i]]
    assert not diff, f"{len(diff)} cells differ, e.g. {Cell.from_index(diff[0]).arch_str}"


def test_embedded_agrees_with_the_real_nats_files(embedded: EmbeddedBenchmark, nats_fixture_dir: Path) -> None:
    # independent of the CSV: the official records 0, 11, 284 read through nats_bench, by arch string
    nats = NatsBenchmark(nats_fixture_dir)
    for index in (0, 11, 284):
        cell = Cell.parse(nats.arch_str(index))
        for ds in embedded.datasets:
            assert embedded.query(cell, ds).test == pytest.approx(nats.query(cell, ds).test, abs=1e-4), (index, ds)


def test_embedded_damaged_file_is_a_benchmark_error(tmp_path: Path) -> None:
    bad = tmp_path / "nb201_test_accuracy.npz"
    bad.write_bytes(b"not an npz")
    with pytest.raises(BenchmarkError, match="cannot read the embedded benchmark"):
        embedded_mod.load_table(bad)
    short = tmp_path / "short.npz"
    np.savez(short, cell_index=np.arange(10, dtype=np.int16), test=np.zeros((10, 3), np.uint32))
    with pytest.raises(BenchmarkError, match="not the expected table"):
        embedded_mod.load_table(short)


def test_embedded_benchmark_needs_no_other_package() -> None:
    # the table is package data: no analog-nasbench, no pickle, nothing imported to read it
    import importlib.metadata

    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution("analog-nasbench")
    assert embedded_mod.DATA_FILE.is_file() and embedded_mod.DATA_FILE.stat().st_size < 300_000
