"""The worker: one Ray actor per slot, which builds the pipeline once and then reads, runs and writes its items.

The class is plain Python; :func:`remote_worker` turns it into a Ray actor class when a run starts, so importing
this module needs no Ray. Every failure of an item is caught here and returned as its row, like the local loop
does; only the death of the worker's process reaches the driver as a Ray error, and the driver then gives the item
to another worker.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from remaster.errors import OutputError, RemasterError
from remaster.runs.local import item_error
from remaster.runs.ray import storage
from remaster.runs.ray.processes import this_process
from remaster.runs.ray.spec import RunSpec, WorkItem

__all__ = ["Worker", "remote_worker", "row"]


def row(item: WorkItem, *, ok: bool, error: str | None = None, seconds: float = 0.0,
        extras: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a worker returns for an item: the fields of a :class:`~remaster.runs.plan.BatchItem` after it ran."""
    return {"index": item.index, "ok": ok, "error": error, "seconds": seconds, "extras": extras or {}}


class Worker:
    """Runs items of one run; built by Ray on a node with the resources asked for.

    Args:
        spec: The pipeline and output options.
    """

    def __init__(self, spec: RunSpec):
        os.environ.update(spec.env)  # before torch or the plugins read them: the weights cache, the CPU choice
        self.spec = spec
        self.remasterer: Any = None

    def setup(self) -> dict[str, Any] | RemasterError:
        """Build and prepare the pipeline (weights read now); returns where it runs, or the error that stopped it.

        The error is returned, not raised: the driver re-raises the same :class:`RemasterError`, so missing weights
        end the run with the one line a local run prints.
        """
        import torch

        torch.set_num_threads(max(1, self.spec.threads))
        try:
            self.remasterer = self.spec.build()
        except RemasterError as exc:
            return exc
        # Which process this is: after a Ctrl-C the driver waits for it to be gone before it removes what it left.
        device = self.remasterer.vulkan or self.remasterer.device  # vulkan:N where the network stages run there
        return {**this_process(), "device": str(device), "describe": self.remasterer.describe()}

    def process(self, item: WorkItem) -> dict[str, Any]:
        """Read, run and write one item; its row, whatever happened to it."""
        started = time.perf_counter()
        try:
            if item.attempt > 1 and not item.existed and not self.spec.overwrite and self._exists(item.target):
                # A worker died after this item's output was complete (outputs are written whole or not at all):
                # it is done, not a failure and not a second write.
                return row(item, ok=True, seconds=time.perf_counter() - started,
                           extras={"recovered": "the output was complete when its worker died"})
            extras = self._run(item)
            return row(item, ok=True, seconds=time.perf_counter() - started, extras=extras)
        except Exception as exc:  # keep the run going past one bad file, whatever broke
            error = item_error(item.source, exc, cli=self.spec.cli_words)
        return row(item, ok=False, error=error, seconds=time.perf_counter() - started)

    def _run(self, item: WorkItem) -> dict[str, Any]:
        from remaster import io

        spec = self.spec
        if item.task is not None:  # a segment of a video: its file, which the driver records and puts together
            from remaster.video.job import SegmentRunner

            with SegmentRunner(item.task.source) as runner:
                part = runner.run(item.task, self.remasterer)
            return {"segment": item.task.segment.index, "part": vars(part)}
        if not (storage.is_uri(item.source) or storage.is_uri(item.target)):
            _, result = self.remasterer.run_file(item.source, item.target, overwrite=spec.overwrite,
                                                 quality=spec.quality)
            return dict(result.meta.extras)
        if not spec.overwrite and self._exists(item.target):
            raise OutputError("already exists", path=item.target, hint="pass {opt:overwrite} or choose another name")
        source: Any = storage.read_bytes(item.source) if storage.is_uri(item.source) else item.source
        result = self.remasterer.run_for_file(io.load(source, max_pixels=self.remasterer.max_pixels,
                                                           check=self.remasterer.check_header), item.target)
        if storage.is_uri(item.target):
            fmt = Path(item.target.rsplit("/", 1)[-1]).suffix.lstrip(".")
            storage.write_bytes(item.target, io.encode(result, fmt, quality=spec.quality))
        else:
            io.save(result, item.target, quality=spec.quality, overwrite=spec.overwrite)
        return dict(result.meta.extras)

    @staticmethod
    def _exists(target: str) -> bool:
        return storage.exists(target) if storage.is_uri(target) else Path(target).is_file()


def remote_worker(ray: Any, *, cpus: float, gpus: float) -> Any:
    """:class:`Worker` as a Ray actor class of this size.

    Ray neither restarts a dead worker nor retries its item by itself (``max_restarts=0``, ``max_task_retries=0``):
    the driver does both, so that it counts how often each item killed a worker and a poison item becomes an error
    row instead of exhausting the pool.
    """
    return ray.remote(num_cpus=cpus, num_gpus=gpus, max_restarts=0, max_task_retries=0)(Worker)
