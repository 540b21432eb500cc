"""Building and loading compiled artifacts of a network stage, in the process or in a low-priority one.

An artifact is the stage's network, converted to the compute precision, exported with ``torch.export`` for one
input shape and then either compiled ahead of time by AOTInductor (format ``inductor``: a package of native code,
with the weights frozen into oneDNN's layouts) or saved as it is (format ``export``: a program without native code,
quick to build; what the tests use). Where artifacts live and how they are trusted:
:mod:`remaster.weights.artifacts`.

A background build runs ``python -m remaster.pipeline.artifact_build REQUEST`` as a process of its own, in a new
session (it outlives the command that asked for it, so the next run finds the artifact), at the lowest CPU priority
(``SCHED_IDLE`` where there is one, else ``nice 19``), holding the artifact's build lock so that one process builds
it. Where the asking process's threads already take every core, the build first waits (``--after PID``) until that
process has ended or gone idle: even at the lowest priority a compiler beside it slowed it. The network reaches it
as a file ``torch.save`` wrote into the private artifacts folder, deleted once read; it is read with
``weights_only=True``, allowing only the ``torch.nn.Module`` classes the asking process named in the request, so that
nothing else in the file (a function to call, any other object) is ever unpickled.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from remaster.pipeline import devices
from remaster.plugin.specs import precision_name
from remaster.weights.artifacts import ANY_BUILD, ArtifactRecord, ArtifactStore
from remaster.weights.cache import sha256_file

__all__ = ["ARTIFACT_FORMATS", "artifact_key", "build_artifact", "load_artifact", "start_background_build",
           "CastNetwork", "main", "module_classes", "wait_until_quiet"]

log = logging.getLogger("remaster.pipeline")

#: The compile backends that make cached artifacts (the others compile in the process with ``torch.compile``).
ARTIFACT_FORMATS = ("inductor", "export")
#: Bumped whenever what an artifact holds changes (the cast wrapper, the compile settings): older ones no longer match.
_RECIPE = 1


class CastNetwork(torch.nn.Module):
    """``network`` computing in ``dtype``: float32 pixels in (cast on entry), float32 pixels out."""

    def __init__(self, network: torch.nn.Module, dtype: torch.dtype):
        super().__init__()
        self.network, self.dtype = network, dtype

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.network(pixels.to(self.dtype)).float()


def artifact_key(*, fmt: str, stage: str, identity: str, shape: tuple[int, ...], dtype: torch.dtype,
                 device: torch.device) -> str:
    """The artifact's key: a digest of everything it depends on, this machine's CPU and torch included."""
    parts = {"recipe": _RECIPE, "format": fmt, "stage": stage, "identity": identity, "shape": list(shape),
             "precision": precision_name(dtype), "device": device.type, "torch": torch.__version__,
             "cpu": devices.cpu_signature(), "python": platform.python_version()}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def build_artifact(network: torch.nn.Module, *, fmt: str, stage: str, shape: tuple[int, ...], dtype: torch.dtype,
                   store: ArtifactStore, key: str) -> ArtifactRecord:
    """Build the artifact of ``network`` for ``shape``/``dtype`` into ``store`` under ``key``, and record it.

    ``network`` is left as it is (a copy is converted). Raises what exporting or compiling raises.
    """
    folder = store.ensure_folder()
    started = time.perf_counter()
    converted = copy.deepcopy(network).to(dtype=dtype).to(memory_format=torch.channels_last)
    model = CastNetwork(converted, dtype).eval()
    example = torch.rand(shape).contiguous(memory_format=torch.channels_last)
    name = f"{stage}-{'x'.join(map(str, shape[-2:]))}-{precision_name(dtype)}-{key[:16]}.pt2"
    temp = folder / f".{os.getpid()}.{name}"  # torch wants the .pt2 ending
    try:
        with torch.no_grad():
            program = torch.export.export(model, (example,))
            if fmt == "inductor":
                torch._inductor.aoti_compile_and_package(program, package_path=str(temp),
                                                         inductor_configs={"freezing": True})
            else:
                torch.export.save(program, temp)
        os.chmod(temp, 0o600)
        os.replace(temp, folder / name)
    finally:
        temp.unlink(missing_ok=True)
    record = ArtifactRecord(key=key, file=name, sha256=sha256_file(folder / name), size=(folder / name).stat().st_size,
                            stage=stage, shape=list(shape), precision=precision_name(dtype), format=fmt,
                            torch=torch.__version__, cpu=devices.cpu_signature(),
                            build_seconds=round(time.perf_counter() - started, 3), created=time.time())
    store.record(record)
    return record


def load_artifact(path: Path, fmt: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The callable an artifact file holds (verified by the store before it gets here)."""
    if fmt == "inductor":
        # The package loader itself: torch._inductor.aoti_load_package wraps it, but importing torch._inductor
        # imports torch._dynamo (0.9 s of start-up here) for nothing a one-tensor network needs.
        loader_class = getattr(getattr(torch._C, "_aoti", None), "AOTIModelPackageLoader", None)
        if loader_class is None:  # pragma: no cover - a torch without it
            runner: Callable[[torch.Tensor], torch.Tensor] = torch._inductor.aoti_load_package(str(path))
            return runner
        loader = loader_class(str(path), "model", False, 1, -1)
        return lambda pixels: loader.boxed_run([pixels])[0]
    return torch.export.load(path).module()


def start_background_build(network: torch.nn.Module, *, fmt: str, stage: str, shape: tuple[int, ...],
                           dtype: torch.dtype, store: ArtifactStore, key: str) -> int | None:
    """Start a low-priority process that builds the artifact; returns its pid (``None``: a background build is running
    already, this one's or another's: ask again later).

    The builder's slot and the artifact's lock are taken here and handed to the process, which holds them until it
    exits: no second builder can start in the moment before it runs.
    """
    slot = store.try_lock(ANY_BUILD)
    if slot is None:
        return None
    mine = store.try_lock(key)
    try:
        if mine is None:
            return None
        folder = store.ensure_folder()
        module_file = folder / f".{key[:32]}.{os.getpid()}.network.pt"
        buffer = io.BytesIO()
        torch.save(network, buffer)
        data = buffer.getbuffer()
        fd = os.open(module_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        handed = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        modules = sorted({f"{type(module).__module__}:{type(module).__qualname__}" for module in network.modules()})
        request = folder / f".{key[:32]}.{os.getpid()}.request.json"
        request.write_text(json.dumps({"network": str(module_file), "network_file": handed, "modules": modules,
                                       "format": fmt, "stage": stage, "shape": list(shape),
                                       "precision": precision_name(dtype), "store": str(store.root), "key": key}))
        os.chmod(request, 0o600)
        # With no core to spare, even the lowest priority slows the run (measured: a folder 20% slower on 2 cores
        # with 2 threads): the build then waits until this process has ended or is idle.
        spare = len(os.sched_getaffinity(0)) > torch.get_num_threads() if hasattr(os, "sched_getaffinity") else True
        wait = [] if spare else ["--after", str(os.getpid())]
        with open(folder / "build.log", "ab") as log_file:
            os.chmod(folder / "build.log", 0o600)
            process = subprocess.Popen([sys.executable, "-m", "remaster.pipeline.artifact_build", *wait, str(request)],
                                       stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                                       start_new_session=True, close_fds=True, pass_fds=(slot, mine))
        return process.pid
    finally:
        os.close(slot)
        if mine is not None:
            os.close(mine)


def _lowest_priority() -> None:
    idle = getattr(os, "SCHED_IDLE", None)
    try:
        if idle is not None:
            os.sched_setscheduler(0, idle, os.sched_param(0))
        else:  # pragma: no cover - not Linux
            os.nice(19)
    except OSError:
        os.nice(19)


def _cpu_seconds(pid: int) -> float | None:
    """CPU time used so far by process ``pid`` (``None``: it is gone, or there is no ``/proc``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    if fields[0] == "Z":
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_quiet(pid: int, *, every: float = 2.0, busy: float = 0.2, limit: float = 12 * 3600) -> None:
    """Return once process ``pid`` has ended, or used less than ``busy`` of a core over ``every`` seconds (a server
    waiting for work, a command's last moments), or after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    last = _cpu_seconds(pid)
    while last is not None and time.monotonic() < deadline:
        time.sleep(every)
        now = _cpu_seconds(pid)
        if now is None or now - last < busy * every:
            return
        last = now


def module_classes(names: list[str]) -> tuple[list[Callable[..., Any]], str | None]:
    """The ``torch.nn.Module`` classes named ``module:qualname``; the first name that is not one (else ``None``)."""
    import importlib

    classes: list[Callable[..., Any]] = []
    for name in names:
        module_name, _, qualname = name.partition(":")
        try:
            found: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                found = getattr(found, part)
        except (ImportError, AttributeError, ValueError):
            return classes, name
        if not (isinstance(found, type) and issubclass(found, torch.nn.Module)):
            return classes, name
        classes.append(found)
    return classes, None


def main(argv: list[str] | None = None) -> int:
    """The background build: ``python -m remaster.pipeline.artifact_build [--after PID] REQUEST``."""
    args = list(argv if argv is not None else sys.argv[1:])
    request_file = Path(args[-1])
    request: dict[str, Any] = json.loads(request_file.read_text())
    network_file = Path(request["network"])
    _lowest_priority()
    if args[0] == "--after":
        wait_until_quiet(int(args[1]))
    torch.set_num_threads(1)
    store = ArtifactStore(Path(request["store"]))
    try:  # the builder's slot and the artifact's lock came with the process: held until it exits
        if store.verified(request["key"]) is not None:
            return 0
        # Checked as the artifacts are (written a moment ago by the process that asked, into the private 0700 folder,
        # owned by this user, writable by no one else, with the sha256 that process recorded), then read with
        # weights_only=True and only the module classes that process named allowed.
        problem = store.problem_with(network_file, **request["network_file"])
        classes, refused = module_classes(request.get("modules", []))
        if problem is not None or refused:
            why = problem or f"names {refused}, which is not a torch.nn.Module class"
            print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} refused {network_file.name}: it {why}", flush=True)
            return 1
        with torch.serialization.safe_globals(list[Any](classes)):
            network = torch.load(network_file, weights_only=True)
        network_file.unlink(missing_ok=True)
        if request["format"] == "inductor":
            torch._inductor.config.compile_threads = 1
        record = build_artifact(network, fmt=request["format"], stage=request["stage"], shape=tuple(request["shape"]),
                                dtype=devices.torch_dtype(request["precision"]), store=store, key=request["key"])
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} built {record.file} in {record.build_seconds:.1f} s",
              flush=True)
    finally:
        network_file.unlink(missing_ok=True)
        request_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
