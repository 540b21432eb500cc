"""Which files are videos, which containers remaster writes, and PyAV, imported only when a video is opened."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

from remaster.errors import InputError, UsageError

__all__ = ["VIDEO_SUFFIXES", "CONTAINERS", "is_video", "is_video_name", "is_parts_folder", "import_av",
           "container_for", "open_input"]

#: What a folder run collects as videos (then recognised by their content).
VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v"})
#: The output container of each suffix remaster writes videos to.
CONTAINERS = {".mkv": "matroska", ".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".webm": "webm"}


def import_av() -> ModuleType:
    """PyAV, or a :class:`UsageError` saying how to get it."""
    try:
        import av
    except ImportError:
        raise UsageError("videos need PyAV, which is not installed",
                         hint="pip install 'remaster[video]'") from None
    return av


def is_video_name(path: str | os.PathLike[str]) -> bool:
    """Whether a planned input is a video: by its suffix, and by its content when the suffix is no image's."""
    suffix = Path(path).suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return True
    if suffix in _IMAGE_SUFFIXES:
        return False
    return is_video(path)


#: Suffixes that are always read as images (as remaster.runs.plan collects them).
_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".jfif"})


def is_video(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a file holding a video stream, by its content (PyAV opens it), not its name."""
    file = Path(path)
    try:
        if not file.is_file():
            return False
    except (OSError, ValueError):
        return False
    try:
        av = import_av()
    except UsageError:
        return False
    try:
        with av.open(str(file)) as container:
            return any(stream.type == "video" and stream.codec_context.name not in _STILL_CODECS
                       for stream in container.streams)
    except Exception:  # not something FFmpeg opens
        return False


#: Codecs FFmpeg opens as one-frame "videos" that are still images (remaster reads those itself).
_STILL_CODECS = frozenset({"png", "mjpeg", "webp", "tiff", "bmp", "gif", "jpeg2000", "apng"})


def is_parts_folder(name: str) -> bool:
    """Whether a folder called ``name`` is the side folder of a video run (``.NAME.parts``, see
    :mod:`remaster.video.manifest`): a folder run never takes its files as inputs."""
    return name.startswith(".") and name.endswith(".parts")


def container_for(target: Path) -> str:
    """The output container of ``target``'s suffix.

    Raises:
        UsageError: a suffix remaster does not write videos to.
    """
    container = CONTAINERS.get(target.suffix.lower())
    if container is None:
        raise UsageError(f"remaster cannot write a video as {target.suffix or '(no suffix)'}", path=target,
                         hint=f"end the output with one of {', '.join(sorted(CONTAINERS))}")
    return container


def open_input(av: ModuleType, source: Path) -> object:
    """The input container, or an :class:`InputError` naming the file."""
    try:
        return av.open(str(source))
    except Exception as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise InputError(f"cannot open the video: {reason.lower()}", path=source,
                         hint="the file is damaged or not a video remaster can decode; re-export it") from None
