"""The ``gfpgan`` stage: detect → align → restore → paste back → blend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from remaster import (
    Image,
    Meta,
    PrepareContext,
    RunContext,
    Stage,
    StageCall,
    StageError,
    SubPipeline,
    UsageError,
    autocast_context,
    parse_stage,
    resolve_spec,
)
from remaster.plugin import PluginHost
from remaster.weights import WeightsManager, get_manager, load_network, load_state_dict

from . import geometry
from .catalogue import PARSING, RESTORERS, RETINAFACE
from .detectors import FaceDetector, HaarDetector, RetinaFaceDetector
from .geometry import FACE_SIZE, Face
from .tracking import FaceTracker, TrackSettings


def load_restorer(path: Path) -> Any:
    """A GFPGANv1Clean or RestoreFormer network from a checkpoint (:func:`remaster.weights.load_network`).

    Raises:
        StageError: the file holds another kind of network.
    """
    descriptor = load_network(path, hint="give a GFPGAN v1.3/v1.4 or RestoreFormer checkpoint")
    if descriptor.architecture.id not in ("GFPGAN", "RestoreFormer"):
        raise StageError(f"holds a {descriptor.architecture.name} network, not GFPGAN or RestoreFormer", path=path,
                         hint="upscaler files go first in the pipeline, e.g. 'remaster run \"FILE | gfpgan\"'")
    descriptor.model.eval().requires_grad_(False)
    return descriptor


class FaceRestorer:
    """A face network applied to aligned faces in [0, 1], :attr:`size` pixels square (512 for the official ones)."""

    def __init__(self, descriptor: Any):
        self.descriptor = descriptor
        self.kind = descriptor.architecture.id
        # GFPGAN takes exactly its out_size, which spandrel's descriptor states as the minimum size;
        # RestoreFormer states none (any multiple of 32) and was trained on FFHQ's 512 px faces.
        self.size = int(descriptor.size_requirements.minimum) or FACE_SIZE

    def to(self, device: torch.device) -> None:
        self.descriptor.model.to(device)

    def __call__(self, faces: torch.Tensor) -> torch.Tensor:
        """``(N, 3, size, size)`` in [0, 1] → restored faces in [0, 1]."""
        model = self.descriptor.model
        x = faces * 2.0 - 1.0  # both networks were trained on [-1, 1]
        if self.kind == "GFPGAN":
            # Fixed noise (the checkpoint's buffers) instead of fresh noise per call: the same input
            # always gives the same output, and the difference from random noise is not visible.
            y = model(x, return_rgb=False, randomize_noise=False)[0]
        else:
            y = model(x)[0]
        return ((y.float() + 1.0) / 2.0).clamp_(0.0, 1.0)


class GFPGANStage(Stage):
    """Restores faces with GFPGAN (or RestoreFormer) and pastes them back.

    Parameters are those of the registered spec (see ``plugin.py``).
    """

    def __init__(self, **params: Any):
        super().__init__(**params)
        self._restorer: FaceRestorer | None = None
        self._detector: FaceDetector | None = None
        self._parser: Any = None
        self._background: SubPipeline | None = None
        self._device = torch.device("cpu")
        self._dtype = torch.float32
        self._weights: WeightsManager | None = None  # the pipeline's, from prepare(ctx)

    # -- set-up ----------------------------------------------------------------

    def restorer_weights(self, weights: WeightsManager | None = None) -> Path:
        """The checkpoint to load: ``model`` if given, else the registered weights of ``version``.

        Args:
            weights: The manager to ask (:attr:`PrepareContext.weights`); default
                the process-wide one.
        """
        model = self.params.get("model")
        if model:
            path = Path(model).expanduser()
            if not path.is_file():
                raise UsageError("no such face model file", path=path,
                                 hint=f"give a checkpoint file or one of: {', '.join(RESTORERS)}")
            return path
        return (weights or get_manager()).ensure(RESTORERS[self.params.get("version", "1.4")])

    def prepare(self, ctx: PrepareContext) -> None:
        self._device, self._dtype = ctx.device, ctx.dtype
        self._weights = ctx.weights
        if self._restorer is None:
            # Weights first: a missing checkpoint must stop the run before any other work.
            self._restorer = FaceRestorer(load_restorer(self.restorer_weights(ctx.weights)))
        self._restorer.to(ctx.device)
        if not self.params.get("aligned"):
            self._detector = self._make_detector(ctx.device)
            self._parser = self._make_parser(ctx.device)
        if self.params.get("upscale", 1.0) != 1.0 and not self.params.get("aligned"):
            background = str(self.params.get("background") or "lanczos")
            # Each background stage chooses its own precision per image from what the user asked for
            # (RunContext.precision), not from the face network's: a lanczos background runs in fp32
            # inside a bf16 run, and a 16-bit photo keeps fp32 under auto. ctx.pipeline() keeps the
            # outer pipeline's host (its stages and weights), device, tiling and limits.
            self._background = ctx.pipeline([_with_scale(background, self.params["upscale"], ctx.host)])
            self._background.prepare()

    def _weights_manager(self) -> WeightsManager:
        return self._weights if self._weights is not None else get_manager()

    def _make_detector(self, device: torch.device) -> FaceDetector:
        choice = self.params.get("detector", "auto")
        manager = self._weights_manager()
        if choice == "auto":
            # The better detector whenever its weights are already here; never a download mid-run.
            choice = next((c for c, w in RETINAFACE.items() if manager.path(w).is_file()), "haar")
        if choice == "haar":
            return HaarDetector()
        weights = manager.ensure(RETINAFACE[choice])
        return RetinaFaceDetector(weights, network="resnet50" if choice == "retinaface" else "mobile0.25",
                                  device=device)

    def _make_parser(self, device: torch.device) -> Any:
        choice = self.params.get("mask", "auto")
        manager = self._weights_manager()
        if choice == "feather" or (choice == "auto" and not manager.path(PARSING).is_file()):
            return None
        path = manager.ensure(PARSING)
        try:
            from facexlib.parsing.parsenet import ParseNet
        except ImportError:
            raise StageError("the parsing mask needs facexlib, which is not installed", path="gfpgan",
                             hint="run 'pip install --no-deps facexlib==0.3.0', or use mask='feather'") from None
        parser = ParseNet(in_size=FACE_SIZE, out_size=FACE_SIZE, parsing_ch=19)
        try:
            parser.load_state_dict(load_state_dict(path), strict=True)
        except RuntimeError as exc:
            raise StageError(f"does not hold ParseNet weights ({str(exc).splitlines()[0]})", path=path) from None
        return parser.eval().requires_grad_(False).to(device)

    # -- running ---------------------------------------------------------------

    def run(self, pixels: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        assert self._restorer is not None, "prepare() runs before run()"
        return torch.cat([self._run_one(item[None], ctx) for item in pixels])

    def _run_one(self, pixels: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        scale = float(self.params.get("upscale", 1.0))
        weight = float(self.params.get("weight", 1.0))
        if self.params.get("aligned"):
            return self._run_aligned(pixels, scale, weight, ctx)

        image = pixels[0].permute(1, 2, 0).float().cpu().numpy()
        found = self._detector.detect(image, min_size=self.params.get("min_face_size", 16))
        faces = self._select(self._tracked(found, ctx), image)
        ctx.report.update({"faces_found": len(found), "faces": len(faces["kept"]),
                           "face_detector": self._detector.name})
        canvas = self._upscaled_background(pixels, scale, ctx)
        if faces["kept"] and weight > 0.0:
            self._paste_restored(image, canvas, faces["kept"], scale, weight, ctx)
        return torch.from_numpy(canvas).permute(2, 0, 1)[None].to(pixels.device)

    def _paste_restored(self, image: np.ndarray, canvas: np.ndarray, faces: list[Face], scale: float,
                        weight: float, ctx: RunContext) -> None:
        size = self._restorer.size
        for index, face in enumerate(faces):
            matrix = geometry.alignment_matrix(face.landmarks, size)
            restored = self._restore(geometry.crop_face(image, matrix, size))
            mask = self._parsing_mask(restored) if self._parser is not None else geometry.square_mask(size)
            geometry.paste_face(canvas, restored, geometry.inverse_matrix(matrix, scale), mask, weight=weight,
                                feather=self._parser is None)
            if ctx.progress is not None:
                ctx.progress(0.8 + 0.2 * (index + 1) / len(faces))

    def _tracked(self, found: list[Face], ctx: RunContext) -> list[Face]:
        """The faces to restore: as found in a still image; in a frame of a video (``ctx.sequence``), the faces
        this stage follows across the sequence's frames, smoothed and with hysteresis (:class:`FaceTracker`)."""
        if ctx.sequence is None:
            return found
        tracker = ctx.sequence.state(self, self.face_tracker)
        return tracker.update(found, ctx.sequence.frame)

    def face_tracker(self) -> FaceTracker:
        """A new tracker with the stage's ``appear``, ``vanish`` and ``smoothing``: one per video (per sequence)."""
        return FaceTracker(TrackSettings(appear=int(self.params.get("appear", 2)),
                                         vanish=int(self.params.get("vanish", 3)),
                                         smoothing=float(self.params.get("smoothing", 0.7))))

    def _select(self, found: list[Face], image: np.ndarray) -> dict[str, list[Face]]:
        kept = list(found)  # the detectors already left out faces under min_face_size
        if self.params.get("only_center_face") and kept:
            cy, cx = (image.shape[0] - 1) / 2, (image.shape[1] - 1) / 2
            kept = [min(kept, key=lambda f: (f.centre[0] - cx) ** 2 + (f.centre[1] - cy) ** 2)]
        return {"all": found, "kept": kept}

    def _upscaled_background(self, pixels: torch.Tensor, scale: float, ctx: RunContext) -> np.ndarray:
        if self._background is None:
            return pixels[0].permute(1, 2, 0).float().cpu().numpy().copy()
        progress = None if ctx.progress is None else (lambda f: ctx.progress(0.8 * f))
        source = Image(pixels.float().cpu(), meta=Meta(bit_depth=ctx.bit_depth))
        upscaled = self._background.run_image(source, progress=progress, precision=ctx.precision)
        ctx.report["background_stages"] = upscaled.meta.extras.get("stages", [])
        return upscaled.pixels[0].permute(1, 2, 0).float().numpy().copy()

    def _restore(self, face: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(np.ascontiguousarray(face)).permute(2, 0, 1)[None].to(self._device)
        with torch.inference_mode(), autocast_context(self._device, self._dtype):
            restored = self._restorer(tensor)
        return restored[0].permute(1, 2, 0).float().cpu().numpy()

    def _parsing_mask(self, restored: np.ndarray) -> np.ndarray:
        """The paste-back mask of a restored face, at the face's size; ParseNet sees it at its own 512 px."""
        size = restored.shape[0]
        if size != FACE_SIZE:
            restored = cv2.resize(restored, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_LINEAR)
        tensor = torch.from_numpy(restored).permute(2, 0, 1)[None].to(self._device) * 2.0 - 1.0
        # fp32 even in a bf16 run (the pipeline calls run() under autocast): only the restorer gains from bf16,
        # and the labels are an argmax, which rounding to bf16 would change.
        with torch.inference_mode(), torch.autocast(self._device.type, enabled=False):
            labels = self._parser(tensor)[0].argmax(dim=1)[0].cpu().numpy()
        mask = geometry.parsing_to_mask(labels)
        return mask if size == FACE_SIZE else cv2.resize(mask, (size, size), interpolation=cv2.INTER_AREA)

    def _run_aligned(self, pixels: torch.Tensor, scale: float, weight: float, ctx: RunContext) -> torch.Tensor:
        import torch.nn.functional as F

        height, width = pixels.shape[-2:]
        ctx.report.update({"faces_found": 1, "faces": 1, "face_detector": "aligned"})
        if weight == 0.0 and scale == 1.0:
            return pixels.clone()
        side = self._restorer.size
        face = pixels if (height, width) == (side, side) else F.interpolate(
            pixels, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
        with torch.inference_mode(), autocast_context(self._device, self._dtype):
            restored = self._restorer(face.to(self._device)).to(pixels.device)
        restored = face + weight * (restored - face)
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        if restored.shape[-2:] != size:
            restored = F.interpolate(restored, size=size, mode="bicubic", align_corners=False, antialias=True)
        return restored


def _with_scale(stage: str, scale: float, host: PluginHost) -> StageCall:
    """``stage`` asked to run at ``scale`` (``"realesrgan-x4plus"`` → ``realesrgan-x4plus(scale=2.0)``).

    ``host`` is the pipeline's plugin host, which knows the stage's spec.
    """
    # A model file's path may hold spaces or parentheses: it is a name as it stands, not a stage string.
    call = StageCall(stage) if Path(stage).expanduser().is_file() else parse_stage(stage)
    spec = resolve_spec(call.name, host)
    if spec.info.scale_param is None:
        raise UsageError(f"the background upscaler {call.name!r} has a fixed scale and cannot be set to x{scale:g}",
                         path="gfpgan", hint="pick an upscaler with a scale parameter (see 'remaster stages')")
    return call.with_params(**{spec.info.scale_param: float(scale)})
