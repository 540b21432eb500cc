"""Issue 22: faces followed across frames on synthetic detections: smoothed, with hysteresis (GFPGAN#465)."""

from __future__ import annotations

import numpy as np
import pytest

from remaster_gfpgan.detectors import landmarks_from_eyes
from remaster_gfpgan.geometry import Face
from remaster_gfpgan.smoothing import OneEuroFilter, cutoff_for
from remaster_gfpgan.tracking import FaceTracker, TrackSettings, box_iou


def face_at(cx: float, cy: float, size: float = 100.0, jitter: float = 0.0,
            rng: np.random.Generator | None = None) -> Face:
    """A face of ``size`` px centred on (cx, cy), its landmarks and box moved by Gaussian ``jitter`` (px)."""
    landmarks = landmarks_from_eyes(np.array([cx - 0.2 * size, cy - 0.1 * size]),
                                    np.array([cx + 0.2 * size, cy - 0.1 * size])).astype(np.float64)
    box = np.array([cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2])
    if jitter:
        assert rng is not None
        landmarks += rng.normal(0.0, jitter, landmarks.shape)
        box += rng.normal(0.0, jitter, 4)
    corners = (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
    return Face(box=corners, landmarks=landmarks.astype(np.float32))


def run(tracker: FaceTracker, frames: list[list[Face]]) -> list[list[Face]]:
    return [tracker.update(faces, frame) for frame, faces in enumerate(frames)]


def test_jittered_landmarks_jitter_much_less_once_smoothed():
    rng = np.random.default_rng(0)
    raw = [face_at(200, 150, jitter=1.5, rng=rng) for _ in range(120)]
    smoothed = run(FaceTracker(), [[face] for face in raw])
    assert all(len(faces) == 1 for faces in smoothed[1:])
    still = face_at(200, 150).landmarks
    raw_points = np.array([face.landmarks for face in raw[20:]])
    smooth_points = np.array([faces[0].landmarks for faces in smoothed[20:]])
    # frame-to-frame movement (what shows as shimmer) and the distance from the true place both drop
    assert np.abs(np.diff(smooth_points, axis=0)).mean() < 0.4 * np.abs(np.diff(raw_points, axis=0)).mean()
    assert np.sqrt(((smooth_points - still) ** 2).mean()) < 0.6 * np.sqrt(((raw_points - still) ** 2).mean())


def test_a_moving_face_is_followed_with_little_lag():
    frames = [[face_at(100 + 3 * f, 150)] for f in range(40)]  # 3 px a frame, a 100 px face
    last = run(FaceTracker(), frames)[-1][0]
    assert abs(last.centre[0] - frames[-1][0].centre[0]) < 3.0
    assert np.abs(last.landmarks - frames[-1][0].landmarks).max() < 3.0


def test_a_face_appears_after_appear_frames_and_a_one_frame_miss_keeps_it_in_place():
    face = face_at(200, 150)
    out = run(FaceTracker(TrackSettings(appear=2, vanish=3)), [[face], [face], [face], [], [face]])
    assert [len(faces) for faces in out] == [0, 1, 1, 1, 1]
    assert np.array_equal(out[3][0].landmarks, out[2][0].landmarks)  # the missed frame keeps its last place


def test_a_one_frame_false_detection_is_never_restored():
    face, false = face_at(200, 150), face_at(600, 400, size=40)
    out = run(FaceTracker(), [[face], [face], [face, false], [face], [face]])
    assert [len(faces) for faces in out] == [0, 1, 1, 1, 1]
    assert all(abs(faces[0].centre[0] - 200) < 1 for faces in out[1:])


def test_a_face_that_leaves_goes_after_vanish_frames():
    face = face_at(200, 150)
    out = run(FaceTracker(TrackSettings(appear=2, vanish=3)), [[face]] * 4 + [[]] * 5)
    assert [len(faces) for faces in out] == [0, 1, 1, 1, 1, 1, 1, 0, 0]
    tracker = FaceTracker(TrackSettings(appear=1, vanish=0))
    assert [len(faces) for faces in run(tracker, [[face], [], [face]])] == [1, 0, 1]


def test_two_faces_keep_their_own_tracks_in_any_detection_order():
    left, right = face_at(100, 150), face_at(400, 150)
    out = run(FaceTracker(), [[left, right], [right, left], [left, right], [right, left]])
    for faces in out[1:]:
        assert [round(face.centre[0]) for face in faces] == [100, 400]  # the order they appeared in


def test_the_same_frame_again_replaces_its_update():
    face = face_at(200, 150)
    tracker = FaceTracker(TrackSettings(appear=2))
    assert tracker.update([face], 0) == []
    assert tracker.update([face], 0) == []  # a retry of frame 0 is not a second frame
    assert len(tracker.update([face], 1)) == 1


def test_no_smoothing_gives_the_detections():
    rng = np.random.default_rng(1)
    raw = [face_at(200, 150, jitter=2.0, rng=rng) for _ in range(5)]
    out = run(FaceTracker(TrackSettings(appear=1, smoothing=0.0)), [[face] for face in raw])
    assert all(np.allclose(faces[0].landmarks, face.landmarks) for faces, face in zip(out, raw))


def test_box_iou_and_filter_helpers():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert cutoff_for(1.0) == float("inf")
    still = OneEuroFilter(cutoff_for(0.5), beta=0.0)
    still(np.zeros((1, 2)), 10.0)
    assert still(np.ones((1, 2)), 10.0) == pytest.approx(np.full((1, 2), 0.5))  # half of the new value


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError):
        TrackSettings(appear=0)
    with pytest.raises(ValueError):
        TrackSettings(smoothing=1.0)
