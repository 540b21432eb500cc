"""Which process a worker is, and when it is gone: Ray fails a killed actor's calls before its process has exited.

``ray.kill`` only asks for the kill: the driver sees the actor's calls fail (``ray.wait`` returns them) while the
worker's process still runs for a few milliseconds, long enough to create a temporary file beside an output. So
after a Ctrl-C the driver waits, bounded, for the processes of the workers it stopped to be gone before it removes
what they left. A worker says which process it is when it starts (:func:`this_process`); the driver can watch only
those on its own host.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["WorkerProcess", "this_process", "wait_gone"]


@dataclass(frozen=True)
class WorkerProcess:
    """A worker's process, as it said at setup.

    Attributes:
        host: Its host name.
        pid: Its process id on that host.
        started: When it started, in clock ticks since boot (``/proc``), so that another process given the same id
            later (or one in another pid namespace of a host with the same name) is not taken for it; ``None`` where
            there is no ``/proc``.
    """

    host: str
    pid: int
    started: int | None

    @classmethod
    def from_setup(cls, value: Any) -> WorkerProcess | None:
        """From what :meth:`remaster.runs.ray.actors.Worker.setup` returned; ``None`` if it did not say."""
        if not isinstance(value, dict) or not isinstance(value.get("pid"), int):
            return None
        return cls(str(value.get("host", "")), value["pid"], value.get("started"))

    def watchable(self) -> bool:
        """It runs on this host, where its process can be looked at."""
        return self.host == socket.gethostname()

    def running(self) -> bool:
        """It has not exited (a zombie has: it holds no file and writes nothing). Only meaningful when watchable."""
        if self.started is not None:
            return _start_ticks(self.pid) == self.started
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's process has this id
            return True
        return True


def this_process() -> dict[str, Any]:
    """What a worker says about its process at setup (:meth:`WorkerProcess.from_setup` reads it)."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "started": _start_ticks(pid)}


def wait_gone(processes: Iterable[WorkerProcess], *, until: float) -> list[WorkerProcess]:
    """Wait until these processes (those on this host) have exited, or the :func:`time.monotonic` time ``until``.

    Returns:
        Those still running at ``until``.
    """
    left = [process for process in processes if process.watchable()]
    while True:
        left = [process for process in left if process.running()]
        if not left or time.monotonic() >= until:
            return left
        time.sleep(0.01)


def _start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (field 22 of ``/proc/PID/stat``); ``None`` if it is gone, a zombie, or there is
    no ``/proc``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            stat = file.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()  # after the command name, which may hold spaces or parentheses
    if len(fields) < 20 or fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])
