"""Data sources (real on-disk formats, written small), NB201 search splits and the batch stream."""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from nasbench_suite.data import (
    BatchStream,
    ImageDataset,
    dataset_names,
    load_dataset,
    search_split,
)
from nasbench_suite.errors import ConfigError, DataError

# -- writers for the real formats ----------------------------------------------------------------------------


def _channel_major(images: np.ndarray) -> np.ndarray:
    """NHWC uint8 -> the files' rows: all red, then green, then blue, row by row."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


def _random_images(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def py2_batch_pickle(data: np.ndarray, label_key: bytes, labels: list[int]) -> bytes:
    """The bytes Python 2 + numpy 1 write for ``{'data': uint8 array, label_key: labels}`` (protocol 2).

    Python 3 cannot write this form (its protocol 2 encodes bytes via ``_codecs``), and the real CIFAR files are
    in it: str keys and the array's raw buffer as Python-2 ``str`` opcodes, read back with encoding="bytes".
    """

    def string(b: bytes) -> bytes:
        return b"T" + struct.pack("<i", len(b)) + b  # BINSTRING: a Python-2 str

    def small_int(i: int) -> bytes:
        return b"J" + struct.pack("<i", i)  # BININT

    n, row = data.shape
    return (
        b"\x80\x02}("
        + string(b"data")
        + b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
        + small_int(0)
        + b"\x85"
        + string(b"b")
        + b"\x87R("
        + small_int(1)
        + small_int(n)
        + small_int(row)
        + b"\x86"
        + b"cnumpy\ndtype\n"
        + string(b"u1")
        + small_int(0)
        + small_int(1)
        + b"\x87R"
        + b"("
        + small_int(3)
        + string(b"|")
        + b"NNN"
        + small_int(-1)
        + small_int(-1)
        + small_int(0)
        + b"tb"
        + b"\x89"
        + string(np.ascontiguousarray(data).tobytes())
        + b"tb"
        + string(label_key)
        + b"]("
        + b"".join(small_int(v) for v in labels)
        + b"eu."
    )


def write_cifar10(folder: Path, per_batch: int = 6, n_test: int = 7, seed: int = 0) -> dict:
    """Python-2-style CIFAR-10 batches (bytes keys, protocol 2), without batches.meta."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    out = {"train_x": [], "train_y": [], "test_x": None, "test_y": None}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        n = n_test if name == "test_batch" else per_batch
        x = _random_images(rng, n, 32)
        y = [int(v) for v in rng.integers(0, 10, n)]
        entry = {
            b"batch_label": name.encode(),
            b"labels": y,
            b"data": _channel_major(x),
            b"filenames": [f"img{i}.png".encode() for i in range(n)],
        }
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
        if name == "test_batch":
            out["test_x"], out["test_y"] = x, np.array(y)
        else:
            out["train_x"].append(x)
            out["train_y"].extend(y)
    out["train_x"] = np.concatenate(out["train_x"])
    out["train_y"] = np.array(out["train_y"])
    return out


def write_cifar100(folder: Path, n_train: int = 12, n_test: int = 5, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    out = {}
    for name, n in (("train", n_train), ("test", n_test)):
        x = _random_images(rng, n, 32)
        fine = [int(v) for v in rng.integers(0, 100, n)]
        fine[0] = 99  # the top label must be accepted
        entry = {
            b"filenames": [b"f"] * n,
            b"fine_labels": fine,
            b"coarse_labels": [v // 5 for v in fine],
            b"data": _channel_major(x),
        }
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
        out[f"{name}_x"], out[f"{name}_y"] = x, np.array(fine)
    return out


def write_imagenet16(folder: Path, per_batch: int = 8, n_val: int = 9, seed: int = 2) -> dict:
    """NB201's ImageNet16 layout: str keys, labels 1..1000 (here 1..200, so filtering matters)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    out = {"train_x": [], "train_y": []}
    for name in [f"train_data_batch_{i}" for i in range(1, 11)] + ["val_data"]:
        n = n_val if name == "val_data" else per_batch
        x = _random_images(rng, n, 16)
        y = rng.integers(1, 201, n)
        y[0], y[1] = 1, 120  # the ends of the kept range
        y[2] = 121  # the first dropped label
        entry = {"data": _channel_major(x), "labels": [int(v) for v in y]}
        if name != "val_data":
            entry["mean"] = np.zeros(768)
        (folder / name).write_bytes(pickle.dumps(entry))
        if name == "val_data":
            out["test_x"], out["test_y"] = x, y
        else:
            out["train_x"].append(x)
            out["train_y"].append(y)
    out["train_x"] = np.concatenate(out["train_x"])
    out["train_y"] = np.concatenate(out["train_y"])
    return out


# -- sources ------------------------------------------------------------------------------------------------


def test_digits_loads_without_root():
    ds = load_dataset("digits")
    assert ds.name == "digits" and ds.num_classes == 10 and ds.pad == 2
    assert ds.train_x.shape == (1437, 16, 16, 3) and ds.test_x.shape == (360, 16, 16, 3)
    assert ds.train_x.dtype == np.uint8 and ds.train_y.dtype == np.int64
    assert set(np.unique(ds.train_y)) == set(range(10))
    # grey (3 equal channels), nearest-neighbour upscale (2x2 blocks), 16 levels scaled to reach 255
    assert np.array_equal(ds.train_x[..., 0], ds.train_x[..., 2])
    assert np.array_equal(ds.train_x[:, ::2, ::2], ds.train_x[:, 1::2, 1::2])
    assert ds.train_x.max() == 255 and len(np.unique(ds.train_x)) == 17
    scaled = ds.train_x.astype(np.float64) / 255
    assert np.allclose(ds.mean, scaled.mean(axis=(0, 1, 2)))
    assert np.allclose(ds.std, scaled.std(axis=(0, 1, 2)))
    again = load_dataset("DIGITS")
    assert np.array_equal(again.train_y, ds.train_y) and np.array_equal(again.test_x, ds.test_x)
    with pytest.raises(ValueError):
        ds.train_x[0, 0, 0, 0] = 1  # shared arrays are read-only


@pytest.mark.parametrize("point_at_batch_folder", [False, True])
def test_cifar10_round_trip(tmp_path, point_at_batch_folder):
    ref = write_cifar10(tmp_path / "cifar-10-batches-py")
    root = tmp_path / "cifar-10-batches-py" if point_at_batch_folder else tmp_path
    ds = load_dataset("cifar10", root)
    assert ds.train_x.shape == (30, 32, 32, 3) and ds.test_x.shape == (7, 32, 32, 3)
    assert np.array_equal(ds.train_x, ref["train_x"]) and np.array_equal(ds.test_x, ref["test_x"])
    assert np.array_equal(ds.train_y, ref["train_y"]) and np.array_equal(ds.test_y, ref["test_y"])
    assert ds.num_classes == 10 and ds.pad == 4
    assert np.allclose(ds.mean, [125.3 / 255, 123.0 / 255, 113.9 / 255])
    assert np.allclose(ds.std, [63.0 / 255, 62.1 / 255, 66.7 / 255])


def test_cifar_pixel_lands_at_nhwc_position(tmp_path):
    """One byte of the channel-major row (channel 2, row 5, column 7) must come out at [i, 5, 7, 2].

    The files here are byte-for-byte Python-2 pickles, like the real CIFAR download."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = np.zeros((2, 3072), np.uint8)
        if name == "data_batch_2":
            data[1, 2 * 1024 + 5 * 32 + 7] = 200
        (folder / name).write_bytes(py2_batch_pickle(data, b"labels", [0, 9]))
    ds = load_dataset("cifar10", tmp_path)
    hits = np.argwhere(ds.train_x == 200)
    assert hits.tolist() == [[3, 5, 7, 2]]  # image 1 of batch 2 = image 3 overall
    assert ds.train_y.tolist() == [0, 9] * 5


@pytest.mark.parametrize("point_at_batch_folder", [False, True])
def test_cifar100_round_trip(tmp_path, point_at_batch_folder):
    ref = write_cifar100(tmp_path / "cifar-100-python")
    ds = load_dataset("cifar100", tmp_path / "cifar-100-python" if point_at_batch_folder else tmp_path)
    assert ds.train_x.shape == (12, 32, 32, 3) and ds.test_x.shape == (5, 32, 32, 3)
    assert np.array_equal(ds.train_x, ref["train_x"]) and np.array_equal(ds.test_y, ref["test_y"])
    assert np.array_equal(ds.train_y, ref["train_y"]) and ds.train_y.max() == 99
    assert ds.num_classes == 100
    assert np.allclose(ds.mean, [129.3 / 255, 124.1 / 255, 112.4 / 255])
    assert np.allclose(ds.std, [68.2 / 255, 65.4 / 255, 70.4 / 255])


@pytest.mark.parametrize("name", ["ImageNet16-120", "imagenet16-120"])
@pytest.mark.parametrize("point_at_batch_folder", [False, True])
def test_imagenet16_filters_and_shifts_labels(tmp_path, name, point_at_batch_folder):
    ref = write_imagenet16(tmp_path / "ImageNet16")
    ds = load_dataset(name, tmp_path / "ImageNet16" if point_at_batch_folder else tmp_path)
    assert ds.name == "ImageNet16-120" and ds.num_classes == 120 and ds.pad == 2
    keep_tr, keep_te = ref["train_y"] <= 120, ref["test_y"] <= 120
    assert 0 < keep_tr.sum() < len(keep_tr)  # the fixture really has labels to drop
    assert ds.train_x.shape == (keep_tr.sum(), 16, 16, 3) and ds.test_x.shape == (keep_te.sum(), 16, 16, 3)
    assert np.array_equal(ds.train_x, ref["train_x"][keep_tr])
    assert np.array_equal(ds.train_y, ref["train_y"][keep_tr] - 1)
    assert np.array_equal(ds.test_x, ref["test_x"][keep_te])
    assert ds.train_y.min() == 0 and ds.train_y.max() == 119
    assert np.allclose(ds.mean, [122.68 / 255, 116.66 / 255, 104.01 / 255])
    assert np.allclose(ds.std, [63.22 / 255, 61.26 / 255, 65.09 / 255])


def test_names_and_unknown_name():
    assert dataset_names() == ["digits", "cifar10", "cifar100", "ImageNet16-120"]
    with pytest.raises(DataError) as err:
        load_dataset("mnist")
    assert "mnist" in str(err.value) and "cifar100" in str(err.value) and "ImageNet16-120" in str(err.value)


def test_missing_root_and_folder(tmp_path):
    with pytest.raises(DataError, match="--data-root"):
        load_dataset("cifar10")
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError) as err:
        load_dataset("cifar100", missing)
    assert str(missing) in str(err.value) and "cifar-100-python" in str(err.value)
    # an existing folder without the batches: the first missing file is named, with the expected layout
    with pytest.raises(DataError) as err:
        load_dataset("ImageNet16-120", tmp_path)
    assert str(tmp_path / "train_data_batch_1") in str(err.value) and "val_data" in str(err.value)


def test_missing_file(tmp_path):
    write_cifar10(tmp_path / "cifar-10-batches-py")
    gone = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    gone.unlink()
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", tmp_path)
    assert str(gone) in str(err.value) and "data_batch_1..5" in str(err.value)


def _corrupt(path: Path, how: str) -> None:
    if how == "not-a-pickle":
        path.write_bytes(b"this is not a pickle at all")
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif how == "list-payload":
        path.write_bytes(pickle.dumps([1, 2, 3]))
    elif how == "no-labels":
        path.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}, protocol=2))
    elif how == "wrong-shape":
        path.write_bytes(pickle.dumps({b"data": np.zeros((2, 768), np.uint8), b"labels": [0, 1]}, protocol=2))
    elif how == "float-data":
        path.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072)), b"labels": [0, 1]}, protocol=2))
    elif how == "label-out-of-range":
        path.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, protocol=2))
    elif how == "label-count":
        path.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, protocol=2))
    elif how == "foreign-global":
        path.write_bytes(pickle.dumps({b"data": Path("x"), b"labels": [0]}))


@pytest.mark.parametrize(
    "how",
    [
        "not-a-pickle",
        "truncated",
        "list-payload",
        "no-labels",
        "wrong-shape",
        "float-data",
        "label-out-of-range",
        "label-count",
        "foreign-global",
    ],
)
def test_corrupt_cifar_file(tmp_path, how):
    write_cifar10(tmp_path / "cifar-10-batches-py")
    bad = tmp_path / "cifar-10-batches-py" / "test_batch"
    _corrupt(bad, how)
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", tmp_path)
    assert str(bad) in str(err.value) and "expected" in str(err.value)


def test_corrupt_imagenet16_file(tmp_path):
    write_imagenet16(tmp_path / "ImageNet16")
    bad = tmp_path / "ImageNet16" / "train_data_batch_7"
    bad.write_bytes(pickle.dumps("a string"))
    with pytest.raises(DataError) as err:
        load_dataset("ImageNet16-120", tmp_path)
    assert str(bad) in str(err.value) and "not a dict" in str(err.value)


# -- splits -------------------------------------------------------------------------------------------------


def _tiny_dataset(name: str, n_train: int, n_test: int) -> ImageDataset:
    """A dataset of 1x1 images whose pixel encodes the index, so parts can be checked against the source."""

    def images(n: int, offset: int) -> np.ndarray:
        return (np.arange(n)[:, None, None, None] + offset).astype(np.uint8).repeat(3, axis=3)

    return ImageDataset(
        name,
        images(n_train, 0),
        np.arange(n_train) % 7,
        images(n_test, 100),
        np.arange(n_test) % 7,
        7,
        (0.5,) * 3,
        (0.25,) * 3,
        0,
    )


def test_cifar10_split_halves_the_training_set():
    ds = _tiny_dataset("cifar10", 50_000, 10_000)
    train, valid, test = search_split(ds, 0)
    assert (len(train), len(valid), len(test)) == (25_000, 25_000, 10_000)
    assert train.source == valid.source == "train" and test.source == "test"
    assert not set(train.indices) & set(valid.indices)
    assert np.array_equal(np.sort(np.concatenate([train.indices, valid.indices])), np.arange(50_000))
    assert np.array_equal(test.indices, np.arange(10_000))
    assert np.array_equal(train.images, ds.train_x[train.indices])
    assert np.array_equal(valid.labels, ds.train_y[valid.indices])


@pytest.mark.parametrize(
    ("name", "n_train", "n_test", "half"), [("cifar100", 500, 10_000, 5_000), ("ImageNet16-120", 300, 6_000, 3_000)]
)
def test_xvalid_split_halves_the_test_set(name, n_train, n_test, half):
    ds = _tiny_dataset(name, n_train, n_test)
    train, valid, test = search_split(ds, 3)
    assert train.source == "train" and np.array_equal(train.indices, np.arange(n_train))
    assert valid.source == test.source == "test" and len(valid) == len(test) == half
    assert not set(valid.indices) & set(test.indices)
    assert np.array_equal(np.sort(np.concatenate([valid.indices, test.indices])), np.arange(n_test))
    assert np.array_equal(valid.images, ds.test_x[valid.indices])


def test_split_depends_only_on_split_seed():
    ds = load_dataset("digits")
    a, b, c = search_split(ds, 0), search_split(ds, 0), search_split(ds, 1)
    assert (len(a.train), len(a.valid), len(a.test)) == (718, 719, 360)
    assert np.array_equal(a.train.indices, b.train.indices) and np.array_equal(a.valid.indices, b.valid.indices)
    assert not np.array_equal(a.train.indices, c.train.indices)
    assert np.array_equal(search_split(ds).valid.indices, a.valid.indices)  # default split seed is 0
    for bad in (-1, 1.5, "0", True):
        with pytest.raises(ConfigError):
            search_split(ds, bad)


def test_split_of_unknown_dataset_is_a_data_error():
    with pytest.raises(DataError, match="no search split"):
        search_split(_tiny_dataset("mnist", 10, 10), 0)


# -- batch stream -------------------------------------------------------------------------------------------

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def _stream_data(n: int = 10, size: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images with no zero pixel (so zero padding is recognisable); label = index, to identify each image."""
    rng = np.random.default_rng(seed)
    return rng.integers(1, 256, size=(n, size, size, 3), dtype=np.uint8), np.arange(n, dtype=np.int64)


def _stream(images, labels, **kw) -> BatchStream:
    kw.setdefault("batch_size", 3)
    kw.setdefault("pad", 2)
    return BatchStream(images, labels, mean=MEAN, std=STD, **kw)


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """Undo the normalisation: NCHW float -> NHWC uint8."""
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return torch.round((x.cpu() * std + mean) * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _take(stream: BatchStream, k: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [next(stream) for _ in range(k)]


def test_batch_shapes_and_dtypes():
    images, labels = _stream_data()
    x, y = next(_stream(images, labels, batch_size=4))
    assert x.shape == (4, 3, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64 and y.shape == (4,)
    xc, _ = next(_stream(images, labels, batch_size=4, channels_last=True))
    assert xc.is_contiguous(memory_format=torch.channels_last) and torch.equal(xc, x)


def test_unaugmented_batch_is_normalised_pixels():
    images, labels = _stream_data()
    stream = _stream(images, labels, batch_size=4, augment=False, shuffle=False)
    x, y = next(stream)
    expected = (images[:4].astype(np.float32) / 255 - np.float32(MEAN)) / np.float32(STD)
    assert np.allclose(x.numpy(), expected.transpose(0, 3, 1, 2), atol=1e-6)
    assert y.tolist() == [0, 1, 2, 3]


def test_crop_shifts_content_by_at_most_pad_and_flips():
    images, labels = _stream_data(n=16)
    pad = 2
    stream = _stream(images, labels, batch_size=8, pad=pad, seed=5)
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    seen_offsets, seen_flips = set(), set()
    for _ in range(6):
        x, y = next(stream)
        for img, i in zip(_to_uint8(x), y.tolist()):
            matches = [
                (oy, ox, flip)
                for oy in range(2 * pad + 1)
                for ox in range(2 * pad + 1)
                for flip in (False, True)
                if np.array_equal(img, (lambda c: c[:, ::-1] if flip else c)(padded[i, oy : oy + 8, ox : ox + 8]))
            ]
            assert len(matches) == 1, f"image {i} is not a padded crop (+flip) of its source"
            seen_offsets.add(matches[0][:2])
            seen_flips.add(matches[0][2])
    assert len(seen_offsets) > 5 and seen_flips == {False, True}  # the augmentation really varies


def test_epochs_are_permutations():
    images, labels = _stream_data(n=10)
    stream = _stream(images, labels, batch_size=4, drop_last=False)
    assert stream.steps_per_epoch == 3
    for epoch in range(3):
        got = np.concatenate([next(stream)[1].numpy() for _ in range(stream.steps_per_epoch)])
        assert sorted(got.tolist()) == list(range(10)) and stream.epoch == epoch
    dropping = _stream(images, labels, batch_size=4)
    assert dropping.steps_per_epoch == 2
    assert all(len(y) == 4 for _, y in _take(dropping, 7))


def test_same_seed_same_batches_other_seed_differs():
    images, labels = _stream_data()
    a, b, c = (_take(_stream(images, labels, seed=s), 8) for s in (7, 7, 8))
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    assert not all(torch.equal(xa, xc) for (xa, _), (xc, _) in zip(a, c))


@pytest.mark.parametrize("k", [0, 2, 3, 5])
def test_resume_is_exact_across_epoch_boundary(k):
    images, labels = _stream_data(n=10)
    reference = _take(_stream(images, labels, seed=3), k + 5)  # 3 batches per epoch: k + 5 crosses a boundary
    first = _stream(images, labels, seed=3)
    _take(first, k)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = _stream(images, labels, seed=99)  # the state, not the constructor's seed, must decide
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    for (xr, yr), (xs, ys) in zip(reference[k:], _take(resumed, 5)):
        assert torch.equal(xr, xs) and torch.equal(yr, ys)
    assert resumed.epoch == (k + 4) // 3


def test_resume_refuses_other_settings():
    images, labels = _stream_data()
    state = _stream(images, labels, batch_size=3).state_dict()
    with pytest.raises(ConfigError, match="batch_size"):
        _stream(images, labels, batch_size=4).load_state_dict(state)


def test_bad_batch_sizes():
    images, labels = _stream_data(n=10)
    with pytest.raises(ConfigError):
        _stream(images, labels, batch_size=11)
    with pytest.raises(ConfigError):
        _stream(images, labels, batch_size=0)
    assert len(next(_stream(images, labels, batch_size=11, drop_last=False))[1]) == 10


def test_stream_from_split_part():
    ds = load_dataset("digits")
    split = search_split(ds, 0)
    stream = BatchStream.from_part(split.valid, ds, batch_size=64, seed=0)
    x, y = next(stream)
    assert x.shape == (64, 3, 16, 16) and stream.steps_per_epoch == len(split.valid) // 64
    assert set(y.tolist()) <= set(range(10))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device to compare against the CPU")
def test_cuda_batches_equal_cpu_batches():
    images, labels = _stream_data(n=20)
    cpu = _take(_stream(images, labels, batch_size=6, seed=4), 7)
    gpu = _take(_stream(images, labels, batch_size=6, seed=4, device="cuda"), 7)
    for (xc, yc), (xg, yg) in zip(cpu, gpu):
        assert xg.device.type == "cuda"
        assert torch.allclose(xc, xg.cpu(), atol=1e-6) and torch.equal(yc, yg.cpu())


# -- official NB201 splits (issue 11, item 3) -----------------------------------------------------------------------


def test_shipped_splits_equal_the_official_files():
    """The package's bitmaps are the official JSON files, bit for bit (when the originals are at hand)."""
    from importlib import resources

    from nasbench_suite.data.splits import SPLITS_FILE, convert_official_splits

    from .conftest import require_shared

    expected = convert_official_splits(require_shared("reference/nb201-splits"))  # under CI=true: a failure
    with resources.files("nasbench_suite.data").joinpath(SPLITS_FILE).open("rb") as f:
        shipped = dict(np.load(f))
    assert sorted(shipped) == sorted(expected)
    for key, value in expected.items():
        assert np.array_equal(shipped[key], value), key


@pytest.mark.parametrize(
    ("name", "n_train", "n_test", "first", "sizes"),
    [
        ("cifar10", 50_000, 10, [0, 5, 7, 11, 13], (25_000, 25_000, 10)),
        ("cifar100", 20, 10_000, [1, 3, 4, 5, 8], (20, 5_000, 5_000)),
        ("ImageNet16-120", 20, 6_000, [1, 2, 3, 6, 7], (20, 3_000, 3_000)),
    ],
)
def test_search_uses_the_official_split(name, n_train, n_test, first, sizes):
    """CIFAR-10: the official train/valid halves; CIFAR-100, ImageNet16-120: all training images for the weights,
    the official x-valid for the arch step, x-test held out. The first indices are the files' own."""
    from nasbench_suite.data.splits import split_name

    ds = _tiny_dataset(name, n_train, n_test)
    split = search_split(ds, 0)
    assert tuple(len(p) for p in split) == sizes
    marked = split.train if name == "cifar10" else split.valid
    assert marked.indices[:5].tolist() == first
    for a, b in ((search_split(ds, 7).train, split.train), (search_split(ds, 7).valid, split.valid)):
        assert np.array_equal(a.indices, b.indices)  # split_seed only seeds datasets without an official split
    assert "official" in split_name(name) and split_name("digits", 3) == "seeded halves (split_seed=3)"


def test_official_split_needs_the_complete_dataset():
    with pytest.raises(DataError, match="official cifar10 split covers 50000"):
        search_split(_tiny_dataset("cifar10", 1_000, 10), 0)


# -- epoch length and arch batches as the reference (item 4) --------------------------------------------------------
def test_epoch_is_every_image_once_with_a_smaller_last_batch():
    """No drop_last: 25,000 images at batch 64 are 391 steps, the last of 40 (ENAS: 196 at batch 128)."""
    images, labels = np.zeros((25_000, 1, 1, 3), np.uint8), np.arange(25_000)
    for bsz, steps, last in ((64, 391, 40), (128, 196, 40)):
        s = _stream(images, labels, batch_size=bsz, pad=0, augment=False, drop_last=False)
        sizes = [len(next(s)[1]) for _ in range(steps)]
        assert s.steps_per_epoch == steps and sizes[-1] == last and sum(sizes) == 25_000
        assert s.epoch == 0 and len(next(s)[1]) == bsz and s.epoch == 1


def test_draw_is_with_replacement_and_resumes_exactly():
    """The arch batch: each image drawn uniformly with replacement (xautodl's SearchDataset), any size."""
    images, labels = _stream_data(n=10)
    s = _stream(images, labels, batch_size=4, seed=3)
    ys = torch.cat([s.draw(7)[1] for _ in range(20)])
    assert len(ys) == 140 and set(ys.tolist()) == set(range(10))
    assert any(len(set(s.draw(7)[1].tolist())) < 7 for _ in range(20))  # repeats within a batch happen
    state = s.state_dict()
    a = [s.draw(5) for _ in range(3)]
    s.load_state_dict(state)
    b = [s.draw(5) for _ in range(3)]
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_run_epochs_and_arch_batches_follow_the_reference(tmp_path, monkeypatch):
    """A run's epoch is every weight image once (digits: 718 images at 64 = 12 steps, the last of 14), and each
    arch batch has its train batch's size; the record says which split the run used."""
    from nasbench_suite.config import RunSpec
    from nasbench_suite.runner import Run, RunOptions

    run = Run(RunSpec("rsps", 0, "quick", (("epochs", "1"), ("C", "4"))), RunOptions(results=tmp_path))
    sizes = []
    original = run.method.search_step

    def spy(train_batch, valid_batch, epoch, step):
        sizes.append((len(train_batch[1]), len(valid_batch[1])))
        return original(train_batch, valid_batch, epoch, step)

    monkeypatch.setattr(run.method, "search_step", spy)
    record = run.execute()
    assert run.steps_per_epoch == 12 and len(sizes) == 12
    assert sizes[-1] == (14, 14) and all(t == v for t, v in sizes) and sizes[0] == (64, 64)
    assert record.data.split == "seeded halves (split_seed=0)"


# -- candidate selection on un-augmented images (item 2) ------------------------------------------------------------
@pytest.mark.parametrize(
    ("preset", "method", "augmented"),
    [
        ("nb201", "setn", False),
        ("nb201", "rsps", False),
        ("nb201", "enas", True),
        ("nats", "enas", False),
        ("nats", "rsps", False),
        ("quick", "setn", False),
        ("quick", "enas", True),
    ],
)
def test_selection_batches_use_the_reference_transform(preset, method, augmented, tmp_path):
    """SETN, RSPS and everything under the NATS script score candidates with the test transform; NB201's ENAS
    script gives its valid_loader the train transform (its controller rewards and selection are augmented)."""
    from nasbench_suite.config import RunSpec
    from nasbench_suite.runner import Run, RunOptions

    spec = RunSpec(method, 0, preset, (("C", "4"), ("N", "1"), ("select_batch_size", "16")), dataset="digits")
    run = Run(spec, RunOptions(results=tmp_path))
    x, y = next(run.selection_batches(0))
    part = run._valid_part
    plain = BatchStream.from_part(part, run.dataset, batch_size=len(part), augment=False, shuffle=False)
    xs, _ = next(plain)
    # each selection image is some validation image: with the test transform it equals one of them exactly
    flat = xs.flatten(1)
    exact = [(flat == xi.flatten()).all(1).any().item() for xi in x]
    assert all(exact) == (not augmented)
    assert run.protocol.select_augment == augmented
