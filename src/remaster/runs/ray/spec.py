"""What a worker needs to rebuild the pipeline: plain, picklable values only.

A :class:`~remaster.pipeline.Remasterer` holds a lock and loaded networks, so it is never sent to a worker; each
worker builds its own from a :class:`RunSpec`, once, and then runs :class:`WorkItem` after :class:`WorkItem`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from remaster.pipeline.options import PipelineOptions
from remaster.plugin.syntax import StageCall

if TYPE_CHECKING:
    from remaster.pipeline.remasterer import Remasterer
    from remaster.video.job import SegmentTask

__all__ = ["RunSpec", "WorkItem", "driver_environment"]

#: Environment variables of the driver that a worker takes over: the weights cache, the pixel limit, the CPU
#: precision choice. Sharing the cache path is what keeps workers from converting or downloading weights each.
_SHARED_PREFIX = "REMASTER_"


def driver_environment() -> dict[str, str]:
    """The driver's ``REMASTER_*`` variables, for :attr:`RunSpec.env`."""
    return {key: value for key, value in os.environ.items() if key.startswith(_SHARED_PREFIX)}


@dataclass(frozen=True)
class RunSpec:
    """The pipeline and output options of a run, as a worker rebuilds them.

    Attributes:
        stages: The stages, as data (picklable).
        options: The pipeline options; a GPU worker sees only the device Ray gave it, as ``cuda:0``.
        overwrite: Replace existing outputs.
        quality: JPEG/WebP quality, or ``None``.
        threads: torch threads per worker (its CPUs in the cluster).
        env: Environment variables set in the worker before anything is built.
        cli_words: Items' errors name options as the ``remaster`` command's flags.
    """

    stages: tuple[StageCall, ...]
    options: PipelineOptions = field(default_factory=PipelineOptions)
    overwrite: bool = False
    quality: int | None = None
    threads: int = 1
    env: dict[str, str] = field(default_factory=dict)
    cli_words: bool = False

    def build(self) -> Remasterer:
        """The pipeline, built and prepared (weights read) in this process."""
        from remaster.pipeline.remasterer import Remasterer

        return Remasterer(list(self.stages), self.options).prepare()


@dataclass(frozen=True)
class WorkItem:
    """One planned input and output, by position in the plan.

    Attributes:
        index: Position in the plan (the report keeps the plan's order).
        source: A local path or a URI (``s3://``, ``gs://``, ``file://``).
        target: A local path or a URI.
        attempt: 1 for the first try; more when a worker died while running it.
        existed: The target was there before the run started: on a retry, only a target that was not there
            before may count as this run's complete output.
        task: For a segment of a video: what to run (``target`` is then the segment's file, and ``existed`` is
            set, so that a retried segment is run again rather than taken as complete).
    """

    index: int
    source: str
    target: str
    attempt: int = 1
    existed: bool = False
    task: SegmentTask | None = None
