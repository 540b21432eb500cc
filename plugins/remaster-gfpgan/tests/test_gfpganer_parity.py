"""Parity of the gfpgan stage with the official ``gfpgan.GFPGANer`` on the same (random) weights.

``GFPGANer.enhance(img, has_aligned=True)`` is GFPGAN's own inference on an
aligned 512×512 face: BGR uint8 in, normalise to [-1, 1], GFPGANv1Clean,
``tensor2img`` back to uint8. Ours: the same checkpoint loaded by spandrel,
RGB float in, the pipeline's single quantisation at the end.

GFPGANer's constructor always builds its RetinaFace and ParseNet helpers and
looks for their weights in the *relative* folder ``gfpgan/weights`` (the
upstream pain point our weights manager avoids); the test gives it randomly
initialised files there, inside a temporary working directory, so nothing is
downloaded.

Random GFPGANv1Clean weights leave the StyleGAN noise strengths at zero (as
the official initialisation does), so GFPGANer's fresh noise and our fixed
noise give the same output; see docs/faces.md for why we fix the noise.

Measured here (two AMD EPYC cores, torch 2.14, fp32): identical 8-bit output,
0 of 786432 values differ (``pytest -s`` prints the count). The bar allows a
few values off by one for other CPUs' floating-point paths.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from remaster import Remasterer
from remaster_gfpgan import geometry
from remaster_gfpgan.detectors import HaarDetector

gfpgan_utils = pytest.importorskip(
    "gfpgan.utils", reason="gfpgan (test-only peer, requirements-peers.txt) is not installed"
)


@pytest.fixture
def official_gfpganer(gfpgan_checkpoint, tmp_path, monkeypatch):
    from facexlib.detection.retinaface import RetinaFace
    from facexlib.parsing.parsenet import ParseNet

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "gfpgan" / "weights"
    folder.mkdir(parents=True)
    torch.manual_seed(1)
    with pytest.warns(UserWarning):  # facexlib's resnet50(pretrained=False)
        torch.save(RetinaFace("resnet50", device=torch.device("cpu")).state_dict(),
                   folder / "detection_Resnet50_Final.pth")
    torch.save(ParseNet(in_size=512, out_size=512, parsing_ch=19).state_dict(), folder / "parsing_parsenet.pth")
    return gfpgan_utils.GFPGANer(model_path=str(gfpgan_checkpoint), upscale=1, arch="clean", channel_multiplier=2,
                                 bg_upsampler=None, device=torch.device("cpu"))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*pretrained.*:UserWarning", "ignore:Arguments other than a weight enum")
def test_aligned_face_matches_gfpganer(official_gfpganer, gfpgan_checkpoint, astronaut):
    # A real aligned face: the astronaut's, found and aligned by our own Haar path.
    image = astronaut.astype(np.float32) / 255.0
    face = HaarDetector().detect(image, min_size=16)[0]
    aligned = geometry.crop_face(image, geometry.alignment_matrix(face.landmarks))
    aligned_rgb = (aligned * 255.0 + 0.5).astype(np.uint8)

    _, restored, _ = official_gfpganer.enhance(np.ascontiguousarray(aligned_rgb[..., ::-1]), has_aligned=True,
                                               paste_back=False)
    theirs = restored[0][..., ::-1]
    ours = Remasterer([f"gfpgan(model={str(gfpgan_checkpoint)!r}, aligned=True)"], device="cpu",
                      precision="fp32").run(aligned_rgb)

    assert ours.shape == theirs.shape == (512, 512, 3)
    diff = np.abs(ours.astype(int) - theirs.astype(int))
    print(f"\nGFPGANer parity: {int((diff > 0).sum())} of {diff.size} values differ, max {diff.max()}")
    assert diff.max() <= 1
    assert (diff > 0).mean() < 0.001
    assert np.abs(ours.astype(int) - aligned_rgb.astype(int)).max() > 10  # the network really ran
