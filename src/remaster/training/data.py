"""Training data: the user's images, checked up front, and random augmented patches from them.

Everything is checked before the first step, so a run never dies an hour in
on a bad file: the folder must exist and hold images, and every image must be
at least one patch big. A file that does not load as an image is left out and
reported (as a folder upscale goes on past one); only a folder where no image
loads is an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from remaster.errors import InputError, UsageError

__all__ = ["IMAGE_SUFFIXES", "TrainingImage", "SkippedFile", "load_folder", "load_pairs", "PatchSampler", "augment"]

#: Files picked up from a data folder.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")


@dataclass
class TrainingImage:
    """One image in memory: float32 ``(3, H, W)`` in [0, 1] on the CPU, and where it came from."""

    path: Path
    pixels: torch.Tensor

    @property
    def size(self) -> tuple[int, int]:
        return int(self.pixels.shape[-2]), int(self.pixels.shape[-1])


@dataclass(frozen=True)
class SkippedFile:
    """A file of a data folder that was left out, and why (e.g. ``not an image ...``)."""

    path: Path
    reason: str


def _image_files(folder: Path, what: str) -> list[Path]:
    if not folder.is_dir():
        raise UsageError(f"the {what} folder does not exist" if not folder.exists() else f"the {what} path is not a "
                         "folder", path=folder, hint="give a folder of images")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        others = f" (it holds {len(files)} other file(s), e.g. {files[0].name})" if files else " (it is empty)"
        raise UsageError(f"no images in the {what} folder{others}", path=folder,
                         hint=f"put {', '.join(IMAGE_SUFFIXES)} files there")
    return images


def _load_rgb(path: Path) -> torch.Tensor:
    from remaster.io import load

    image = load(path)  # raises InputError naming the file for anything that is not a readable image
    pixels = image.pixels[0].float()
    if pixels.shape[0] == 1:
        pixels = pixels.expand(3, -1, -1)
    return pixels.contiguous()


def load_folder(folder: str | Path, *, min_size: int, what: str = "training",
                skipped: list[SkippedFile] | None = None) -> list[TrainingImage]:
    """Every image of ``folder`` (recursively), as RGB; each must be at least ``min_size`` on both sides.

    A file that does not load (unreadable, corrupt, not an image) is left out and appended to ``skipped``
    when a list is given.

    Raises:
        UsageError: missing/empty folder, no images, no image that loads (the files are listed with the
            reason), or images smaller than ``min_size`` (all listed).
    """
    folder = Path(folder)
    loaded: list[TrainingImage] = []
    unreadable: list[SkippedFile] = []
    for path in _image_files(folder, what):
        try:
            loaded.append(TrainingImage(path, _load_rgb(path)))
        except InputError as exc:  # one bad file among many must not stop a run (a folder upscale skips it too)
            unreadable.append(SkippedFile(path, exc.message))
    if not loaded:
        listing = "; ".join(f"{item.path.name}: {item.reason}" for item in unreadable[:5])
        more = f"; and {len(unreadable) - 5} more" if len(unreadable) > 5 else ""
        raise UsageError(f"no image in the {what} folder could be read ({listing}{more})", path=folder,
                         hint="replace the files with valid images")
    if skipped is not None:
        skipped.extend(unreadable)
    small = [image for image in loaded if min(image.size) < min_size]
    if small:
        listing = ", ".join(f"{image.path.name} ({image.size[1]}x{image.size[0]})" for image in small[:5])
        more = f" and {len(small) - 5} more" if len(small) > 5 else ""
        raise UsageError(f"{len(small)} image(s) in the {what} folder are smaller than {min_size}x{min_size} pixels: "
                         f"{listing}{more}", path=folder,
                         hint="remove them, or use {opt:patch}")
    return loaded


def load_pairs(hr_folder: str | Path, lr_folder: str | Path, *, scale: int, lr_min_size: int,
               skipped: list[SkippedFile] | None = None) -> list[tuple[TrainingImage, TrainingImage]]:
    """Paired mode: each HR image with the LR image of the same name (any extension), ``scale`` times smaller.

    Files that do not load are left out as :func:`load_folder` leaves them out, and so is the HR image of
    an LR file that does not load; each is appended to ``skipped`` when a list is given.

    Raises:
        UsageError: an HR image without LR partner, sizes that do not match, images too small, or no pair left.
    """
    left_out: list[SkippedFile] = []
    hr_images = load_folder(hr_folder, min_size=lr_min_size * scale, what="HR", skipped=left_out)
    lr_images = load_folder(lr_folder, min_size=lr_min_size, what="LR", skipped=left_out)
    by_stem = {image.path.relative_to(lr_folder).with_suffix("").as_posix(): image for image in lr_images}
    bad_lr = {item.path.relative_to(lr_folder).with_suffix("").as_posix(): item.path for item in left_out
              if item.path.is_relative_to(lr_folder)}
    pairs = []
    for hr in hr_images:
        key = hr.path.relative_to(hr_folder).with_suffix("").as_posix()
        lr = by_stem.get(key)
        if lr is None and key in bad_lr:
            left_out.append(SkippedFile(hr.path, f"its LR image {bad_lr[key].name} could not be read"))
            continue
        if lr is None:
            raise UsageError(f"no LR image named {key}.* for the HR image {hr.path.name}", path=lr_folder,
                             hint="give every HR image an LR partner with the same name")
        expected = (hr.size[0] // scale, hr.size[1] // scale)
        if lr.size != expected:
            raise UsageError(f"the LR image is {lr.size[1]}x{lr.size[0]}, but its HR image {hr.path} needs "
                             f"{expected[1]}x{expected[0]} (x{scale})", path=lr.path,
                             hint="LR images must be the HR size divided by the model's scale")
        pairs.append((hr, lr))
    if not pairs:
        raise UsageError("no HR/LR pair is left: every LR image that belongs to an HR image could not be read",
                         path=lr_folder, hint="replace the LR files with valid images")
    if skipped is not None:
        skipped.extend(left_out)
    return pairs


def augment(patches: Sequence[torch.Tensor], hflip: bool, vflip: bool, rot90: bool) -> list[torch.Tensor]:
    """Apply the same flips and transpose to every patch (BasicSR's ``augment``: 8 orientations)."""
    out = []
    for patch in patches:
        if hflip:
            patch = patch.flip(-1)
        if vflip:
            patch = patch.flip(-2)
        if rot90:
            patch = patch.transpose(-1, -2)
        out.append(patch)
    return out


class PatchSampler:
    """Random patches: pick an image, crop, flip and rotate; HR alone or aligned HR/LR pairs.

    Args:
        images: The HR images, or ``(hr, lr)`` pairs for paired mode.
        patch: HR patch size (a multiple of ``scale``).
        scale: The model's factor.
        rng: Where every random choice comes from (saved and restored for exact resume).
    """

    def __init__(self, images: Sequence[TrainingImage] | Sequence[tuple[TrainingImage, TrainingImage]], *,
                 patch: int, scale: int, rng: np.random.Generator):
        self.items = list(images)
        self.patch = int(patch)
        self.scale = int(scale)
        self.rng = rng

    @property
    def paired(self) -> bool:
        return bool(self.items) and isinstance(self.items[0], tuple)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(hr (N, 3, P, P), lr (N, 3, P/s, P/s) or None)`` on the CPU."""
        hrs, lrs = [], []
        lr_patch = self.patch // self.scale
        for _ in range(size):
            item = self.items[int(self.rng.integers(len(self.items)))]
            hr_image, lr_image = item if isinstance(item, tuple) else (item, None)
            if lr_image is not None:  # crop in LR coordinates so the pair stays aligned
                h, w = lr_image.size
                top, left = int(self.rng.integers(h - lr_patch + 1)), int(self.rng.integers(w - lr_patch + 1))
                crops = [hr_image.pixels[:, top * self.scale:(top + lr_patch) * self.scale,
                                         left * self.scale:(left + lr_patch) * self.scale],
                         lr_image.pixels[:, top:top + lr_patch, left:left + lr_patch]]
            else:
                h, w = hr_image.size
                top, left = int(self.rng.integers(h - self.patch + 1)), int(self.rng.integers(w - self.patch + 1))
                crops = [hr_image.pixels[:, top:top + self.patch, left:left + self.patch]]
            flips = self.rng.uniform(size=3) < 0.5
            crops = augment(crops, bool(flips[0]), bool(flips[1]), bool(flips[2]))
            hrs.append(crops[0])
            if len(crops) > 1:
                lrs.append(crops[1])
        return torch.stack(hrs), (torch.stack(lrs) if lrs else None)
