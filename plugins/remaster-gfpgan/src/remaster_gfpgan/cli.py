"""The ``--face`` options of ``remaster upscale``, the pipeline they ask for, and the faces note of the log line.

Imported by the registration module, so it stays as cheap as that: the standard
library and ``remaster.plugin`` only (the stage-string writer is imported when
a pipeline is built).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from remaster.plugin import hookimpl

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


@hookimpl
def remaster_upscale_pipeline(args: argparse.Namespace, upscaler: str, scale: float) -> list[str] | None:
    """Real-ESRGAN's ``--face_enhance``: faces restored from the input, pasted on the upscaled background."""
    face_weight, face_model = getattr(args, "face_weight", None), getattr(args, "face_model", None)
    if not (getattr(args, "face", False) or face_weight is not None or face_model):
        return None
    from remaster import format_stage

    params: dict[str, Any] = {"upscale": float(scale), "background": upscaler}
    if face_weight is not None:
        params["weight"] = face_weight
    if face_model:
        # A file is a checkpoint; anything else is a version name, which the stage validates.
        params["model" if Path(face_model).expanduser().is_file() else "version"] = face_model
    return [format_stage(FACE_STAGE, params)]


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
