"""Video: every frame of a video through a pipeline, each with its own timestamp, the other streams copied.

>>> from remaster import Remasterer
>>> from remaster.video import remaster_video
>>> report = remaster_video("clip.mp4", "clip_x2.mkv", Remasterer("realesr-animevideov3(scale=2)"))

Needs PyAV (``pip install 'remaster[video]'``), imported only when a video is opened. See ``docs/video.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from remaster.lazy import LazyExports

if TYPE_CHECKING:
    from remaster.video.formats import VIDEO_SUFFIXES, is_video
    from remaster.video.report import VideoProgress, VideoReport
    from remaster.video.transcode import remaster_video

__all__ = ["remaster_video", "VideoReport", "VideoProgress", "is_video", "VIDEO_SUFFIXES"]

_lazy = LazyExports(globals(), {"remaster_video": "transcode", "VideoReport": "report",
                                "VideoProgress": "report", "is_video": "formats", "VIDEO_SUFFIXES": "formats"})


def __getattr__(name: str) -> Any:
    return _lazy.get(name)


def __dir__() -> list[str]:
    return _lazy.names()
