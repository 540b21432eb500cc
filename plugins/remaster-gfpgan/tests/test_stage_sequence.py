"""Issue 22: the gfpgan stage over the frames of a sequence follows faces across them; a still image is as before.

A scripted detector stands in for detection (it gives each call the next frame's faces) and the restorer is
conftest's GFPGANv1Clean for 64 px faces, with weights made in the test.
"""

from __future__ import annotations

import numpy as np
import pytest

from remaster import FrameSequence, Remasterer, io
from remaster.plugin.host import get_host
from remaster_gfpgan.geometry import FFHQ_TEMPLATE, Face
from remaster_gfpgan.stage import GFPGANStage
from remaster_gfpgan.tracking import FaceTracker

SIDE = 128


def face_at(shift: float) -> Face:
    """A 64 px face in the middle of the frame, moved right by ``shift`` px (landmarks as FFHQ places them)."""
    landmarks = FFHQ_TEMPLATE / 8 + np.float32(32 + shift)
    return Face(box=(32 + shift, 32.0, 96 + shift, 96.0), landmarks=landmarks.astype(np.float32))


class ScriptedDetector:
    """Gives each call the next entry of ``script`` (the faces of one frame)."""

    name = "scripted"

    def __init__(self, script: list[list[Face]]):
        self.script = list(script)

    def detect(self, image: np.ndarray, *, min_size: float) -> list[Face]:
        return self.script.pop(0)


class ScriptedStage(GFPGANStage):
    """The gfpgan stage with the tiny test-made restorer and a scripted detector; the rest is the stage's own."""

    def __init__(self, restorer, script: list[list[Face]], **params):
        spec = get_host().stages.get("gfpgan")
        super().__init__(**spec.resolve_params({"mask": "feather", **params}))
        self.spec = spec
        self._restorer = restorer
        self._script = script

    def _make_detector(self, device):
        return ScriptedDetector(self._script)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.random((SIDE, SIDE, 3), dtype=np.float32)
    return [np.clip(base + np.float32(0.01 * i), 0.0, 1.0) for i in range(5)]


def run_frames(stage: GFPGANStage, images: list[np.ndarray], sequence: FrameSequence | None):
    pipeline = Remasterer([stage], device="cpu", precision="fp32")
    return [pipeline.run_image(io.load(image), sequence=sequence) for image in images]


def test_faces_are_followed_across_the_frames_of_a_sequence(tiny_restorer, frames):
    jitter = [0.0, 1.5, -1.0, 0.0, 0.5]
    script = [[face_at(jitter[0])], [face_at(jitter[1])], [], [face_at(jitter[3])], [face_at(jitter[4])]]
    stage = ScriptedStage(tiny_restorer, script)  # appear=2, vanish=3
    sequence = FrameSequence("clip")
    results = run_frames(stage, frames, sequence)
    assert [r.meta.extras["faces_found"] for r in results] == [1, 1, 0, 1, 1]
    assert [r.meta.extras["faces"] for r in results] == [0, 1, 1, 1, 1]  # appears on its 2nd frame; kept when missed
    changed = [not np.array_equal(io.to_numpy(r), frame) for r, frame in zip(results, frames)]
    assert changed == [False, True, True, True, True]
    tracker = sequence.state(stage, FaceTracker)  # the stage's own, made on the first frame and kept
    assert isinstance(tracker, FaceTracker) and tracker.tracks == 1

    # frame 1 was restored at a smoothed place, not at the detection's 1.5 px jump
    still = ScriptedStage(tiny_restorer, [[face_at(jitter[1])]])
    [unsmoothed] = run_frames(still, frames[1:2], None)
    assert not np.array_equal(io.to_numpy(unsmoothed), io.to_numpy(results[1]))


def test_a_still_image_is_restored_as_before_and_keeps_no_state(tiny_restorer, frames):
    script = [[face_at(0.0)], [], [face_at(1.5)]]
    stage = ScriptedStage(tiny_restorer, script)
    results = run_frames(stage, frames[:3], None)
    assert [r.meta.extras["faces"] for r in results] == [1, 0, 1]  # no hysteresis: what is found is restored
    assert np.array_equal(io.to_numpy(results[1]), frames[1])
    # the third image is exactly what a fresh stage makes of it alone: nothing carried over from the first
    fresh = ScriptedStage(tiny_restorer, [[face_at(1.5)]])
    [alone] = run_frames(fresh, frames[2:3], None)
    assert np.array_equal(io.to_numpy(alone), io.to_numpy(results[2]))


def test_the_tracking_parameters_reach_the_tracker(tiny_restorer, frames):
    script = [[face_at(0.0)], [], [face_at(0.0)]]
    stage = ScriptedStage(tiny_restorer, script, appear=1, vanish=0, smoothing=0.0)
    results = run_frames(stage, frames[:3], FrameSequence())
    assert [r.meta.extras["faces"] for r in results] == [1, 0, 1]
    tracker = stage.face_tracker()
    assert (tracker.settings.appear, tracker.settings.vanish, tracker.settings.smoothing) == (1, 0, 0.0)
