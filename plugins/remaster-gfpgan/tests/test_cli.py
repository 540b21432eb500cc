"""`remaster upscale --face` and `remaster run "... | gfpgan"`, as a user runs them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from remaster.cli import main


def test_face_without_weights_stops_before_any_work_with_one_line(face_photo, tmp_path, private_cache, capsys):
    out = tmp_path / "out.png"
    assert main(["upscale", str(face_photo), "-o", str(out), "--face"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("remaster: error:") and "remaster weights fetch gfpgan-1.4" in err[-1]
    assert "Traceback" not in "\n".join(err) and not out.exists()
    # the default background upscaler was never prepared: its weights were not even produced
    assert not any(private_cache.rglob("realesrgan-x4plus*"))


@pytest.mark.slow
def test_imported_checkpoint_runs_offline_with_haar_and_reports_one_face(
        face_photo, gfpgan_checkpoint, tmp_path, private_cache, accept_as_official, capsys):
    accept_as_official("gfpgan-1.4", gfpgan_checkpoint)
    assert main(["weights", "import", str(gfpgan_checkpoint)]) == 0
    capsys.readouterr()
    out = tmp_path / "out.png"
    code = main(["upscale", str(face_photo), "-o", str(out), "--face", "--model", "lanczos", "--scale", "2",
                 "--json", "--report", str(tmp_path / "report.json")])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    item = summary["items"][0]
    assert (item["faces"], item["faces_found"], item["face_detector"]) == (1, 1, "haar")
    assert PILImage.open(out).size == (512, 512)
    assert json.loads((tmp_path / "report.json").read_text())["items"][0]["faces"] == 1


@pytest.mark.parametrize("precision", ["fp32", "bf16"])  # bf16 failed: TypeError: Got unsupported ScalarType BFloat16
def test_retinaface_is_used_when_its_weights_are_in_the_cache(precision, face_photo, gfpgan_checkpoint, tmp_path,
                                                             private_cache, capsys):
    pytest.importorskip("facexlib", reason="facexlib is installed by make install (requirements-nodeps.txt)")
    from facexlib.detection.retinaface import RetinaFace

    torch.manual_seed(0)
    detector = tmp_path / "detection_mobilenet0.25_Final.pth"
    torch.save(RetinaFace("mobile0.25", device=torch.device("cpu")).state_dict(), detector)
    assert main(["weights", "import", str(detector)]) == 0  # recognised by its official file name
    capsys.readouterr()
    # weight 0: random RetinaFace weights "find" arbitrary faces; restoring them all would only cost time
    code = main(["run", f"gfpgan(model={str(gfpgan_checkpoint)!r}, weight=0.0)", str(face_photo),
                 "-o", str(tmp_path / "out.png"), "--json", "--precision", precision])
    assert code == 0
    item = json.loads(capsys.readouterr().out)["items"][0]
    assert item["face_detector"] == "retinaface-mobile"
    assert np.array_equal(np.asarray(PILImage.open(tmp_path / "out.png")), np.asarray(PILImage.open(face_photo)))


@pytest.mark.slow
def test_run_pipeline_with_a_face_stage_after_an_upscaler(face_photo, gfpgan_checkpoint, tmp_path, capsys):
    out = tmp_path / "out.png"
    code = main(["run", f"lanczos(scale=2) | gfpgan(weight=0.5, model={str(gfpgan_checkpoint)!r}, detector='haar')",
                 str(face_photo), "-o", str(out)])
    assert code == 0
    err = capsys.readouterr().err
    assert "1 of 1 face(s) restored (haar)" in err
    assert PILImage.open(out).size == (512, 512)


def test_no_face_is_said_in_the_log(tmp_path, gfpgan_checkpoint, capsys):
    flat = tmp_path / "flat.png"
    PILImage.fromarray(np.full((64, 80, 3), 200, np.uint8)).save(flat)
    assert main(["run", f"gfpgan(model={str(gfpgan_checkpoint)!r}, detector='haar')", str(flat),
                 "-o", str(tmp_path / "out.png")]) == 0
    assert "no face found" in capsys.readouterr().err


def test_face_model_takes_a_version_name_or_a_file(face_photo, tmp_path, capsys):
    code = main(["upscale", str(face_photo), "-o", str(tmp_path / "o.png"), "--face-model", "2.0"])
    assert code == 2
    assert "version" in capsys.readouterr().err


def test_background_upscaler_may_be_a_model_file_with_spaces_in_its_path(face_photo, gfpgan_checkpoint, tmp_path):
    from spandrel.architectures.ESRGAN import ESRGAN as RRDBNet

    from remaster.weights import save_state_dict

    torch.manual_seed(0)
    model = tmp_path / "my models" / "tiny x4 (v2).safetensors"
    model.parent.mkdir()
    save_state_dict(RRDBNet(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4).state_dict(), model)
    out = tmp_path / "out.png"
    code = main(["upscale", str(face_photo), "-o", str(out), "--model", str(model), "--scale", "2",
                 "--face-model", str(gfpgan_checkpoint), "--face-weight", "0", "-q"])
    assert code == 0 and PILImage.open(out).size == (512, 512)
