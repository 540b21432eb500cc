"""The face weights' checks: each one accepts its own network and names what another file holds instead."""

from __future__ import annotations

import sys

import pytest
import torch

from remaster import WrongWeightsError
from remaster.cli import main
from remaster.plugin import import_reference
from remaster_gfpgan.catalogue import WEIGHTS

facexlib_retinaface = pytest.importorskip("facexlib.detection.retinaface",
                                          reason="facexlib is installed by make install (requirements-nodeps.txt)")


@pytest.fixture(scope="module")
def checks():
    return {spec.name: import_reference(spec.check) for spec in WEIGHTS}  # every reference resolves


@pytest.fixture(scope="module")
def mobile(tmp_path_factory):
    """Random RetinaFace MobileNet weights, saved as the official file is (with 'module.' prefixes)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("detectors") / "mobile0.25.pth"
    model = facexlib_retinaface.RetinaFace("mobile0.25", device=torch.device("cpu"))
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, path)
    return path


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    """A small network that is no RetinaFace: an ESRGAN upscaler."""
    from spandrel.architectures.ESRGAN import ESRGAN

    path = tmp_path_factory.mktemp("other") / "esrgan.pth"
    torch.save(ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4).state_dict(), path)
    return path


def test_the_face_networks_are_told_apart(checks, gfpgan_checkpoint):
    with pytest.raises(WrongWeightsError, match="holds a GFPGAN x1 network, expected RestoreFormer"):
        checks["restoreformer"](gfpgan_checkpoint)


def test_the_detectors_are_told_apart_with_and_without_facexlib(checks, mobile, other, monkeypatch):
    checks["retinaface-mobilenet0.25"](mobile)
    with pytest.raises(WrongWeightsError, match="does not hold RetinaFace resnet50 weights"):
        checks["retinaface-resnet50"](mobile)
    with pytest.raises(WrongWeightsError, match="does not hold RetinaFace mobile0.25 weights"):
        checks["retinaface-mobilenet0.25"](other)
    # Without facexlib the layout still tells the two backbones, and other networks, apart.
    monkeypatch.setitem(sys.modules, "facexlib.detection.retinaface", None)
    checks["retinaface-mobilenet0.25"](mobile)
    with pytest.raises(WrongWeightsError, match=r"does not hold RetinaFace resnet50 weights \(no body.layer1.\* "):
        checks["retinaface-resnet50"](mobile)
    with pytest.raises(WrongWeightsError, match=r"does not hold RetinaFace mobile0.25 weights \(no fpn.\* "):
        checks["retinaface-mobilenet0.25"](other)


def test_a_wrong_file_is_never_pinned_as_the_detector(tmp_path, private_cache, mobile, other, capsys):
    wrong = tmp_path / "detection_mobilenet0.25_Final.pth"  # the official name, another network's weights
    wrong.write_bytes(other.read_bytes())
    assert main(["weights", "import", str(wrong)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"remaster: error: {wrong}: is not weights 'retinaface-mobilenet0.25': does not hold "
                          "RetinaFace mobile0.25 weights") and err.count("\n") == 1
    assert not (private_cache / "weights" / "pins.json").exists()
    right = tmp_path / "right" / "detection_mobilenet0.25_Final.pth"
    right.parent.mkdir()
    right.write_bytes(mobile.read_bytes())
    assert main(["weights", "import", str(right)]) == 0
    assert main(["weights", "verify", "retinaface-mobilenet0.25"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "retinaface-mobilenet0.25  ok"
