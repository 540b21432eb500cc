"""Shared fixtures: GFPGAN networks initialised here and saved in the official checkpoint format.

Real GFPGAN weights cannot be downloaded on the test machines, so the tests run
the real code on random weights: what they check (loading, geometry, parity
with the official GFPGANer, the CLI) does not depend on what the network learnt.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from remaster.plugin.host import get_host
from remaster.weights import sha256_file


def build_official_gfpgan(seed: int = 0) -> torch.nn.Module:
    """GFPGANv1Clean from the official ``gfpgan`` package (test-only peer), with GFPGANer's settings."""
    arch = pytest.importorskip("gfpgan.archs.gfpganv1_clean_arch",
                               reason="gfpgan (test-only peer, requirements-peers.txt) is not installed")
    torch.manual_seed(seed)
    return arch.GFPGANv1Clean(out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None,
                              fix_decoder=False, num_mlp=8, input_is_latent=True, different_w=True, narrow=1,
                              sft_half=True).eval()


@pytest.fixture(scope="session")
def gfpgan_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random GFPGANv1Clean saved as the official files are: ``{'params_ema': state_dict}`` in a .pth."""
    path = tmp_path_factory.mktemp("gfpgan") / "GFPGANv1.4.pth"
    torch.save({"params_ema": build_official_gfpgan().state_dict()}, path)
    return path


#: The face size of the small stand-in GFPGAN (the official networks take 512 px faces: 26 G multiply-adds each).
STAND_IN_FACE = 64


@pytest.fixture(scope="session")
def tiny_restorer():
    """A random GFPGANv1Clean for 64 px faces, described as spandrel describes the official ones.

    spandrel's loader only builds 512 px GFPGANs, so the descriptor is made here, stating the
    fixed face size as the minimum size, as spandrel's does.
    """
    import spandrel
    from spandrel.architectures.GFPGAN import GFPGAN, GFPGANArch

    from remaster_gfpgan.stage import FaceRestorer

    torch.manual_seed(0)
    model = GFPGAN(out_size=STAND_IN_FACE, num_style_feat=16, channel_multiplier=1, narrow=0.0625, num_mlp=2)
    descriptor = spandrel.ImageModelDescriptor(
        model, model.state_dict(), architecture=GFPGANArch(), purpose="FaceSR", tags=[], supports_half=False,
        supports_bfloat16=True, scale=1, input_channels=3, output_channels=3,
        size_requirements=spandrel.SizeRequirements(minimum=STAND_IN_FACE), call_fn=lambda m, x: m(x)[0])
    descriptor.model.eval().requires_grad_(False)
    return FaceRestorer(descriptor)


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image provides the test photos")
    return skimage_data.astronaut()


@pytest.fixture(scope="session")
def face_photo(astronaut: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 256×256 crop of skimage's astronaut with her face (about 95 px) in it."""
    path = tmp_path_factory.mktemp("photos") / "face.png"
    PILImage.fromarray(astronaut[0:256, 100:356]).save(path)
    return path


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty weights cache for one test."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("REMASTER_CACHE", str(folder))
    return folder


@pytest.fixture
def accept_as_official(monkeypatch: pytest.MonkeyPatch):
    """Make the registry expect ``file``'s hash for weights ``name``, for this test only.

    Stands in for having the official file: the random checkpoint has the
    official format but of course not the official hash.
    """
    registry = get_host().weights

    def accept(name: str, file: Path) -> None:
        spec = registry.get(name)
        monkeypatch.setitem(registry._specs, name, dataclasses.replace(spec, sha256=sha256_file(file)))

    return accept
