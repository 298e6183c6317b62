"""Reading the python-pickle batch files of CIFAR and ImageNet16 safely.

The files are Python-2 pickles (CIFAR) or Python-3 pickles (ImageNet16) of one dict holding a uint8 array and a
label list. ``pickle`` runs whatever a file asks for, so the unpickler below only resolves the handful of
globals a numpy array needs; anything else in a file is reported as a :class:`DataError`, like any other file
that is not the expected batch.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

# (module, name) pairs a pickled dict of numpy arrays, lists, ints and bytes can need. numpy 1 pickles name
# ``numpy.core``, numpy 2 pickles ``numpy._core``; protocol-2 pickles written by Python 3 encode bytes through
# ``_codecs.encode``; protocol 5 rebuilds arrays with ``_frombuffer``.
_ALLOWED_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
        ("builtins", "bytearray"),
    }
)


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global except those that rebuild numpy arrays."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return super().find_class(module, name)


def read_batch(path: Path, expected: str) -> dict[str, Any]:
    """Unpickle one batch file and return its dict with ``str`` keys.

    ``expected`` describes the layout the caller wants and goes into the error message. Python-2 pickles are
    read with ``encoding="bytes"`` (their keys come back as ``bytes``, e.g. ``b'data'``); keys are decoded so
    CIFAR and ImageNet16 files read the same way. Raises :class:`DataError` naming ``path`` when the file is
    missing, unreadable, not a pickle, or not a dict.
    """
    if not path.is_file():
        raise DataError(f"missing file {path}: expected {expected}")
    try:
        with path.open("rb") as f:
            payload = _BatchUnpickler(f, encoding="bytes").load()
    except Exception as exc:  # a corrupt pickle can raise almost anything (EOFError, ValueError, ...)
        raise DataError(f"cannot read {path} as a python pickle ({exc}): expected {expected}") from exc
    if not isinstance(payload, dict):
        raise DataError(f"{path} holds a {type(payload).__name__}, not a dict: expected {expected}")
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in payload.items()}


def batch_arrays(
    entry: dict[str, Any], path: Path, label_key: str, image_size: int, expected: str
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images NHWC uint8, labels int64)`` from one batch dict, checking the layout.

    The files store each image channel-major (all red, then green, then blue), row by row: ``3*S*S`` bytes.
    """
    for key in ("data", label_key):
        if key not in entry:
            raise DataError(f"{path} has no '{key}' entry (keys: {sorted(entry)}): expected {expected}")
    data = entry["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        kind = f"{data.dtype} array" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: 'data' is a {kind}, not a uint8 array: expected {expected}")
    row = 3 * image_size * image_size
    if data.ndim != 2 or data.shape[1] != row:
        raise DataError(f"{path}: 'data' has shape {data.shape}, expected (N, {row}): expected {expected}")
    try:
        labels = np.asarray(entry[label_key])
        if labels.dtype.kind not in "iu":
            raise TypeError(f"dtype {labels.dtype}")
        labels = labels.astype(np.int64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: '{label_key}' is not a list of integers ({exc}): expected {expected}") from exc
    if len(labels) != len(data):
        raise DataError(f"{path}: {len(data)} images but {len(labels)} labels: expected {expected}")
    images = data.reshape(-1, 3, image_size, image_size).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels
