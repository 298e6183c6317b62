"""Reading pickles safely: the dataset batch files ourselves, benchmark files before a third-party API does.

``pickle`` runs whatever a file asks for (a ``__reduce__`` naming ``os.system`` is enough), and results folders,
datasets and benchmark files come from other people. Two tools, one allowlist idea:

- :func:`read_batch` unpickles the python-pickle batch files of CIFAR and ImageNet16 (Python-2 or Python-3 pickles
  of one dict holding a uint8 array and a label list) with an unpickler that resolves only the handful of globals
  a numpy array needs; anything else in a file is reported as a :class:`DataError`.
- :func:`unlisted_global` reads a pickle stream opcode by opcode (``pickletools.genops``, nothing executed) and
  names the first global outside an allowlist, for files that an official API unpickles itself (NB201 ``.pth``,
  NATS-Bench ``.pickle.pbz2``): the caller refuses those before the API sees them.
"""

from __future__ import annotations

import io
import pickle
import pickletools
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import DataError

# (module, name) pairs a pickled dict of numpy arrays, lists, ints and bytes can need. numpy 1 pickles name
# ``numpy.core``, numpy 2 pickles ``numpy._core``; protocol-2 pickles written by Python 3 encode bytes through
# ``_codecs.encode``; protocol 5 rebuilds arrays with ``_frombuffer``.
NUMPY_ARRAY_GLOBALS = frozenset(
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
        if (module, name) not in NUMPY_ARRAY_GLOBALS:
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


# Opcodes that push one str and nothing else: what STACK_GLOBAL's two operands must come from to be read statically.
_STRING_PUSH = frozenset(
    {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING"}
)
_MEMO_GET = frozenset({"GET", "BINGET", "LONG_BINGET"})
_MEMO_PUT = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"})


def unlisted_global(stream: bytes | BinaryIO, allowed: Iterable[tuple[str, str]], pickles: int = 1) -> str | None:
    """The first global that ``stream`` would import and ``allowed`` does not list, as ``module.name``; else None.

    Reads up to ``pickles`` consecutive pickles (a legacy ``torch.save`` file is five in a row) without executing
    anything. ``GLOBAL``/``INST`` name their global in the opcode; ``STACK_GLOBAL`` takes it from the two strings
    on top of the stack, which are read back through the memo. Anything that could import a global this scan cannot
    name (a STACK_GLOBAL whose operands were computed, the copyreg extension opcodes) is refused as such. Raises
    ``ValueError`` (or another ``Exception`` from ``pickletools``) when the stream is not a pickle; the caller
    reports that as a corrupt file.
    """
    allowed = frozenset(allowed)
    f = io.BytesIO(stream) if isinstance(stream, (bytes, bytearray, memoryview)) else stream
    for n in range(pickles):
        if n and not f.read(1):  # the stream may hold fewer pickles (e.g. a plain pickle named .pth)
            return None
        if n:
            f.seek(-1, io.SEEK_CUR)
        memo: dict[int, str | None] = {}
        # the values the last stack-changing opcodes pushed, newest last (None: not a literal string)
        pushed: list[str | None] = []
        for op, arg, _pos in pickletools.genops(f):
            name = op.name
            if name in ("GLOBAL", "INST"):
                module, _, attr = str(arg).partition(" ")
                if (module, attr) not in allowed:
                    return f"{module}.{attr}"
                pushed.append(None)
            elif name == "STACK_GLOBAL":
                module, attr = (pushed[-2], pushed[-1]) if len(pushed) >= 2 else (None, None)
                if module is None or attr is None:
                    return "a global named by computed strings (STACK_GLOBAL)"
                if (module, attr) not in allowed:
                    return f"{module}.{attr}"
                pushed.append(None)
            elif name.startswith("EXT"):
                return f"a copyreg extension global ({name} {arg})"
            elif name in _STRING_PUSH:
                pushed.append(str(arg))
            elif name in _MEMO_GET:
                pushed.append(memo.get(arg))
            elif name in _MEMO_PUT:
                memo[len(memo) if name == "MEMOIZE" else arg] = pushed[-1] if pushed else None
            else:
                pushed.append(None)  # any other opcode: the top of the stack is no longer a known literal
            del pushed[:-2]
    return None
