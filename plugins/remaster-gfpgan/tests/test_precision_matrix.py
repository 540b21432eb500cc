"""The gfpgan stage's whole path at fp32 and at bf16, forced (never "auto"), with every detector and mask.

The host's own choice must not decide what is tested: ``--precision auto`` picks
bf16 on AVX512-BF16/AMX CPUs and fp32 elsewhere, where bf16 is emulated and very
slow. So the networks with a fixed input size are small stand-ins of their own
architecture: GFPGANv1Clean restoring 64 px faces (conftest.tiny_restorer; the
official layout takes 512 px faces, about 5 s each here even in fp32) and a
ParseNet of a few channels (the official one takes about 15 s per face in fp32
on two cores). RetinaFace is the real network (ResNet-50 and MobileNet 0.25)
with heads set to report a face on every 64 px anchor, so that detection,
alignment, restoration, parsing and paste-back all run on a 96 px photo, in
about a second or less per case.

Detection and parsing run in fp32 even in a bf16 run (facexlib turns their
outputs into numpy, which has no bfloat16); only the restorer runs in bf16.
bf16 against fp32, tolerance: rounding the restorer's convolution inputs and
weights to bf16's 8 significant bits changes the image by at most 0.007 on the
[0, 1] scale here (``pytest -s`` prints it), within the face only. The bar,
0.05, leaves 7x room for other CPUs' kernels and still catches a face that
broke in bf16 (off by tenths).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from remaster import Remasterer, io
from remaster.plugin.host import get_host
from remaster_gfpgan.detectors import HaarDetector, RetinaFaceDetector
from remaster_gfpgan.geometry import FACE_SIZE, FFHQ_TEMPLATE
from remaster_gfpgan.stage import GFPGANStage

facexlib = pytest.importorskip("facexlib", reason="facexlib is installed by make install (requirements-nodeps.txt)")

PRECISIONS = ("fp32", "bf16")
DETECTORS = ("haar", "retinaface", "retinaface-mobile")
MASKS = ("feather", "parsing")
MAX_DIFF = 0.05
STAND_IN_FACE = 64  # conftest.tiny_restorer's


def tiny_parsenet(seed: int = 0) -> torch.nn.Module:
    """ParseNet for 512 px faces, as the stage's, but with 4 to 8 channels and one residual block (random)."""
    from facexlib.parsing.parsenet import ParseNet

    torch.manual_seed(seed)
    net = ParseNet(in_size=FACE_SIZE, out_size=FACE_SIZE, min_feat_size=64, base_ch=4, parsing_ch=19, res_depth=1,
                   ch_range=[4, 8])
    return net.eval().requires_grad_(False)


def one_face_per_anchor_retinaface(network: str, path: Path) -> Path:
    """RetinaFace weights (random backbone) whose heads find a face with FFHQ-placed landmarks on each 64 px anchor.

    With the heads' weights zero, their outputs are their biases: a face score of about 1 for the first anchor
    of the middle level (64 px, every 16 px) and about 0 elsewhere, the box exactly the anchor, and the five
    landmarks where the FFHQ template puts them in a box of that size.
    """
    from facexlib.detection.retinaface import RetinaFace

    torch.manual_seed(0)
    with warnings.catch_warnings():  # facexlib's resnet50(pretrained=False)
        warnings.simplefilter("ignore", UserWarning)
        model = RetinaFace(network, device=torch.device("cpu"))
    variance = 0.1  # facexlib's cfg['variance'][0]: landmark offsets are in units of 0.1 anchor size
    offsets = torch.from_numpy((FFHQ_TEMPLATE / FACE_SIZE - 0.5) / variance).flatten()
    with torch.no_grad():
        for level in range(3):
            for head in (model.ClassHead[level], model.BboxHead[level], model.LandmarkHead[level]):
                head.conv1x1.weight.zero_()
                head.conv1x1.bias.zero_()
            scores = model.ClassHead[level].conv1x1.bias.view(-1, 2)  # (anchor, [background, face])
            scores[:, 1] = -10.0
            if level == 1:
                scores[0, 1] = 10.0
            model.LandmarkHead[level].conv1x1.bias.view(-1, 10)[:] = offsets
    torch.save(model.state_dict(), path)
    return path


class StandInStage(GFPGANStage):
    """The gfpgan stage with the stand-ins above; everything between them is the stage's own code.

    The detector and parser normally come from the weights manager; here they are built once for all tests.
    """

    def __init__(self, stand_ins: dict, **params):
        spec = get_host().stages.get("gfpgan")
        super().__init__(**spec.resolve_params(params))
        self.spec = spec
        self._restorer = stand_ins["restorer"]
        self._stand_ins = stand_ins

    def _make_detector(self, device):
        choice = self.params["detector"]
        return HaarDetector() if choice == "haar" else self._stand_ins["detectors"][choice]

    def _make_parser(self, device):
        return self._stand_ins["parser"].to(device) if self.params["mask"] == "parsing" else None


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory, tiny_restorer) -> dict:
    folder = tmp_path_factory.mktemp("face-networks")
    files = {"retinaface": one_face_per_anchor_retinaface("resnet50", folder / "resnet50.pth"),
             "retinaface-mobile": one_face_per_anchor_retinaface("mobile0.25", folder / "mobile.pth")}
    detectors = {name: RetinaFaceDetector(file, network="resnet50" if name == "retinaface" else "mobile0.25",
                                          device=torch.device("cpu")) for name, file in files.items()}
    return {"restorer": tiny_restorer, "parser": tiny_parsenet(), "detectors": detectors}


@pytest.fixture(scope="module")
def small_face(astronaut) -> np.ndarray:
    """The astronaut's face (about 36 px, found by the Haar cascades) in a 96 px float32 photo."""
    crop = astronaut[0:256, 100:356].astype(np.float32) / 255.0
    return cv2.resize(crop, (96, 96), interpolation=cv2.INTER_AREA)


def restore(stand_ins: dict, image: np.ndarray, precision: str, **params):
    stage = StandInStage(stand_ins, only_center_face=True, **params)
    return Remasterer([stage], device="cpu", precision=precision).run_image(io.load(image))


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("detector", DETECTORS)
def test_detect_restore_paste(detector, mask, precision, stand_ins, small_face):
    result = restore(stand_ins, small_face, precision, detector=detector, mask=mask)
    assert result.meta.extras["face_detector"] == detector
    assert result.meta.extras["faces"] == 1 and result.meta.extras["faces_found"] >= 1
    out = io.to_numpy(result, np.float32)
    assert out.shape == small_face.shape and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
    changed = np.abs(out - small_face).max(axis=2) > 1e-3
    assert changed.any()  # a (random) face was pasted in
    assert not changed[0].any() and not changed[-1].any()  # and not over the whole image
    if precision != "fp32":
        reference = io.to_numpy(restore(stand_ins, small_face, "fp32", detector=detector, mask=mask), np.float32)
        diff = np.abs(out - reference)
        print(f"bf16 vs fp32: max {diff.max():.4f}, mean {diff.mean():.5f}")  # pytest -s shows them
        assert 0.0 < diff.max() <= MAX_DIFF  # above 0: the restorer really ran in bf16


@pytest.mark.parametrize("precision", PRECISIONS)
def test_aligned_face(precision, stand_ins, small_face):
    face = cv2.resize(small_face, (STAND_IN_FACE, STAND_IN_FACE), interpolation=cv2.INTER_AREA)
    result = restore(stand_ins, face, precision, aligned=True)
    out = io.to_numpy(result, np.float32)
    assert out.shape == face.shape and np.isfinite(out).all() and np.abs(out - face).max() > 0.05
    if precision != "fp32":
        reference = io.to_numpy(restore(stand_ins, face, "fp32", aligned=True), np.float32)
        assert 0.0 < np.abs(out - reference).max() <= MAX_DIFF


def test_retinaface_detects_in_fp32_inside_a_bf16_run(stand_ins):
    """The pipeline calls the stage under bf16 autocast; facexlib turns RetinaFace's outputs into numpy."""
    detector = stand_ins["detectors"]["retinaface-mobile"]
    image = np.random.default_rng(0).random((64, 64, 3), dtype=np.float32)
    expected = detector.detect(image, min_size=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        faces = detector.detect(image, min_size=1)  # was: TypeError: Got unsupported ScalarType BFloat16
    assert faces and [f.box for f in faces] == [f.box for f in expected]
    assert all(np.array_equal(f.landmarks, e.landmarks) for f, e in zip(faces, expected))  # bf16 would round them


def test_the_parsing_mask_is_computed_in_fp32_inside_a_bf16_run(stand_ins):
    stage = StandInStage(stand_ins, mask="parsing")
    stage._parser = stand_ins["parser"]
    face = np.random.default_rng(0).random((STAND_IN_FACE, STAND_IN_FACE, 3), dtype=np.float32)
    expected = stage._parsing_mask(face)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mask = stage._parsing_mask(face)  # was: labels from bf16 scores, which round differently
    assert mask.shape == (STAND_IN_FACE, STAND_IN_FACE)
    np.testing.assert_array_equal(mask, expected)
