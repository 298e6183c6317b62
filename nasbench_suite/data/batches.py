"""Endless, resumable streams of augmented, normalised batches that live on the compute device.

The whole image set is copied to the device once as uint8 (CIFAR-10: 150 MB), so a step costs one index
gather plus a few elementwise kernels, with no DataLoader workers and no host-to-device image traffic.
Augmentation is torchvision's ``RandomCrop(size, padding=pad)`` (zero padding of the raw pixels) then
``RandomHorizontalFlip()`` then ``Normalize(mean, std)``, done for the whole batch in one gather.

Every random number (epoch permutations, crop offsets, flips) comes from the stream's own CPU
``torch.Generator``, so a seed gives the same batches on CPU and CUDA and nothing global is touched; and
``state_dict()`` captures the generator, the current permutation and the position for an exact resume.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .sources import ImageDataset
from .splits import DataPart

_STATE_VERSION = 1
# Settings that change which batches a state produces; a state only loads into a stream that agrees on them.
_CONFIG_KEYS = ("num_samples", "batch_size", "drop_last", "augment", "shuffle", "pad")


class BatchStream:
    """An endless iterator of ``(x, y)`` batches: ``x`` float32 (or ``dtype``) ``(B, 3, H, W)`` normalised, ``y`` int64 ``(B,)``.

    Epochs are permutations of the images (``shuffle=False``: the stored order). With ``drop_last`` (default)
    every batch has ``batch_size`` images and an epoch's remainder is skipped; otherwise the last batch of an
    epoch is smaller. ``augment=False`` gives un-augmented batches (evaluation). ``channels_last`` returns ``x``
    in ``torch.channels_last`` memory format (same values).
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        pad: int,
        batch_size: int,
        device: str | torch.device = "cpu",
        seed: int = 0,
        augment: bool = True,
        shuffle: bool = True,
        drop_last: bool = True,
        channels_last: bool = False,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        """Copy ``images`` (uint8 ``(N, H, W, 3)``) and ``labels`` (``(N,)``) to ``device``; draw nothing yet."""
        images = np.asarray(images)
        labels = np.asarray(labels)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
            raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
        if labels.shape != (len(images),):
            raise ValueError(f"labels must have shape ({len(images)},), got {labels.shape}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ConfigError(f"batch size must be a positive integer, got {batch_size!r}")
        if drop_last and batch_size > len(images):
            raise ConfigError(
                f"batch size {batch_size} is larger than the {len(images)} images available and drop_last is set"
            )
        if len(images) == 0:
            raise ConfigError("cannot stream batches from an empty set of images")
        if pad < 0:
            raise ValueError(f"pad must be >= 0, got {pad}")
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.pad = int(pad)
        self.augment = bool(augment)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.channels_last = bool(channels_last)
        self.seed = int(seed)
        # NCHW made contiguous on the host, so the device copy needs no extra kernel; np.array copies, which
        # also avoids torch's warning about read-only numpy arrays.
        nchw = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
        self._images = torch.from_numpy(np.array(nchw, copy=True)).to(self.device)
        self._labels = torch.from_numpy(labels.astype(np.int64, copy=True)).to(self.device)
        # uint8 -> dtype directly: a float64 run (the portable regression) never passes through float32
        self._mean = torch.tensor(list(mean), dtype=dtype, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(list(std), dtype=dtype, device=self.device).view(1, 3, 1, 1)
        self._gen = torch.Generator(device="cpu")
        self._gen.manual_seed(self.seed)
        self._perm: torch.Tensor | None = None  # CPU int64, the current epoch's order
        self._pos = 0
        self._epoch = -1

    @classmethod
    def from_part(cls, part: DataPart, dataset: ImageDataset, **kwargs: Any) -> BatchStream:
        """A stream over a search-split part, with the dataset's mean, std and crop padding."""
        return cls(part.images, part.labels, mean=dataset.mean, std=dataset.std, pad=dataset.pad, **kwargs)

    # -- sizes --------------------------------------------------------------------------------------------------
    @property
    def num_samples(self) -> int:
        """Number of images the stream draws from."""
        return int(self._images.shape[0])

    @property
    def steps_per_epoch(self) -> int:
        """Batches per pass over the images (remainder dropped with ``drop_last``, else a smaller last batch)."""
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    @property
    def epoch(self) -> int:
        """0-based epoch of the last batch returned (-1 before the first batch)."""
        return self._epoch

    # -- iteration ----------------------------------------------------------------------------------------------
    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        n, b = self.num_samples, self.batch_size
        needed = b if self.drop_last else 1
        if self._perm is None or self._pos + needed > n:
            self._perm = torch.randperm(n, generator=self._gen) if self.shuffle else torch.arange(n)
            self._pos = 0
            self._epoch += 1
        idx = self._perm[self._pos : self._pos + b]
        self._pos += len(idx)
        return self._batch(idx)

    def draw(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of ``size`` images drawn uniformly WITH replacement, independently of the epoch order.

        This is how the reference pairs a validation image with each training image (xautodl's ``SearchDataset``:
        ``random.choice(valid_split)`` per sample), so the arch step's batch has the train batch's size, a smaller
        one at the end of an epoch included. Uses (and advances) the stream's generator, so it resumes exactly.
        """
        idx = torch.randint(0, self.num_samples, (int(size),), generator=self._gen)
        return self._batch(idx)

    def _batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        idx_dev = idx.to(self.device)
        x = self._images.index_select(0, idx_dev)
        if self.augment:
            x = self._crop_and_flip(x)
        x = x.to(self._mean.dtype).div_(255.0).sub_(self._mean).div_(self._std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self._labels.index_select(0, idx_dev)

    def _crop_and_flip(self, x: torch.Tensor) -> torch.Tensor:
        """Random crop of the zero-padded uint8 images, then a horizontal flip with p=0.5, as one gather."""
        bsz, _, h, w = x.shape
        p = self.pad
        # Drawn on the CPU generator in a fixed order (offsets, then flips) so the device does not change them.
        offsets = torch.randint(0, 2 * p + 1, (bsz, 2), generator=self._gen).to(self.device)
        flips = torch.randint(0, 2, (bsz, 1), generator=self._gen).bool().to(self.device)
        padded = F.pad(x, (p, p, p, p)) if p else x
        ar_h = torch.arange(h, device=self.device)
        ar_w = torch.arange(w, device=self.device)
        rows = offsets[:, :1] + ar_h  # (B, H): crop rows in the padded image
        # Flipping the crop reads its columns right to left: column j comes from dx + (W-1-j).
        cols = offsets[:, 1:] + torch.where(flips, (w - 1) - ar_w, ar_w)  # (B, W)
        b_idx = torch.arange(bsz, device=self.device).view(bsz, 1, 1, 1)
        c_idx = torch.arange(x.shape[1], device=self.device).view(1, -1, 1, 1)
        return padded[b_idx, c_idx, rows.view(bsz, 1, h, 1), cols.view(bsz, 1, 1, w)]

    # -- resume -------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly here: generator state, current permutation, position, epoch.

        Only tensors and plain Python values, so it saves with ``torch.save`` and loads with
        ``torch.load(weights_only=True)``.
        """
        state: dict[str, Any] = {
            "version": _STATE_VERSION,
            "generator": self._gen.get_state(),
            "perm": None if self._perm is None else self._perm.clone(),
            "pos": self._pos,
            "epoch": self._epoch,
        }
        state.update({key: getattr(self, key) for key in _CONFIG_KEYS})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; the stream must have the same data size, batch size and options."""
        if state.get("version") != _STATE_VERSION:
            raise ConfigError(f"batch stream state version {state.get('version')!r}, expected {_STATE_VERSION}")
        mismatched = {k: (state.get(k), getattr(self, k)) for k in _CONFIG_KEYS if state.get(k) != getattr(self, k)}
        if mismatched:
            detail = ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in mismatched.items())
            raise ConfigError(f"cannot resume a batch stream with different settings ({detail})")
        perm = state["perm"]
        if perm is not None and (perm.shape != (self.num_samples,) or perm.dtype != torch.int64):
            raise ConfigError(
                f"saved batch stream permutation has shape {tuple(perm.shape)}, expected ({self.num_samples},) int64"
            )
        self._gen.set_state(state["generator"].clone())
        self._perm = None if perm is None else perm.clone().cpu()
        self._pos = int(state["pos"])
        self._epoch = int(state["epoch"])
