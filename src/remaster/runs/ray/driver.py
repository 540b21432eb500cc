"""The driver: plan a folder run exactly as a local run does, then hand its items to a pool of Ray workers.

Scheduling is a loop of our own over Ray Core actors (not Ray Data): each worker holds at most one item, so a
worker that dies loses exactly that item, which goes back to the front of the queue for another worker. Outputs are
written whole or not at all, and a retried item whose output is already complete counts as done, so Ray's
at-least-once delivery never writes an item twice nor reports a finished one as failed.
"""

from __future__ import annotations

import collections
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from remaster.errors import RemasterError, UsageError
from remaster.io.atomic import remove_temporaries
from remaster.pipeline.options import PipelineOptions
from remaster.plugin.syntax import StageCall
from remaster.runs.plan import (
    FOLDER_SEPARATORS,
    WRITABLE_SUFFIXES,
    BatchItem,
    check_writable,
    collect_inputs,
    plan_outputs,
    summarize,
    write_report,
)
from remaster.runs.ray import storage
from remaster.runs.ray.actors import remote_worker, row
from remaster.runs.ray.cluster import check_capacity
from remaster.runs.ray.errors import ClusterCapacityError, ClusterError
from remaster.runs.ray.processes import WorkerProcess, wait_gone
from remaster.runs.ray.spec import RunSpec, WorkItem, driver_environment

__all__ = ["Plan", "plan_run", "execute", "make_spec", "default_workers"]

#: How often a report being written during a run is rewritten, at most.
_REPORT_EVERY_S = 1.0
#: After a Ctrl-C, the longest the driver waits for the workers it stopped to be gone and their files to be free.
_ABANDON_WAIT_S = 10.0


@dataclass
class Plan:
    """The items of a run in the local run's order, and which outputs were already there when it was planned."""

    items: list[BatchItem]
    existed: list[bool]


def plan_run(inputs: Sequence[str], output: str, *, fmt: str | None = None, name_template: str | None = None,
             suffix: str = "", skip_existing: bool = False, report: str | None = None) -> Plan:
    """Plan as ``remaster upscale INPUTS -o OUTPUT`` would: same inputs, names, collision rules and checks.

    Local paths go through :func:`remaster.runs.plan.plan_outputs` unchanged. Object-storage URIs are named by the
    same function, against an empty placeholder folder, so that a bucket gets exactly the names a folder would.

    Raises:
        UsageError: As for a local run (no images, an unusable name template, ...).
        OutputError: The output folder (or the report's) cannot be written.
    """
    inputs = [storage.local_path(text) for text in inputs]
    output = storage.local_path(output)
    folder = output.endswith(FOLDER_SEPARATORS)
    if not any(storage.is_uri(text) for text in [*inputs, output]):
        items = plan_outputs(collect_inputs(inputs, output=Path(output)), Path(output), fmt,
                             name_template=name_template, suffix=suffix, folder=folder)
        check_writable(items, report)
        existed = [Path(item.target).is_file() for item in items]
    else:
        sources: list[tuple[str, PurePosixPath]] = []
        for text in inputs:
            if storage.is_uri(text):
                sources.extend(storage.list_images(text))
            else:
                sources.extend((str(path), PurePosixPath(relative.as_posix()))
                               for path, relative in collect_inputs(
                                   [text], output=None if storage.is_uri(output) else Path(output)))
        items = _plan_named(sources, output, fmt, name_template, suffix, folder)
        if storage.is_uri(output):
            there = storage.existing_under(output) | {item.target for item in items
                                                      if item.target == output and storage.exists(output)}
            existed = [item.target in there for item in items]
            check_writable([], report)
        else:
            check_writable(items, report)
            existed = [Path(item.target).is_file() for item in items]
    if skip_existing:
        for item, was_there in zip(items, existed):
            item.skipped = was_there
    return Plan(items, existed)


def _plan_named(sources: list[tuple[str, PurePosixPath]], output: str, fmt: str | None, name_template: str | None,
                suffix: str, folder: bool) -> list[BatchItem]:
    """Outputs named by :func:`plan_outputs`; for a URI output, planned in an empty folder, then moved under it."""
    placeholders = [(Path(relative), Path(relative)) for _, relative in sources]
    if not storage.is_uri(output):
        planned = plan_outputs(placeholders, Path(output), fmt, name_template=name_template, suffix=suffix,
                               folder=folder)
        return [BatchItem(source, Path(item.target)) for (source, _), item in zip(sources, planned)]
    one_file = (len(sources) == 1 and not folder
                and PurePosixPath(output.rsplit("/", 1)[-1]).suffix.lower() in WRITABLE_SUFFIXES)
    if one_file:
        plan_outputs(placeholders, Path(output.rsplit("/", 1)[-1]), fmt, name_template=name_template, suffix=suffix)
        return [BatchItem(sources[0][0], output)]
    with tempfile.TemporaryDirectory(prefix="remaster-plan-") as empty:
        planned = plan_outputs(placeholders, Path(empty), fmt, name_template=name_template, suffix=suffix, folder=True)
        return [BatchItem(source, storage.join(output, Path(item.target).relative_to(empty).as_posix()))
                for (source, _), item in zip(sources, planned)]


def default_workers(resources: dict[str, float], *, cpus_per_worker: float, gpus_per_worker: float) -> int:
    """One worker per GPU share when workers take GPUs, else one per ``cpus_per_worker`` cores; at least one."""
    if gpus_per_worker > 0:
        return max(1, int(resources["GPU"] // gpus_per_worker))
    return max(1, int(resources["CPU"] // max(cpus_per_worker, 1e-9)))


def execute(plan: Plan, spec: RunSpec, ray: Any, *, workers: int | None = None, cpus_per_worker: float = 1.0,
            gpus_per_worker: float = 0.0, max_attempts: int = 3, wait_for_workers: float = 300.0,
            report: str | None = None, on_item: Callable[[BatchItem], None] | None = None,
            on_start: Callable[[dict[str, Any]], None] | None = None, work: Sequence[WorkItem] | None = None,
            on_row: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None) -> bool:
    """Run the plan's items that are not skipped on a pool of workers; fills in each :class:`BatchItem`.

    Args:
        plan: From :func:`plan_run`.
        spec: The pipeline every worker builds.
        ray: The connected ``ray`` module (:func:`~remaster.runs.ray.cluster.connected`).
        workers: Pool size (default :func:`default_workers`), never more than the items to do.
        cpus_per_worker: CPUs each worker reserves (and its torch threads).
        gpus_per_worker: GPUs each worker reserves; Ray gives each its own ``CUDA_VISIBLE_DEVICES``.
        max_attempts: Tries of one item whose worker died; then it becomes an error row.
        wait_for_workers: Seconds to wait with no worker alive before saying the cluster has no room.
        report: Rewritten (atomically, at most once a second) while the run goes, so a killed driver leaves one.
        on_item: Called with each item when it is done or failed.
        on_start: Called once with what the first worker says about itself (device, pipeline with precisions).
        work: The work items, where they are not one per item to do (a video's segments are one each).
        on_row: Sees each row before it is recorded and returns the row to record for its item, or ``None`` when
            the item is not done yet (a video with segments still running); every item index it returns a row
            for is taken out of the queue.

    Returns:
        Whether the run was interrupted (Ctrl-C): submitting stopped, running items were abandoned and their
        temporary files removed; finished outputs are kept.

    Raises:
        ClusterCapacityError: No worker of this size fits, or none started within ``wait_for_workers``.
        RemasterError: What stopped the pipeline from being built on a worker (missing weights, a bad stage).
    """
    if work is None:
        work = [WorkItem(index, str(item.source), str(item.target), existed=existed)
                for index, (item, existed) in enumerate(zip(plan.items, plan.existed)) if not item.skipped]
    todo = collections.deque(work)
    if not todo:
        return False
    resources = check_capacity(ray, cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker)
    size = workers or default_workers(resources, cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker)
    size = min(size, len(todo))
    actor_class = remote_worker(ray, cpus=cpus_per_worker, gpus=gpus_per_worker)
    running: dict[Any, tuple[str, Any, WorkItem | None]] = {}  # object ref -> (what, actor, item)
    alive: set[Any] = set()
    processes: dict[Any, WorkerProcess] = {}  # actor -> its process, as it said at setup
    setup_deaths = 0
    last_report = 0.0
    waiting_since = time.monotonic()

    def start_worker() -> None:
        actor = actor_class.remote(spec)
        running[actor.setup.remote()] = ("setup", actor, None)

    def give_work(actor: Any) -> None:
        if todo:
            item = todo.popleft()
            running[actor.process.remote(item)] = ("item", actor, item)

    def record(value: dict[str, Any]) -> None:
        nonlocal last_report, todo
        if on_row is not None:
            found = on_row(value)
            if found is None:
                return
            value = found
            todo = collections.deque(queued for queued in todo if queued.index != value["index"])
        item = plan.items[value["index"]]
        item.ok, item.error, item.seconds, item.extras = value["ok"], value["error"], value["seconds"], value["extras"]
        if on_item is not None:
            on_item(item)
        if report and time.monotonic() - last_report >= _REPORT_EVERY_S:
            write_report(Path(report), summarize(plan.items, interrupted=False))
            last_report = time.monotonic()

    try:
        for _ in range(size):
            start_worker()
        while running:
            done, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            if not done:
                if not alive and time.monotonic() - waiting_since > wait_for_workers:
                    raise ClusterCapacityError(
                        f"no worker started in {wait_for_workers:g} s: the cluster has no free "
                        f"{cpus_per_worker:g} CPU / {gpus_per_worker:g} GPU for one",
                        hint="free or add nodes, or {opt:workers}")
                continue
            what, actor, item = running[done[0]]  # still there if Ctrl-C lands in the get: _abandon takes it up
            try:
                value = ray.get(done[0])
            except ray.exceptions.RayActorError:  # the worker's process or node died
                del running[done[0]]
                alive.discard(actor)
                ray.kill(actor, no_restart=True)
                if item is None:
                    setup_deaths += 1
                    if setup_deaths > 2 * size + max_attempts:
                        raise ClusterError("workers keep dying while the pipeline is built", hint="see the Ray logs "
                                           "(ray logs, or /tmp/ray/session_latest/logs on a node)") from None
                elif item.attempt >= max_attempts:
                    record(row(item, ok=False, error=f"{item.source}: its worker died {item.attempt} times while "
                                                     "running it; not tried again"))
                else:
                    todo.appendleft(replace(item, attempt=item.attempt + 1))
                if todo or any(kind == "item" for kind, _, _ in running.values()):
                    if not alive:
                        waiting_since = time.monotonic()
                    start_worker()
                continue
            del running[done[0]]
            if what == "setup":
                if isinstance(value, RemasterError):
                    raise value
                if on_start is not None and not alive and value is not None:
                    on_start(value)
                    on_start = None
                alive.add(actor)
                process = WorkerProcess.from_setup(value)
                if process is not None:
                    processes[actor] = process
            else:
                record(value)
            if todo:
                give_work(actor)
            else:
                alive.discard(actor)
                ray.kill(actor, no_restart=True)  # nothing left for it: free its CPUs/GPU for the others' retries
    except KeyboardInterrupt:
        # Every worker is stopped, not only those the driver knows to be running an item: Ctrl-C may have landed
        # between handing an item to a worker and noting its call, or between fetching a row and recording it.
        actors = {*alive, *(actor for _, actor, _ in running.values())}
        unstarted = {queued.index for queued in todo if queued.attempt == 1}
        _abandon(ray, running, actors, [processes[actor] for actor in actors if actor in processes],
                 plan, work, unstarted, record)
        return True
    finally:
        for _, actor, _ in list(running.values()):
            ray.kill(actor, no_restart=True)
        for actor in alive:
            ray.kill(actor, no_restart=True)
    return False


def _abandon(ray: Any, running: dict[Any, tuple[str, Any, WorkItem | None]], actors: set[Any],
             processes: list[WorkerProcess], plan: Plan, work: Sequence[WorkItem], unstarted: set[int],
             record: Callable[[dict[str, Any]], None]) -> None:
    """Ctrl-C: stop every worker, keep what finished meanwhile, and remove the temporary files of the others.

    Ray fails a killed actor's calls before its process has exited, and a dying worker may still create a temporary
    file in those milliseconds: the files are removed only once the workers' processes are gone (those on this
    host; the others' files once no process holds them), waiting :data:`_ABANDON_WAIT_S` at most in all.
    """
    until = time.monotonic() + _ABANDON_WAIT_S
    for actor in actors:
        ray.kill(actor, no_restart=True)
    refs = list(running)
    if refs:
        ray.wait(refs, num_returns=len(refs), timeout=max(0.0, until - time.monotonic()))
    wait_gone(processes, until=until)  # no worker writes after this
    for ref, (what, _, item) in running.items():
        if what == "item" and item is not None:
            with suppress(Exception):  # killed mid-item: what it left is for _sweep
                record(ray.get(ref, timeout=0))
    running.clear()
    _sweep(plan, work, unstarted, record, until=until)


def _sweep(plan: Plan, work: Sequence[WorkItem], unstarted: set[int], record: Callable[[dict[str, Any]], None], *,
           until: float) -> None:
    """After a Ctrl-C, for every item not done: nothing of it may stay but a complete output, which a started item
    may have published before its worker stopped, and which the report then lists."""
    names: dict[Path, set[str]] = collections.defaultdict(set)
    for item in work:
        planned = plan.items[item.index]
        if planned.ok:
            continue
        local = not storage.is_uri(item.target)
        if local:
            names[Path(item.target).parent].add(Path(item.target).name)
        if item.task is not None or item.existed or planned.error or item.index in unstarted:
            continue
        if _published(item.target):
            record(row(item, ok=True, extras={"recovered": "the output was complete when its worker was stopped"}))
    for folder, wanted in names.items():
        remove_temporaries(folder, wanted, until=until)


def _published(target: str) -> bool:
    """The output is there (written whole or not at all); ``False`` when that cannot be told (storage unreachable)."""
    try:
        return storage.exists(target) if storage.is_uri(target) else Path(target).is_file()
    except Exception:  # a Ctrl-C is being handled: the run stops with what it knows
        return False


def _on_the_cpu(options: PipelineOptions) -> PipelineOptions:
    """``options`` as the driver can always build them: on its CPU (fp16, which CPUs do not run, as fp32)."""
    return options.replace(device="cpu", precision="fp32" if options.precision == "fp16" else options.precision)


def describe_pipeline(stages: Sequence[StageCall], options: PipelineOptions) -> str:
    """The pipeline as it describes itself (a video's manifest records it as its job), built in the driver.

    With the run's own options where the driver has their device; a driver without it (a CPU head node of GPU
    workers, or of Vulkan ones) describes it on its CPU rather than refusing a run its workers can do.
    """
    from remaster.pipeline.remasterer import Remasterer

    try:
        return Remasterer(list(stages), options).describe()
    except UsageError:
        if options.device == "cpu":
            raise
        return Remasterer(list(stages), _on_the_cpu(options)).describe()


def make_spec(stages: Sequence[StageCall], options: PipelineOptions, *, overwrite: bool, quality: int | None,
              cpus_per_worker: float, gpus_per_worker: float, cli_words: bool = False) -> RunSpec:
    """The workers' :class:`RunSpec`, checked here first: a misspelt stage fails before any cluster starts."""
    from remaster.pipeline.remasterer import Remasterer

    # Built on the CPU only to check names and parameters (nothing is loaded); the workers pick their own device.
    Remasterer(list(stages), _on_the_cpu(options))
    env = {**driver_environment(), **{key: os.environ[key] for key in storage.ENV_PASSED if key in os.environ}}
    # A worker without a GPU share must not take a GPU it happens to see on its node.
    if gpus_per_worker == 0 and options.device == "auto":
        options = options.replace(device="cpu")
    return RunSpec(tuple(stages), options, overwrite=overwrite, quality=quality,
                   threads=max(1, int(cpus_per_worker)), env=env, cli_words=cli_words)
