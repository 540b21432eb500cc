"""The jobs of ``remaster serve``: :class:`Job` (one request's pipeline, image, state and result) and
:class:`JobQueue` (jobs by id, the bounded waiting line, and the worker thread that runs them one at a time on
the device).
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import OrderedDict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from remaster import io
from remaster.errors import RemasterError
from remaster.pipeline.remasterer import Remasterer
from remaster.server.http import HTTPError, status_for

__all__ = ["Job", "JobQueue", "JobCancelled", "DEFAULT_MAX_QUEUE", "KEEP_FINISHED"]

log = logging.getLogger(__name__)

#: Jobs waiting behind the running one before new ones get 503.
DEFAULT_MAX_QUEUE = 8
#: Finished jobs whose results are kept until fetched and deleted; the oldest go first.
KEEP_FINISHED = 16


class JobCancelled(Exception):
    """Raised from the progress callback to stop a cancelled job."""


@dataclass
class Job:
    id: str
    pipeline: str
    result_format: str
    tile: int | str
    remasterer: Remasterer
    #: The request's image, still encoded: decoded by the worker when the job runs.
    data: bytes | None
    output: tuple[int, int, int]
    state: str = "queued"
    progress: float = 0.0
    error: dict[str, Any] | None = None
    result: bytes | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    #: Per stage: name, device and precision; planned for the input's bit depth, then what actually ran.
    stages: list[dict[str, str]] = field(default_factory=list)
    #: The largest input decoded (the server's limit).
    max_pixels: int | None = None
    #: The input's (height, width), from its header.
    input: tuple[int, int] | None = None
    #: When the worker took the job up (``finished - started`` is what it ran for).
    started: float | None = None

    def status(self) -> dict[str, Any]:
        height, width, channels = self.output
        source = None if self.input is None else {"width": self.input[1], "height": self.input[0]}
        return {"id": self.id, "state": self.state, "progress": round(self.progress, 4), "pipeline": self.pipeline,
                "format": self.result_format, "input": source,
                "output": {"width": width, "height": height, "channels": channels},
                "stages": self.stages, "error": self.error, "created": self.created, "started": self.started,
                "finished": self.finished}


class JobQueue:
    """Jobs by id, the waiting line, and the one worker thread that runs them on the device.

    Args:
        max_queue: Jobs that may wait behind the running one.
        keep_finished: Finished jobs kept for their results; older ones are forgotten.
    """

    def __init__(self, max_queue: int = DEFAULT_MAX_QUEUE, keep_finished: int = KEEP_FINISHED):
        self.max_queue = max_queue
        self.keep_finished = keep_finished
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self._waiting: deque[Job] = deque()
        self._reserved = 0  # requests admitted whose bodies are being read
        self._ready = threading.Condition()
        self._stopping = False
        self._worker = threading.Thread(target=self._work, name="remaster-worker", daemon=True)
        self.seconds_per_job = 5.0  # a running average, for Retry-After
        # The last pipelines run, with their stages built: a second upscale does not load the network again.
        self._remasterers: OrderedDict[tuple[str, int | str], Remasterer] = OrderedDict()

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        with self._ready:
            self._stopping = True
            for job in self.jobs.values():
                job.cancel.set()
            self._ready.notify_all()
        self._worker.join(timeout=10)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def full(self) -> bool:
        return self.waiting + self._reserved >= self.max_queue

    @contextmanager
    def reserve(self) -> Iterator[None]:
        """Hold a place in the queue while a request's body is read and its job admitted; a job submitted inside
        takes the place over.

        Raises:
            HTTPError: 503 when the queue is full.
        """
        with self._ready:
            if self.full:
                raise self._queue_full()
            self._reserved += 1
        try:
            yield
        finally:
            with self._ready:
                self._reserved -= 1

    def retry_after(self) -> int:
        return max(1, round(self.seconds_per_job * (len(self._waiting) + 1)))

    def _queue_full(self) -> HTTPError:
        return HTTPError(503, f"the queue is full ({self.max_queue} jobs waiting)", hint="try again in a little while",
                         kind="QueueFull", headers={"Retry-After": str(self.retry_after())})

    def submit(self, job: Job) -> None:
        """Queue ``job``; inside :meth:`reserve`, in the place reserved."""
        with self._ready:
            if self.waiting >= self.max_queue:
                raise self._queue_full()
            self.jobs[job.id] = job
            self._waiting.append(job)
            self._forget_old()
            self._ready.notify()

    def get(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise HTTPError(404, f"no job {job_id!r}", hint="it may have finished and been deleted", kind="NotFound")
        return job

    def cancel(self, job_id: str) -> Job:
        """Cancel a waiting or running job; a finished one is forgotten with its result."""
        with self._ready:
            job = self.get(job_id)
            if job.state == "queued":
                self._waiting.remove(job)
                self._end(job, "cancelled")
            elif job.state == "running":
                job.cancel.set()
                job.state = "cancelling"
            else:
                del self.jobs[job_id]
            return job

    def _end(self, job: Job, state: str, *, result: bytes | None = None, error: dict[str, Any] | None = None) -> None:
        job.state, job.result, job.error = state, result, error
        job.data = None  # the request's image is the big thing; free it as soon as the job ends
        job.finished = time.time()

    def _forget_old(self) -> None:
        finished = [job for job in self.jobs.values() if job.finished is not None]
        for job in finished[: max(0, len(finished) - self.keep_finished)]:
            del self.jobs[job.id]

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._waiting and not self._stopping:
                    self._ready.wait()
                if self._stopping:
                    return
                job = self._waiting.popleft()
                job.state, job.started = "running", time.time()
            self._run(job)

    def _remasterer_for(self, job: Job, keep: int = 2) -> Remasterer:
        key = (job.pipeline, job.tile)
        remasterer = self._remasterers.pop(key, None) or job.remasterer
        self._remasterers[key] = remasterer
        while len(self._remasterers) > keep:
            self._remasterers.popitem(last=False)
        return remasterer

    def _run(self, job: Job) -> None:
        started = time.monotonic()

        def progress(fraction: float) -> None:
            if job.cancel.is_set():
                raise JobCancelled
            job.progress = fraction

        state, result, error = "done", None, None
        try:
            assert job.data is not None
            remasterer = self._remasterer_for(job)
            source = io.load(job.data, max_pixels=job.max_pixels, check=remasterer.check_header)
            job.data = None  # decoded: the encoded body is no longer needed
            # The integer result wherever the encoding quantises anyway: a huge result never exists as floats.
            image = remasterer.run_for_file(source, f"result.{job.result_format}", progress=progress)
            job.stages = list(image.meta.extras.get("stages", job.stages))
            progress(1.0)
            result = io.encode(image, job.result_format)
        except JobCancelled:
            state = "cancelled"
        except RemasterError as exc:
            state, error = "failed", HTTPError.from_remaster(exc, status_for(exc)).body()["error"]
        except Exception as exc:  # a bug in a stage must fail the job, not the worker
            log.error("job %s failed:\n%s", job.id, traceback.format_exc())
            state = "failed"
            error = HTTPError(500, f"internal error: {type(exc).__name__}: {exc}", kind="InternalError").body()["error"]
        with self._ready:
            if job.cancel.is_set():
                state, result, error = "cancelled", None, None
            self._end(job, state, result=result, error=error)
            if state == "done":
                job.progress = 1.0
                self.seconds_per_job = 0.7 * self.seconds_per_job + 0.3 * (time.monotonic() - started)
