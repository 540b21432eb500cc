"""Ctrl-C of a Ray run, made deterministic: a stand-in for ``ray`` whose workers are real processes.

Ray fails a killed actor's calls before its process has exited (measured with ray 2.60: ``ray.wait`` returns the
killed calls while the process still runs, for some milliseconds, and keeps writing). Here each worker process
goes on for a moment after its kill was asked for, then writes what a worker killed in an atomic write leaves: a
temporary file beside the output (or the output itself, published just before the kill landed). Needs no Ray.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reliability_support import temp_files
from remaster.runs.plan import BatchItem
from remaster.runs.ray import processes
from remaster.runs.ray.driver import Plan, execute
from remaster.runs.ray.spec import RunSpec

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists() or os.name != "posix",
                                reason="the workers' processes are watched through /proc")

# A worker's process: says which process it is, then takes items; the run is interrupted meanwhile, and the
# process goes on a moment before its kill lands: it creates the item's temporary file (locked, as remaster's
# writer does) and, in "publish", gives it the output's name just before it dies.
_WORKER = r"""
import fcntl, importlib.util, json, os, sys, time
spec = importlib.util.spec_from_file_location("processes", sys.argv[1])  # the standard library only: no torch
processes = sys.modules["processes"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(processes)
print(json.dumps(processes.this_process()), flush=True)
for line in sys.stdin:
    mode, target = line.rstrip("\n").split(" ", 1)
    time.sleep(0.3)
    folder, name = os.path.split(target)
    temp = os.path.join(folder, "." + name + ".0123abcd.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, b"a whole image")
    if mode == "publish":
        os.link(temp, target)
        os.unlink(temp)
    time.sleep(0.2)
    os._exit(0)
"""


class _RayActorError(Exception):
    pass


class _Ref:
    def __init__(self, actor: _Actor, value: object = None, done: bool = False):
        self.actor, self.value, self.done = actor, value, done

    def ready(self) -> bool:
        return self.done or self.actor.killed  # a killed actor's calls fail at once


class _Method:
    def __init__(self, call):
        self.remote = call


class _Actor:
    """What the driver holds (``.setup.remote()``, ``.process.remote(item)``), and the worker's process."""

    def __init__(self, ray: FakeRay):
        self.ray, self.killed = ray, False
        self.popen = subprocess.Popen([sys.executable, "-c", _WORKER, processes.__file__], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True)
        ray.processes.append(self.popen)
        self.setup = _Method(self._setup)
        self.process = _Method(self._process)

    def _setup(self) -> _Ref:
        said = json.loads(self.popen.stdout.readline())
        return _Ref(self, {**said, "device": "cpu", "describe": "fake"}, done=True)

    def _process(self, item) -> _Ref:
        self.popen.stdin.write(f"{self.ray.mode} {item.target}\n")
        self.popen.stdin.flush()
        if self.ray.interrupt_on_hand:  # Ctrl-C after the item went to the worker, before the driver noted it
            raise KeyboardInterrupt
        return _Ref(self)


class FakeRay:
    """The calls of ``ray`` the driver makes. ``ray.kill`` only asks, as Ray's does: the process ends by itself."""

    class exceptions:  # noqa: N801 - as ray.exceptions
        RayActorError = _RayActorError

    def __init__(self, mode: str, *, interrupt_on_hand: bool = False):
        self.mode, self.interrupt_on_hand = mode, interrupt_on_hand
        self.processes: list[subprocess.Popen] = []
        self.interrupted = False

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": 4.0}

    def remote(self, **_options):
        ray = self

        class ActorClass:
            @staticmethod
            def remote(_spec):
                return _Actor(ray)

        return lambda _cls: ActorClass

    def wait(self, refs, *, num_returns=1, timeout=None):
        ready = [ref for ref in refs if ref.ready()][:num_returns]
        if not ready and not self.interrupted:  # every worker busy with an item: the user presses Ctrl-C
            self.interrupted = True
            raise KeyboardInterrupt
        return ready, [ref for ref in refs if ref not in ready]

    def get(self, ref, timeout=None):
        if ref.actor.killed:
            raise _RayActorError()
        if not ref.done:
            raise TimeoutError
        return ref.value

    def kill(self, actor, no_restart=True):
        actor.killed = True


@pytest.fixture
def fake_ray():
    made: list[FakeRay] = []

    def make(mode: str, **options) -> FakeRay:
        made.append(FakeRay(mode, **options))
        return made[-1]

    yield make
    for ray in made:
        for process in ray.processes:
            process.kill()
            process.wait()
            for stream in (process.stdin, process.stdout):
                stream.close()


def _run(tmp_path: Path, ray: FakeRay, *, count: int, workers: int) -> tuple[Plan, Path]:
    out = tmp_path / "out"
    out.mkdir()
    plan = Plan([BatchItem(tmp_path / f"in{index}.png", out / f"img{index}.png") for index in range(count)],
                [False] * count)
    assert execute(plan, RunSpec(()), ray, workers=workers) is True  # interrupted
    for process in ray.processes:  # whatever the workers were to leave is there now
        process.wait(timeout=10)
    return plan, out


def test_a_temporary_file_a_stopped_worker_creates_after_its_calls_failed_is_removed(tmp_path, fake_ray):
    plan, out = _run(tmp_path, fake_ray("temp"), count=4, workers=2)
    assert temp_files(out) == []
    assert not any(item.ok for item in plan.items) and list(out.iterdir()) == []


def test_an_output_a_stopped_worker_published_after_its_calls_failed_is_reported(tmp_path, fake_ray):
    plan, out = _run(tmp_path, fake_ray("publish"), count=4, workers=2)
    assert temp_files(out) == []
    assert sorted(p.name for p in out.iterdir()) == ["img0.png", "img1.png"]
    assert [item.ok for item in plan.items] == [True, True, False, False]
    assert "recovered" in plan.items[0].extras


@pytest.mark.parametrize("mode", ["temp", "publish"])
def test_ctrl_c_between_handing_an_item_out_and_noting_it_leaves_no_temporary_and_reports_its_output(
        tmp_path, fake_ray, mode):
    plan, out = _run(tmp_path, fake_ray(mode, interrupt_on_hand=True), count=2, workers=1)
    assert temp_files(out) == []
    assert [item.ok for item in plan.items] == [mode == "publish", False]
    assert sorted(p.name for p in out.iterdir()) == (["img0.png"] if mode == "publish" else [])
