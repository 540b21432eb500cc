"""Faces followed across the frames of a video: matched frame to frame, smoothed, with hysteresis.

A face detector run on each frame on its own gives landmarks that jitter by a pixel or two and faces that
come and go for a frame near its threshold; GFPGAN's aligned crop follows the landmarks, so the restored
face shimmers and blinks in and out at its edge (GFPGAN issue 465). :class:`FaceTracker` turns each frame's
detections into the faces to restore:

- **matching**: each detection goes to the nearest followed face whose box it overlaps (IoU at least
  ``min_iou``) or whose centre is within half a face of its own; what is left starts a new track;
- **smoothing**: a track's landmarks and box go through a One-Euro filter (:mod:`.smoothing`), steady
  while the face is still and quick when it moves;
- **hysteresis**: a face is restored once it has been found in ``appear`` frames in a row, and stays for
  ``vanish`` frames in which it is not found (at its last smoothed place) before it is let go; a detection
  that shows up for fewer than ``appear`` frames is never restored.

Plain numpy, no torch: the tracker knows nothing of stages or pipelines. The ``gfpgan`` stage keeps one
per video in the run's :class:`~remaster.FrameSequence`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

from .geometry import Face
from .smoothing import OneEuroFilter, cutoff_for

__all__ = ["TrackSettings", "FaceTracker", "box_iou"]


@dataclass(frozen=True)
class TrackSettings:
    """How faces are followed across frames (the ``gfpgan`` stage's ``appear``, ``vanish`` and ``smoothing``).

    Attributes:
        appear: Frames in a row a face must be found in before it is restored (1: at once).
        vanish: Frames a restored face may go unfound and still be restored, at its last smoothed place
            (0: it goes with the first frame it is not found in).
        smoothing: How much of its previous place a still face keeps each frame, from 0 (none: the raw
            detections) to below 1; a moving face is followed faster (:attr:`follow`).
        follow: How quickly smoothing gives way to motion (the One-Euro filter's beta, per face size moved
            per frame).
        min_iou: The box overlap (intersection over union) that makes a detection the same face.
    """

    appear: int = 2
    vanish: int = 3
    smoothing: float = 0.7
    follow: float = 4.0
    min_iou: float = 0.3

    def __post_init__(self) -> None:
        if self.appear < 1 or self.vanish < 0 or not 0.0 <= self.smoothing < 1.0 or self.follow < 0:
            raise ValueError(f"invalid track settings: {self}")


def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes (0 when they do not overlap)."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class _Track:
    """One face followed across frames: its smoothed place and how often it was found or missed in a row."""

    landmarks: OneEuroFilter
    box: OneEuroFilter
    face: Face
    hits: int = 0
    misses: int = 0
    confirmed: bool = False
    found: bool = False  # in the frame being added

    def add(self, detection: Face) -> None:
        size = max(detection.size, 1.0)
        landmarks = self.landmarks(detection.landmarks, size)
        corners = self.box(np.asarray(detection.box, np.float64).reshape(2, 2), size)
        box = (float(corners[0, 0]), float(corners[0, 1]), float(corners[1, 0]), float(corners[1, 1]))
        self.face = Face(box=box, landmarks=landmarks.astype(np.float32), score=detection.score)
        self.hits, self.misses, self.found = self.hits + 1, 0, True


class FaceTracker:
    """Turns each frame's detected faces into the faces to restore, steady across frames.

    Call :meth:`update` once per frame, in order. Made per video (per segment) and never shared.

    Args:
        settings: Hysteresis and smoothing (:class:`TrackSettings`).
    """

    def __init__(self, settings: TrackSettings | None = None) -> None:
        self.settings = settings or TrackSettings()
        self._tracks: list[_Track] = []
        self._frame: int | None = None
        self._before: list[_Track] = []

    @property
    def tracks(self) -> int:
        """Faces followed now, restored or not yet."""
        return len(self._tracks)

    def update(self, detections: list[Face], frame: int | None = None) -> list[Face]:
        """Add one frame's detections; return the faces to restore in it, smoothed, in the order they appeared.

        Args:
            detections: The detector's faces in this frame.
            frame: The frame's number (:attr:`FrameSequence.frame`). The same number again (the frame run a
                second time, e.g. retried in another precision) replaces that frame's update rather than
                counting as a further frame.
        """
        if frame is not None and frame == self._frame:
            self._tracks = copy.deepcopy(self._before)
        else:
            self._before = copy.deepcopy(self._tracks)
        self._frame = frame
        for track, detection in self._match(detections):
            if track is None:
                track = self._new_track(detection)
            track.add(detection)
        settings, kept, restore = self.settings, [], []
        for track in self._tracks:
            if track.found:
                track.confirmed = track.confirmed or track.hits >= settings.appear
            else:
                track.hits, track.misses = 0, track.misses + 1
                if not track.confirmed or track.misses > settings.vanish:
                    continue  # never restored, or gone for longer than vanish: let go
            track.found = False
            kept.append(track)
            if track.confirmed:
                restore.append(track.face)
        self._tracks = kept
        return restore

    def _new_track(self, detection: Face) -> _Track:
        settings = self.settings
        cutoff = cutoff_for(1.0 - settings.smoothing)
        track = _Track(landmarks=OneEuroFilter(cutoff, settings.follow), box=OneEuroFilter(cutoff, settings.follow),
                       face=detection)
        self._tracks.append(track)
        return track

    def _match(self, detections: list[Face]) -> list[tuple[_Track | None, Face]]:
        """Each detection with its track (``None``: a new face), nearest pairs first, one detection per track."""
        pairs = []
        for t, track in enumerate(self._tracks):
            size = max(track.face.size, 1.0)
            for d, detection in enumerate(detections):
                distance = math.dist(track.face.centre, detection.centre) / size
                if box_iou(track.face.box, detection.box) >= self.settings.min_iou or distance <= 0.5:
                    pairs.append((distance, t, d))
        matched: dict[int, _Track | None] = {}
        taken: set[int] = set()
        for _, t, d in sorted(pairs):
            if t not in taken and d not in matched:
                taken.add(t)
                matched[d] = self._tracks[t]
        return [(matched.get(d), detection) for d, detection in enumerate(detections)]
