"""Alignment to the FFHQ template and paste-back put pixels where they belong."""

from __future__ import annotations

import math

import numpy as np
import pytest

from remaster_gfpgan import geometry
from remaster_gfpgan.detectors import landmarks_from_eyes
from remaster_gfpgan.geometry import FACE_SIZE, FFHQ_TEMPLATE


def similarity(points: np.ndarray, *, angle_deg: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    a = math.radians(angle_deg)
    rotation = scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return (points @ rotation.T + np.array(shift)).astype(np.float32)


def dot(shape: tuple[int, int], centre: tuple[float, float], radius: float = 2.5) -> np.ndarray:
    """An image with a small bright Gaussian dot at ``centre`` (x, y)."""
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
    blob = np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * radius**2)).astype(np.float32)
    return np.repeat(blob[..., None], 3, axis=2)


def peak(image: np.ndarray) -> tuple[float, float]:
    """Intensity-weighted centre (x, y) of the brightest blob."""
    # above the gray GFPGAN fills outside the image with (0.52), below the dot's peak
    weights = image[..., 0] * (image[..., 0] > 0.6 * image[..., 0].max())
    ys, xs = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    return float((xs * weights).sum() / weights.sum()), float((ys * weights).sum() / weights.sum())


def test_the_template_aligns_to_itself():
    np.testing.assert_allclose(geometry.alignment_matrix(FFHQ_TEMPLATE), [[1, 0, 0], [0, 1, 0]], atol=1e-3)


FACES = [  # (angle, scale from template to image, top-left shift)
    (0.0, 0.25, (40.0, 30.0)),
    (12.0, 0.4, (90.0, 20.0)),
    (-25.0, 0.6, (10.0, 150.0)),
]


@pytest.mark.parametrize("angle, scale, shift", FACES)
def test_a_marker_on_the_nose_lands_on_the_template_nose(angle, scale, shift):
    landmarks = similarity(FFHQ_TEMPLATE, angle_deg=angle, scale=scale, shift=shift)
    image = dot((360, 420), tuple(landmarks[2]), radius=2.0)
    crop = geometry.crop_face(image, geometry.alignment_matrix(landmarks))
    assert crop.shape == (FACE_SIZE, FACE_SIZE, 3)
    np.testing.assert_allclose(peak(crop), FFHQ_TEMPLATE[2], atol=1.0)


@pytest.mark.parametrize("out_scale", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("angle, scale, shift", FACES)
def test_a_marker_pasted_back_lands_where_the_face_was(angle, scale, shift, out_scale):
    landmarks = similarity(FFHQ_TEMPLATE, angle_deg=angle, scale=scale, shift=shift)
    matrix = geometry.alignment_matrix(landmarks)
    face = dot((FACE_SIZE, FACE_SIZE), tuple(FFHQ_TEMPLATE[2]), radius=8.0)
    canvas = np.zeros((round(360 * out_scale), round(420 * out_scale), 3), np.float32)
    geometry.paste_face(canvas, face, geometry.inverse_matrix(matrix, out_scale), geometry.square_mask(),
                        weight=1.0, feather=True)
    # pixel centres: input x lands on out_scale * x + (out_scale - 1) / 2
    expected = landmarks[2] * out_scale + (out_scale - 1) / 2
    np.testing.assert_allclose(peak(canvas), expected, atol=0.5)


@pytest.mark.parametrize("out_scale", [1.0, 2.0])
def test_a_network_with_smaller_faces_gets_the_template_scaled_to_its_size(out_scale):
    # As facexlib's FaceRestoreHelper(face_size=...): the 512 px template times size / 512.
    size = 64
    np.testing.assert_allclose(geometry.template(size), FFHQ_TEMPLATE / 8)
    landmarks = similarity(FFHQ_TEMPLATE, angle_deg=12.0, scale=0.125, shift=(40.0, 30.0))
    matrix = geometry.alignment_matrix(landmarks, size)
    crop = geometry.crop_face(dot((160, 180), tuple(landmarks[2]), radius=2.0), matrix, size)
    assert crop.shape == (size, size, 3)
    np.testing.assert_allclose(peak(crop), geometry.template(size)[2], atol=0.5)

    face = dot((size, size), tuple(geometry.template(size)[2]), radius=2.0)
    canvas = np.zeros((round(160 * out_scale), round(180 * out_scale), 3), np.float32)
    geometry.paste_face(canvas, face, geometry.inverse_matrix(matrix, out_scale), geometry.square_mask(size),
                        weight=1.0, feather=True)
    np.testing.assert_allclose(peak(canvas), landmarks[2] * out_scale + (out_scale - 1) / 2, atol=0.5)


def test_crop_then_paste_back_reproduces_the_face_and_leaves_the_rest_alone():
    rng = np.random.default_rng(0)
    image = rng.random((300, 300, 3), dtype=np.float32)
    image = np.asarray(__import__("cv2").GaussianBlur(image, (0, 0), 3))  # smooth: resampling is near-lossless
    landmarks = similarity(FFHQ_TEMPLATE, angle_deg=8.0, scale=0.35, shift=(60.0, 50.0))
    matrix = geometry.alignment_matrix(landmarks)
    canvas = image.copy()
    geometry.paste_face(canvas, geometry.crop_face(image, matrix), geometry.inverse_matrix(matrix, 1.0),
                        geometry.square_mask(), weight=1.0, feather=True)
    centre = landmarks.mean(axis=0).astype(int)
    core = (slice(centre[1] - 30, centre[1] + 30), slice(centre[0] - 30, centre[0] + 30))
    assert np.abs(canvas[core] - image[core]).max() < 0.02
    far = np.zeros(image.shape[:2], bool)
    far[:, 280:] = True  # the face square spans x < ~245 here
    assert np.array_equal(canvas[far], image[far])


def test_weight_zero_changes_nothing():
    image = np.random.default_rng(1).random((200, 200, 3), dtype=np.float32)
    landmarks = similarity(FFHQ_TEMPLATE, angle_deg=0, scale=0.3, shift=(20, 20))
    canvas = image.copy()
    geometry.paste_face(canvas, np.ones((FACE_SIZE, FACE_SIZE, 3), np.float32),
                        geometry.inverse_matrix(geometry.alignment_matrix(landmarks), 1.0),
                        geometry.square_mask(), weight=0.0, feather=True)
    assert np.array_equal(canvas, image)


def test_landmarks_from_the_template_eyes_are_the_template():
    np.testing.assert_allclose(landmarks_from_eyes(FFHQ_TEMPLATE[0], FFHQ_TEMPLATE[1]), FFHQ_TEMPLATE, atol=1e-3)


def test_landmarks_from_eyes_follow_a_rotated_face():
    moved = similarity(FFHQ_TEMPLATE, angle_deg=20, scale=0.5, shift=(100, 80))
    np.testing.assert_allclose(landmarks_from_eyes(moved[0], moved[1]), moved, atol=1e-3)


def test_the_parsing_mask_keeps_the_face_and_drops_the_background():
    labels = np.zeros((FACE_SIZE, FACE_SIZE), np.int64)
    labels[128:384, 128:384] = 1  # skin
    mask = geometry.parsing_to_mask(labels)
    assert mask[256, 256] > 0.95 and mask[20, 20] < 0.01 and mask[:10].max() == 0
