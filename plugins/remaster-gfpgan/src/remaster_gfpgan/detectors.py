"""Face detectors that give a box and five landmarks per face.

``haar`` needs no downloaded weights: OpenCV's Haar cascades (shipped inside
opencv-python-headless) find the face box and the eyes; the nose and mouth are
placed where the FFHQ template puts them relative to the eyes. ``retinaface``
is facexlib's RetinaFace, the detector GFPGAN uses, with real landmarks.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch

from remaster import StageError

from .geometry import FFHQ_TEMPLATE, Face


class FaceDetector(Protocol):
    """Finds faces in an ``(H, W, 3)`` float32 RGB image in [0, 1]."""

    name: str

    def detect(self, image: np.ndarray, *, min_size: float) -> list[Face]:
        """Faces whose box is at least ``min_size`` pixels on its shorter side, best first."""
        ...


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


class HaarDetector:
    """OpenCV's frontal-face and eye cascades (Viola–Jones), no weights to download.

    Frontal, upright faces only; landmarks are estimated from the eyes (or from
    the box when the eyes are not found), so alignment is rougher than with
    RetinaFace.
    """

    name = "haar"

    #: Eye centres relative to the frontal-face cascade's box (x, y as fractions of its size),
    #: used when the eye cascade finds fewer than two eyes. Measured on skimage's astronaut
    #: (eyes at 0.26/0.74 × 0.36/0.40 of the box) and rounded.
    EYES_IN_BOX = ((0.30, 0.38), (0.70, 0.38))

    def __init__(self) -> None:
        folder = Path(cv2.data.haarcascades)
        self._faces = cv2.CascadeClassifier(str(folder / "haarcascade_frontalface_default.xml"))
        self._eyes = cv2.CascadeClassifier(str(folder / "haarcascade_eye.xml"))
        if self._faces.empty() or self._eyes.empty():
            raise StageError(f"OpenCV's Haar cascade files are missing from {folder}", path="gfpgan",
                             hint="reinstall opencv-python-headless 4.x (OpenCV 5 no longer ships them)")

    def detect(self, image: np.ndarray, *, min_size: float) -> list[Face]:
        gray = cv2.cvtColor(_to_uint8(image), cv2.COLOR_RGB2GRAY)
        gray = cv2.equalizeHist(gray)
        side = max(int(min_size), 20)
        found = self._faces.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(side, side))
        faces = []
        for x, y, w, h in sorted((tuple(map(int, f)) for f in found), key=lambda f: -f[2] * f[3]):
            eyes = self._find_eyes(gray, x, y, w, h)
            faces.append(Face(box=(x, y, x + w, y + h), landmarks=landmarks_from_eyes(*eyes)))
        return faces

    def _find_eyes(self, gray: np.ndarray, x: int, y: int, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
        upper = gray[y:y + int(h * 0.6), x:x + w]
        smallest = max(int(w * 0.12), 5)
        candidates = self._eyes.detectMultiScale(upper, scaleFactor=1.1, minNeighbors=3,
                                                 minSize=(smallest, smallest), maxSize=(w // 2, w // 2))
        centres = [(ex + ew / 2, ey + eh / 2) for ex, ey, ew, eh in candidates]
        left = [c for c in centres if c[0] < w / 2]
        right = [c for c in centres if c[0] >= w / 2]
        if left and right:
            # The largest-area pair would prefer eyebrows+eye merges; the highest pair near the box's
            # eye line is what the cascade most often gets right.
            line = self.EYES_IN_BOX[0][1] * h
            pick = lambda group: min(group, key=lambda c: abs(c[1] - line))  # noqa: E731
            (lx, ly), (rx, ry) = pick(left), pick(right)
            return np.array([x + lx, y + ly]), np.array([x + rx, y + ry])
        (lx, ly), (rx, ry) = self.EYES_IN_BOX
        return np.array([x + lx * w, y + ly * h]), np.array([x + rx * w, y + ry * h])


def landmarks_from_eyes(left_eye: np.ndarray, right_eye: np.ndarray) -> np.ndarray:
    """Five landmarks from two eye centres: the template's nose and mouth moved by the eyes' similarity transform."""
    template_left, template_right = FFHQ_TEMPLATE[0].astype(np.float64), FFHQ_TEMPLATE[1].astype(np.float64)
    source = complex(*(template_right - template_left))
    target = complex(*(np.asarray(right_eye, np.float64) - np.asarray(left_eye, np.float64)))
    rotation_scale = target / source  # a similarity transform as one complex factor
    points = []
    for point in FFHQ_TEMPLATE.astype(np.float64):
        moved = complex(*(point - template_left)) * rotation_scale
        points.append((left_eye[0] + moved.real, left_eye[1] + moved.imag))
    return np.array(points, np.float32)


class RetinaFaceDetector:
    """facexlib's RetinaFace with weights from the weights manager (passed by path, never downloaded by facexlib)."""

    def __init__(self, weights: Path, *, network: str, device: torch.device, threshold: float = 0.97):
        try:
            from facexlib.detection.retinaface import RetinaFace
        except ImportError:
            raise StageError("the RetinaFace detector needs facexlib, which is not installed", path="gfpgan",
                             hint="run 'pip install --no-deps facexlib==0.3.0', or use detector='haar'") from None
        from remaster.weights import load_state_dict

        self.name = "retinaface" if network == "resnet50" else "retinaface-mobile"
        self._threshold = threshold
        self._device = device
        with warnings.catch_warnings():  # facexlib builds ResNet-50 with torchvision's deprecated pretrained=False
            warnings.simplefilter("ignore", UserWarning)
            self._model = RetinaFace(network_name=network, half=False, device=device)
        state = {key.removeprefix("module."): value for key, value in load_state_dict(weights).items()}
        try:
            self._model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise StageError(f"does not hold RetinaFace {network} weights ({str(exc).splitlines()[0]})",
                             path=weights) from None
        self._model.eval().requires_grad_(False).to(device)

    def detect(self, image: np.ndarray, *, min_size: float) -> list[Face]:
        bgr = np.ascontiguousarray(image[..., ::-1] * 255.0, dtype=np.float32)
        # fp32 even in a bf16 run (the pipeline calls the stage under autocast): facexlib turns the network's
        # outputs into numpy, which has no bfloat16, and only the restorer gains from bf16.
        with torch.inference_mode(), torch.autocast(self._device.type, enabled=False):
            rows = self._model.detect_faces(bgr, self._threshold)
        faces = []
        for row in rows:
            landmarks = np.asarray(row[5:15], np.float32).reshape(5, 2)
            face = Face(box=tuple(float(v) for v in row[:4]), landmarks=landmarks, score=float(row[4]))
            if face.size >= min_size:
                faces.append(face)
        return faces
