"""The ``--face`` options of ``remaster upscale``, the pipeline they ask for, and the faces note of the log line.

Imported by the registration module, so it stays as cheap as that: the standard
library and ``remaster.plugin`` only.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from remaster.plugin import StageCall, hookimpl, names_model_file

#: The stage the face options add.
FACE_STAGE = "gfpgan"


@hookimpl
def remaster_add_options(command: str, parser: argparse.ArgumentParser) -> None:
    if command != "upscale":
        return
    parser.add_argument("--face", action="store_true",
                        help="restore faces with GFPGAN too (faces from the input, the rest from the upscaler)")
    parser.add_argument("--face-weight", type=float, metavar="W",
                        help="how much of each restored face to use, 0-1 (default 1; implies --face)")
    parser.add_argument("--face-model", metavar="NAME|PATH",
                        help="face network: 1.3, 1.4 (default), restoreformer, or a checkpoint file (implies --face)")


def face_pipeline(upscaler: StageCall, scale: float, *, weight: float | None = None,
                  model: str | None = None) -> StageCall:
    """Upscaling with faces, the one way this plugin writes it: faces restored from the input, pasted on the
    background ``upscaler`` makes at ``scale`` (Real-ESRGAN's ``--face_enhance``).

    ``model`` is a checkpoint file (a model file's ending or a path: the stage says so if it is missing), or
    else a version name (which the stage checks).
    """
    params: dict[str, Any] = {"upscale": float(scale), "background": str(upscaler)}
    if weight is not None:
        params["weight"] = weight
    if model:
        params["model" if names_model_file(model) else "version"] = model
    return StageCall(FACE_STAGE, params)


@hookimpl
def remaster_upscale_pipeline(options: Mapping[str, Any], upscaler: StageCall, scale: float) -> list[StageCall] | None:
    """``remaster upscale --face``: :func:`face_pipeline` when any face option is given."""
    weight, model = options.get("face_weight"), options.get("face_model")
    if not (options.get("face") or weight is not None or model):
        return None
    return [face_pipeline(upscaler, scale, weight=weight, model=model)]


@hookimpl
def remaster_item_note(extras: dict[str, Any]) -> str | None:
    """What the face stage reported, for the per-image log line."""
    if "faces" not in extras:
        return None
    found, restored = extras.get("faces_found", extras["faces"]), extras["faces"]
    if not found:
        return "no face found: unchanged by the face stage"
    detector = f" ({extras['face_detector']})" if extras.get("face_detector") else ""
    return f"{restored} of {found} face(s) restored{detector}"
