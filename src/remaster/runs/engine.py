"""The one small interface every folder-run engine has: plan the outputs, then run the stages over the items.

An engine (:class:`~remaster.runs.local.LocalEngine`, :class:`~remaster.runs.ray.engine.RayEngine`) plans exactly
as :mod:`remaster.runs.plan` does and fills in each :class:`~remaster.runs.plan.BatchItem` as it goes; what the user
sees is the caller's (:class:`RunObserver`): the ``remaster`` command has one console loop for every engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from remaster.plugin.syntax import StageCall
from remaster.runs.plan import BatchItem

__all__ = ["Layout", "RunObserver", "Engine"]


@dataclass(frozen=True)
class Layout:
    """Where a run reads and writes: what ``remaster upscale INPUTS -o OUTPUT`` and its naming options say.

    Attributes:
        inputs: Files and folders (object-storage URIs too, for an engine that reads them).
        output: A folder (ending in ``/`` to insist), or one file for one input.
        fmt: Output format for folder runs (``png``, ``jpg``, ``webp``, ``tif``), ``None``: the input's.
        name_template: The name of each output in a folder (``{stem}_x4.{ext}``).
        suffix: Added to each output name in a folder.
        skip_existing: Outputs already there are left as they are (their items are ``skipped``).
        report: The JSON report's path, checked writable while planning.
    """

    inputs: tuple[str, ...]
    output: str
    fmt: str | None = None
    name_template: str | None = None
    suffix: str = ""
    skip_existing: bool = False
    report: str | None = None


class RunObserver(Protocol):
    """What an engine tells its caller while it runs: from the caller's thread, but :meth:`finished`, which may
    come from a thread of the engine's as soon as an output is on disk (a console writes its line then)."""

    def ready(self, header: str, planned: list[str] | None) -> None:
        """The pipeline is built (on a worker, for a distributed engine): ``header`` says what runs where, and
        how many images; ``planned`` is each stage's precision for 8-bit images, where the engine knows it."""

    def started(self, index: int, item: BatchItem) -> None:
        """The item ``index`` of the plan starts (engines that run one item at a time say so)."""

    def progress(self, index: int, fraction: float, detail: str = "") -> None:
        """The fraction done of the item ``index`` (engines that can tell); ``detail`` says it in words where a
        fraction is not enough (a video's ``frame 120 of 240``)."""

    def finished(self, item: BatchItem) -> None:
        """An item that was not skipped is done: written (``ok``) or failed (``error``)."""


class Engine(Protocol):
    """A folder-run engine: one object per run."""

    def plan(self, layout: Layout) -> list[BatchItem]:
        """The items of the run, named and checked as a local run names and checks them.

        Raises:
            UsageError: no images, an unusable name template, ...
            OutputError: the output folder (or the report's) cannot be written.
        """
        ...

    def run(self, items: list[BatchItem], stages: Sequence[StageCall], observer: RunObserver) -> bool:
        """Run ``stages`` over the items of :meth:`plan` that are not skipped, filling each in.

        Returns:
            Whether the run was interrupted (Ctrl-C) once the pipeline ran; finished outputs are kept.

        Raises:
            KeyboardInterrupt: while the pipeline was being built (nothing was done).
            RemasterError: the pipeline could not be built (a bad stage, missing weights).
        """
        ...
