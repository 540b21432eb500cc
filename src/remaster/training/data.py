"""Training data: the user's images, checked up front, and random augmented patches from them.

Everything is checked before the first step, so a run never dies an hour in
on a bad file: the folder must exist and hold images, every image must load,
and every image must be at least one patch big.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import RemasterError, UsageError

__all__ = ["IMAGE_SUFFIXES", "TrainingImage", "load_folder", "load_pairs", "PatchSampler", "augment"]

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
    from ..io import load

    image = load(path)  # raises InputError naming the file for anything that is not a readable image
    pixels = image.pixels[0].float()
    if pixels.shape[0] == 1:
        pixels = pixels.expand(3, -1, -1)
    return pixels.contiguous()


def load_folder(folder: str | Path, *, min_size: int, what: str = "training") -> list[TrainingImage]:
    """Every image of ``folder`` (recursively), as RGB; each must be at least ``min_size`` on both sides.

    Raises:
        UsageError: missing/empty folder, no images, or images smaller than ``min_size`` (all listed).
        InputError: a file that does not decode as an image (its path in the message).
    """
    folder = Path(folder)
    loaded: list[TrainingImage] = []
    for path in _image_files(folder, what):
        try:
            loaded.append(TrainingImage(path, _load_rgb(path)))
        except RemasterError as exc:
            exc.hint = exc.hint or f"remove it from the {what} folder or replace it with a valid image"
            raise
    small = [image for image in loaded if min(image.size) < min_size]
    if small:
        listing = ", ".join(f"{image.path.name} ({image.size[1]}x{image.size[0]})" for image in small[:5])
        more = f" and {len(small) - 5} more" if len(small) > 5 else ""
        raise UsageError(f"{len(small)} image(s) in the {what} folder are smaller than {min_size}x{min_size} pixels: "
                         f"{listing}{more}", path=folder,
                         hint="remove them, or use a smaller --patch")
    return loaded


def load_pairs(hr_folder: str | Path, lr_folder: str | Path, *, scale: int, lr_min_size: int
               ) -> list[tuple[TrainingImage, TrainingImage]]:
    """Paired mode: each HR image with the LR image of the same name (any extension), ``scale`` times smaller.

    Raises:
        UsageError: an HR image without LR partner, sizes that do not match, or images too small.
    """
    hr_images = load_folder(hr_folder, min_size=lr_min_size * scale, what="HR")
    lr_images = load_folder(lr_folder, min_size=lr_min_size, what="LR")
    by_stem = {image.path.relative_to(lr_folder).with_suffix("").as_posix(): image for image in lr_images}
    pairs = []
    for hr in hr_images:
        key = hr.path.relative_to(hr_folder).with_suffix("").as_posix()
        lr = by_stem.get(key)
        if lr is None:
            raise UsageError(f"no LR image named {key}.* for the HR image {hr.path.name}", path=lr_folder,
                             hint="give every HR image an LR partner with the same name")
        expected = (hr.size[0] // scale, hr.size[1] // scale)
        if lr.size != expected:
            raise UsageError(f"the LR image is {lr.size[1]}x{lr.size[0]}, but its HR image {hr.path} needs "
                             f"{expected[1]}x{expected[0]} (x{scale})", path=lr.path,
                             hint="LR images must be the HR size divided by the model's scale")
        pairs.append((hr, lr))
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
