"""The offline Haar detector on a real photo, and RetinaFace loaded through the weights manager."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from remaster import StageError
from remaster_gfpgan.detectors import HaarDetector, RetinaFaceDetector


def as_float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / 255.0


def test_haar_finds_the_astronauts_face_with_landmarks_inside_it(astronaut):
    faces = HaarDetector().detect(as_float(astronaut), min_size=16)
    assert len(faces) == 1
    face = faces[0]
    x0, y0, x1, y1 = face.box
    # Eileen Collins' face in skimage's astronaut spans roughly x 175-275, y 60-165.
    assert 150 < x0 < 200 and 250 < x1 < 300 and 40 < y0 < 90 and 140 < y1 < 190
    points = face.landmarks
    assert ((points[:, 0] > x0) & (points[:, 0] < x1) & (points[:, 1] > y0) & (points[:, 1] < y1)).all()
    left_eye, right_eye, nose, mouth_left, mouth_right = points
    assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])


def test_haar_finds_no_face_in_a_landscape_texture():
    skimage_data = pytest.importorskip("skimage.data")
    grass = skimage_data.grass()
    assert HaarDetector().detect(as_float(np.repeat(grass[..., None], 3, axis=2)), min_size=16) == []


def test_haar_respects_min_face_size(astronaut):
    assert HaarDetector().detect(as_float(astronaut), min_size=150) == []


def test_retinaface_loads_weights_by_path_and_strips_module_prefixes(tmp_path):
    pytest.importorskip("facexlib", reason="facexlib is installed by make install (requirements-nodeps.txt)")
    from facexlib.detection.retinaface import RetinaFace

    torch.manual_seed(0)
    state = {f"module.{k}": v for k, v in RetinaFace("mobile0.25", device=torch.device("cpu")).state_dict().items()}
    path = tmp_path / "detection_mobilenet0.25_Final.pth"
    torch.save(state, path)
    detector = RetinaFaceDetector(path, network="mobile0.25", device=torch.device("cpu"))
    # Random weights find random "faces"; what matters is that detection runs and gives well-formed results.
    faces = detector.detect(np.full((64, 64, 3), 0.5, np.float32), min_size=1)
    assert all(f.landmarks.shape == (5, 2) for f in faces)


def test_retinaface_refuses_weights_of_another_network(tmp_path):
    pytest.importorskip("facexlib", reason="facexlib is installed by make install (requirements-nodeps.txt)")
    path = tmp_path / "detection_Resnet50_Final.pth"
    torch.save({"conv.weight": torch.zeros(1, 1, 1, 1)}, path)
    with pytest.raises(StageError, match="does not hold RetinaFace"):
        RetinaFaceDetector(path, network="resnet50", device=torch.device("cpu"))
