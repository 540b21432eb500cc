"""Face alignment to the FFHQ template and paste-back, on float RGB arrays.

Everything here works on ``(H, W, 3)`` float32 arrays in [0, 1], so 8-bit,
16-bit and gray inputs go through the same code without a lossy round trip.
Coordinates are pixel centres: ``(0, 0)`` is the centre of the top-left pixel,
as in OpenCV's ``warpAffine``.

Aligned faces are :data:`FACE_SIZE` (512) pixels square, GFPGAN's size, unless
a ``size`` is given: a face network with another fixed input size gets the same
template scaled to its size (as facexlib's ``FaceRestoreHelper`` does).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: The side of an aligned face for the official GFPGAN and RestoreFormer networks and for ParseNet.
FACE_SIZE = 512

#: The five FFHQ landmarks of a 512×512 aligned face (eyes, nose tip, mouth
#: corners; image-left first), the template GFPGAN was trained on.
FFHQ_TEMPLATE = np.array(
    [[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935],
     [201.26117, 371.41043], [313.08905, 371.15118]], dtype=np.float32)

#: GFPGAN fills the outside of the image with this gray when a face is near an edge (RGB).
BORDER_GRAY = (132 / 255, 133 / 255, 135 / 255)


@dataclass(frozen=True)
class Face:
    """One detected face.

    Attributes:
        box: ``(x0, y0, x1, y1)`` in input pixels.
        landmarks: ``(5, 2)`` float array in the order of :data:`FFHQ_TEMPLATE`.
        score: Detector confidence (1.0 where the detector gives none).
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float = 1.0

    @property
    def size(self) -> float:
        """The shorter side of the box, in pixels."""
        return min(self.box[2] - self.box[0], self.box[3] - self.box[1])

    @property
    def centre(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2


def template(size: int = FACE_SIZE) -> np.ndarray:
    """The five template landmarks of a ``size``×``size`` aligned face (:data:`FFHQ_TEMPLATE` at 512)."""
    if size == FACE_SIZE:
        return FFHQ_TEMPLATE
    return (FFHQ_TEMPLATE * np.float32(size / FACE_SIZE)).astype(np.float32)


def alignment_matrix(landmarks: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """The similarity transform (2×3) taking ``landmarks`` onto the template of a ``size`` px aligned face.

    Least median of squares, as GFPGAN does, so one misplaced landmark does not
    tilt the whole face.
    """
    points, target = np.asarray(landmarks, np.float32), template(size)
    matrix, _ = cv2.estimateAffinePartial2D(points, target, method=cv2.LMEDS)
    if matrix is None:  # degenerate landmarks (all on one point): a plain least-squares fit never fails
        matrix, _ = cv2.estimateAffinePartial2D(points, target, method=0)
    return matrix.astype(np.float64)


def crop_face(image: np.ndarray, matrix: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """Warp ``image`` with ``matrix`` into a ``size``×``size`` aligned face."""
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=BORDER_GRAY)


def inverse_matrix(matrix: np.ndarray, scale: float) -> np.ndarray:
    """The transform from aligned-face pixels to output pixels when the output is ``scale`` × the input.

    An input pixel centre ``x`` lands on the output pixel centre ``scale * x + (scale - 1) / 2``.
    """
    inverse = cv2.invertAffineTransform(matrix) * scale
    inverse[:, 2] += (scale - 1) / 2
    return inverse


def square_mask(size: int = FACE_SIZE) -> np.ndarray:
    """A mask for pasting the whole aligned face back (feathered after the warp by :func:`paste_face`)."""
    return np.ones((size, size), np.float32)


def paste_face(canvas: np.ndarray, face: np.ndarray, inverse: np.ndarray, mask: np.ndarray, *,
               weight: float, feather: bool) -> None:
    """Blend an aligned ``face`` into ``canvas`` (in place) through ``inverse``.

    Only the face's bounding region of the canvas is touched; pixels where the
    warped mask is 0 keep their exact values.

    Args:
        canvas: ``(H, W, 3)`` float32 output image.
        face: ``(S, S, 3)`` restored face (S = 512 for the official networks).
        inverse: Aligned-face → canvas transform (:func:`inverse_matrix`).
        mask: ``(S, S)`` float mask in [0, 1] (face square or parsing mask).
        weight: 1 pastes the restored face fully; 0.5 half-way between it and the canvas.
        feather: Erode and blur the warped mask's edge (for the square mask).
    """
    height, width = canvas.shape[:2]
    last = face.shape[0] - 1
    corners = np.array([[0, 0, 1], [last, 0, 1], [0, last, 1], [last, last, 1]], np.float64) @ inverse.T
    x0, y0 = np.floor(corners.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + 3
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if x1 <= x0 or y1 <= y0:
        return
    face, mask, inverse = _shrink_first(face, mask, inverse)
    local = inverse.copy()
    local[:, 2] -= (x0, y0)
    size = (x1 - x0, y1 - y0)
    warped_face = cv2.warpAffine(face, local, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT)
    warped_mask = cv2.warpAffine(mask, local, size, flags=cv2.INTER_LINEAR if feather else cv2.INTER_CUBIC,
                                 borderMode=cv2.BORDER_CONSTANT)
    if feather:
        warped_mask = _feather(warped_mask, scale=float(np.sqrt(abs(np.linalg.det(inverse[:, :2])))))
    alpha = np.clip(warped_mask, 0.0, 1.0)[..., None] * np.float32(weight)
    region = canvas[y0:y1, x0:x1]
    region += alpha * (warped_face - region)


def _shrink_first(face: np.ndarray, mask: np.ndarray, inverse: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Area-downsample a face that will land smaller than its own size, so the bilinear warp does not alias.

    Returns the smaller face and mask and the transform from their pixels to the canvas.
    """
    scale = float(np.sqrt(abs(np.linalg.det(inverse[:, :2]))))
    if scale >= 0.75:
        return face, mask, inverse
    side = max(8, round(face.shape[0] * scale))
    ratio = side / face.shape[0]
    face = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(mask, (side, side), interpolation=cv2.INTER_AREA)
    # small pixel centre u' sits on large pixel (u' + 0.5) / ratio - 0.5
    to_large = np.array([[1 / ratio, 0, 0.5 / ratio - 0.5], [0, 1 / ratio, 0.5 / ratio - 0.5], [0, 0, 1]])
    return face, mask, inverse @ to_large


def _feather(mask: np.ndarray, *, scale: float) -> np.ndarray:
    # As GFPGAN: erode away the interpolated rim, then a soft edge about 1/20 of the face's size wide.
    rim = max(2, int(round(2 * scale)))
    mask = cv2.erode(mask, np.ones((rim, rim), np.uint8))
    edge = int(np.sqrt(float(mask.sum()))) // 20
    if edge >= 1:
        mask = cv2.erode(mask, np.ones((2 * edge, 2 * edge), np.uint8))
        mask = cv2.GaussianBlur(mask, (2 * edge + 1, 2 * edge + 1), 0)
    return mask


def parsing_to_mask(labels: np.ndarray) -> np.ndarray:
    """A soft paste-back mask from a 512×512 face-parsing label map (19 classes, CelebAMask-HQ order).

    The classes GFPGAN's paste-back colour map leaves out (background and the
    regions around the face) are 0, so a restored face never overwrites what is
    behind or below it.
    """
    keep = np.ones(19, np.float32)
    keep[[0, 14, 16, 17, 18]] = 0.0
    mask = keep[np.clip(labels, 0, 18)]
    mask = cv2.GaussianBlur(mask, (101, 101), 11)
    mask = cv2.GaussianBlur(mask, (101, 101), 11)
    border = 10  # the warp's interpolated rim
    mask[:border], mask[-border:], mask[:, :border], mask[:, -border:] = 0, 0, 0, 0
    return mask
