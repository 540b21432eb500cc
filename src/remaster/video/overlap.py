"""Worker threads for one segment, joined to the calling thread by small bounded queues: decoding runs ahead of
the network and encoding behind it (:func:`remaster.video.encode.encode_segment`).

Every wait — a full or an empty queue, a thread's end — is taken in slices of at most :data:`POLL` seconds, between
which the :class:`Crew` looks at its stop flag: the first exception raised on a worker stops the others and is
raised again, as it was, on the calling thread at its next hand-off; an exception on the calling thread (a stage's
error, Ctrl-C, SIGTERM) stops the workers when the crew's ``with`` block is left, and they are joined within
:data:`JOIN` seconds. The queues hold a few items each, so memory stays bounded however long the video.

PyAV (18.1) releases the GIL while it demuxes, decodes, encodes and converts pixels (``sws_scale_frame``), so the
workers run beside the network. A frame's own converter (``VideoFrame.reformatter``) is not to be used by two
threads at once: each frame is converted on one thread only.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

__all__ = ["Crew", "POLL", "JOIN"]

log = logging.getLogger(__name__)

#: The longest a wait lasts before the stop flag is looked at again (seconds): a bound, not a delay.
POLL = 0.1
#: How long the workers are given, together, to end once stopped (seconds); one decode or encode call is far less.
JOIN = 30.0


class _Stopped(Exception):
    """Raised on a worker whose crew was stopped: the worker ends quietly."""


class Crew:
    """Worker threads that stop together; use it as a context manager on the calling thread.

    Attributes:
        stuck: The names of workers that had not ended :data:`JOIN` seconds after being stopped (what they share
            with the caller must then be left alone).
    """

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []
        self.stuck: list[str] = []

    def __enter__(self) -> Crew:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        deadline = time.monotonic() + JOIN
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                self.stuck.append(thread.name)
        if self.stuck:
            log.warning("%s did not stop within %.0f s", ", ".join(self.stuck), JOIN)

    def start(self, name: str, work: Callable[[], None]) -> threading.Thread:
        """Run ``work`` on a new worker thread called ``name``."""
        thread = threading.Thread(target=self._run, args=(work,), name=name, daemon=True)
        self._threads.append(thread)
        thread.start()
        return thread

    def put(self, channel: queue.Queue[Any], item: Any) -> None:
        """Put ``item`` into ``channel``, waiting while it is full (see :meth:`get` for a stopped crew)."""
        while True:
            self._check()
            try:
                channel.put(item, timeout=POLL)
                return
            except queue.Full:
                continue

    def get(self, channel: queue.Queue[Any]) -> Any:
        """The next item of ``channel``, waiting while it is empty. On a stopped crew: the first worker's exception
        on the calling thread, a quiet end on a worker."""
        while True:
            self._check()
            try:
                return channel.get(timeout=POLL)
            except queue.Empty:
                continue

    def wait(self, thread: threading.Thread) -> None:
        """Wait for the worker ``thread`` to end (raising a worker's exception as :meth:`get` does)."""
        while thread.is_alive():
            self._check()
            thread.join(timeout=POLL)
        self._check()

    def _run(self, work: Callable[[], None]) -> None:
        try:
            work()
        except _Stopped:
            pass
        except BaseException as exc:  # raised again on the calling thread
            self._errors.append(exc)
            self._stop.set()

    def _check(self) -> None:
        if not self._stop.is_set():
            return
        if threading.current_thread() in self._threads:
            raise _Stopped
        if self._errors:
            raise self._errors[0]
        raise RuntimeError("the crew was stopped")  # only after its with block: a misuse
