"""Registers the ``gfpgan`` stage, the face weights and the ``--face`` options of ``remaster upscale`` (cheap)."""

from __future__ import annotations

from collections.abc import Callable

from remaster.plugin import Param, Preset, StageCall, StageInfo, StageKind, StageSpec, Tiling, WeightsSpec, hookimpl

from .catalogue import RESTORERS, RETINAFACE, WEIGHTS
from .cli import face_pipeline, remaster_add_options, remaster_item_note, remaster_upscale_pipeline

__all__ = ["remaster_register_stages", "remaster_register_weights", "remaster_add_options",
           "remaster_upscale_pipeline", "remaster_item_note", "PARAMS", "INFO"]

PARAMS: tuple[Param, ...] = (
    Param("version", str, "1.4", choices=tuple(RESTORERS),
          help="face network: GFPGAN 1.3 (smoother), 1.4 (more detail) or RestoreFormer"),
    Param("model", str, None, help="a GFPGAN/RestoreFormer checkpoint file instead of --version's weights",
          names_file=True),
    Param("weight", float, 1.0, min=0.0, max=1.0,
          help="how much of the restored face to use: 1 all of it, 0 none (the image is returned unchanged)"),
    Param("upscale", float, 1.0, min=1.0, max=16.0,
          help="output factor; the background is upscaled with 'background', faces are restored at full size"),
    Param("background", str, "realesrgan-x4plus",
          help="upscaler stage for everything but the faces when upscale > 1 (any upscaler, e.g. lanczos)",
          names_file=True),
    Param("detector", str, "auto", choices=("auto", "haar", *RETINAFACE),
          help="auto: RetinaFace when its weights are in the cache, else OpenCV's Haar cascades (no weights)"),
    Param("mask", str, "auto", choices=("auto", "parsing", "feather"),
          help="paste-back mask: face parsing (when its weights are in the cache) or a feathered square"),
    Param("only_center_face", bool, False, help="restore only the face nearest the image centre"),
    Param("aligned", bool, False, help="the input is already an aligned face (as FFHQ, resized to 512x512)"),
    Param("min_face_size", int, 16, min=1, help="skip faces smaller than this many input pixels"),
    # Frames of a video (a FrameSequence in the run): faces followed across frames, see tracking.py.
    Param("appear", int, 2, min=1, max=100,
          help="video: frames in a row a face must be found in before it is restored"),
    Param("vanish", int, 3, min=0, max=100,
          help="video: frames a restored face may go unfound and still be restored, at its last place"),
    Param("smoothing", float, 0.7, min=0.0, max=0.95,
          help="video: how steady a still face's landmarks are kept (0: as detected in each frame)"),
)

INFO = StageInfo(scale_param="upscale", in_channels=(3,), tiling=Tiling.UNSUPPORTED, alpha="resize",
                 dtypes=("fp32", "bf16"))


@hookimpl
def remaster_register_stages(register: Callable[[StageSpec], None]) -> None:
    register(StageSpec(
        name="gfpgan", kind=StageKind.FACE, factory="remaster_gfpgan.stage:GFPGANStage", params=PARAMS, info=INFO,
        summary="restore faces with GFPGAN: detect, align, restore, paste back (Real-ESRGAN's --face_enhance)",
    ))


@hookimpl
def remaster_register_weights(register: Callable[[WeightsSpec], None]) -> None:
    for spec in WEIGHTS:
        register(spec)


@hookimpl
def remaster_register_presets(register: Callable[[Preset], None]) -> None:
    # What the dialogs' "Restore faces" box runs with remaster-realesrgan's upscale presets: `remaster upscale
    # --face` (faces from the layer's own pixels, pasted on the Real-ESRGAN background; see docs/faces.md).
    # They are listed only while realesrgan-x4plus is installed too.
    for scale, order in ((4, 11), (2, 21)):
        register(Preset(name=f"upscale-x{scale}-faces", label=f"upscale x{scale}, restore faces",
                        pipeline=str(face_pipeline(StageCall("realesrgan-x4plus"), scale)),
                        description=f"GFPGAN faces on a Real-ESRGAN x{scale} background",
                        faces_of=f"upscale-x{scale}", requires=("realesrgan-x4plus",),
                        weights=(RESTORERS["1.4"],), order=order))
