"""Tiny networks and image folders for the fine-tuning tests (random weights; no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from remaster.weights import save_state_dict


def tiny_compact(path: Path, seed: int = 0) -> Path:
    """A random x2 SRVGGNetCompact with 8 features and 4 convolutions, saved as safetensors."""
    from spandrel.architectures.Compact.__arch.SRVGG import SRVGGNetCompact

    torch.manual_seed(seed)
    model = SRVGGNetCompact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=4, upscale=2)
    return save_state_dict(model.state_dict(), path)


def tiny_rrdb(path: Path, seed: int = 0) -> Path:
    """A random x2 RRDBNet with 8 filters and 3 blocks, saved as safetensors."""
    from spandrel.architectures.ESRGAN.__arch.RRDB import RRDBNet

    torch.manual_seed(seed)
    model = RRDBNet(in_nc=3, out_nc=3, num_filters=8, num_blocks=3, scale=2)
    return save_state_dict(model.state_dict(), path)


def write_crops(folder: Path, size: int = 48, names: tuple[str, ...] = ("astronaut", "coffee", "chelsea")) -> Path:
    """One ``size``-pixel crop of each skimage.data colour photo, as PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        image = getattr(data, name)()
        top, left = image.shape[0] // 3, image.shape[1] // 3
        Image.fromarray(np.ascontiguousarray(image[top:top + size, left:left + size])).save(folder / f"{name}.png")
    return folder


@pytest.fixture
def compact_file(tmp_path: Path) -> Path:
    return tiny_compact(tmp_path / "tiny-compact.safetensors")


@pytest.fixture
def rrdb_file(tmp_path: Path) -> Path:
    return tiny_rrdb(tmp_path / "tiny-rrdb.safetensors")


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    return write_crops(tmp_path / "photos")
