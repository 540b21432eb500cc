"""A network stage run through compiled artifacts on the CPU (``compile="auto"`` or ``"on"``), eagerly until one is
ready.

One artifact serves one input shape and precision, so the pipeline asks :meth:`ArtifactRun.ready` for the one
window shape an image will be cut into (tiles of one fixed size; an image smaller than that on a side padded to a
multiple of :data:`BUCKET` there) before deciding how to tile it:

* ``on``: a missing artifact is built now, in this process, and the image waits for it (its time is reported);
* ``auto``: a cached artifact is used from the first tile; a missing one is built by a low-priority process of its
  own while this image runs eagerly exactly as with ``off``, and used by later images and later runs once it is
  there. Nothing waits for a compile.

Every failure (building, loading or running an artifact) is logged once and the stage runs eagerly from then on.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from remaster.errors import RemasterError
from remaster.pipeline.artifact_build import artifact_key, build_artifact, load_artifact, start_background_build
from remaster.pipeline.stage import CompileTarget, RunContext
from remaster.plugin.specs import precision_name
from remaster.weights.artifacts import ARTIFACTS_DIR, ArtifactStore
from remaster.weights.cache import cache_dir

__all__ = ["ArtifactRun", "CompileSettings", "BUCKET", "BACKGROUND_ENV", "MAX_WINDOW", "compiled_tile"]

log = logging.getLogger("remaster.pipeline")

#: A side shorter than the compiled window is padded up to a multiple of this (at most 15 pixels, then cropped):
#: few shapes to build, little work added.
BUCKET = 16
#: The largest window side a compiled stage runs under ``--tile auto``: a side up to this runs whole (padded to a
#: multiple of :data:`BUCKET`), a longer one in equal windows of at most this.
MAX_WINDOW = 1024
#: Set to ``0`` to never start background builds (``auto`` then uses cached artifacts only); the test suite does.
BACKGROUND_ENV = "REMASTER_COMPILE_BACKGROUND"
#: How often ``auto`` looks in the cache again for an artifact a background build is making.
_LOOK_AGAIN_S = 2.0

RunFn = Callable[[torch.Tensor, RunContext], torch.Tensor]


@dataclass(frozen=True)
class CompileSettings:
    """Where a pipeline's compiled artifacts live and how it may make them; built once by the entry point.

    Attributes:
        store: The artifacts folder.
        background: ``auto`` may start background builds.
        compiler: The C++ compiler inductor would use (``None``: none found, so AOTInductor cannot build).
    """

    store: ArtifactStore
    background: bool = True
    compiler: str | None = None

    @classmethod
    def from_environment(cls) -> CompileSettings:
        """The user's cache (``$REMASTER_CACHE``), ``$REMASTER_COMPILE_BACKGROUND`` and the ``$CXX``/``g++`` found."""
        compiler = os.environ.get("CXX", "").strip() or "g++"
        return cls(store=ArtifactStore(cache_dir() / ARTIFACTS_DIR),
                   background=os.environ.get(BACKGROUND_ENV, "").strip() != "0",
                   compiler=shutil.which(compiler) or shutil.which("c++"))


def compiled_tile(height: int, width: int, context: int, multiple: int) -> int:
    """The tile of a compiled stage under ``--tile auto`` for an image of ``height`` x ``width`` (padded to
    ``multiple``), ``context`` being what the tiler adds around a tile: the whole image when its longer side fits
    in :data:`MAX_WINDOW`, else the core of equal windows of at most that side. Little more work than eager: no
    window is much larger than what it must cover."""
    longest = max(height, width)
    longest += -longest % multiple
    if longest <= MAX_WINDOW:
        return longest
    core = max(multiple, MAX_WINDOW - context)
    count = -(-longest // core)
    tile = -(-longest // count)
    return tile + -tile % multiple


#: Said once per process: no C++ compiler, so ``auto`` stays eager.
_told_no_compiler: list[bool] = []


class ArtifactRun:
    """A stage's ``run`` through its artifacts where one is loaded for the call's shape and precision, else eager.

    Args:
        run: The stage's own ``run(pixels, ctx)``.
        target: What the artifacts are built from.
        name: The stage.
        mode: ``"auto"`` or ``"on"``.
        fmt: ``"inductor"`` or ``"export"``.
        settings: The store, background builds, the compiler.
    """

    def __init__(self, run: RunFn, target: CompileTarget, *, name: str, mode: str, fmt: str,
                 settings: CompileSettings):
        self._eager, self._target, self.name = run, target, name
        self.mode, self.fmt, self.settings = mode, fmt, settings
        self._runners: dict[tuple[tuple[int, ...], torch.dtype], Callable[[torch.Tensor], torch.Tensor]] = {}
        self._looked: dict[str, float] = {}
        self._requested: set[str] = set()
        self.failed = False
        self._files: dict[tuple[tuple[int, ...], torch.dtype], str] = {}
        self._report: dict[str, Any] = {}
        self._used: str | None = None  # the artifact the image since the last report ran with

    def ready(self, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> bool:
        """Whether calls of ``shape``/``dtype`` run an artifact: loads a cached one, builds one now (``on``), or
        starts a background build (``auto``) and says no."""
        if self.failed:
            return False
        if (shape, dtype) in self._runners:
            return True
        if self.fmt == "inductor" and self.settings.compiler is None:
            if not _told_no_compiler:
                _told_no_compiler.append(True)
                log.warning("no C++ compiler (g++) found: network stages run without compiling; install g++ "
                            "to let remaster compile them for this CPU")
            self._report["compile_skipped"] = "no C++ compiler"
            return False
        key = artifact_key(fmt=self.fmt, stage=self.name, identity=self._target.identity, shape=shape, dtype=dtype,
                           device=device)
        now = time.monotonic()
        if self.mode == "auto" and now - self._looked.get(key, -_LOOK_AGAIN_S) < _LOOK_AGAIN_S:
            return False
        self._looked[key] = now
        try:
            path = self.settings.store.verified(key)
            if path is None and self.mode == "on":
                path = self._build_now(key, shape, dtype)
            if path is None:
                self._ask_for(key, shape, dtype)
                return False
            runner = load_artifact(path, self.fmt)
        except RemasterError:
            raise
        except Exception as exc:
            self._fail("building or loading", exc)
            return False
        self._runners[shape, dtype] = runner
        self._files[shape, dtype] = str(path)
        return True

    def __call__(self, pixels: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        call = (tuple(pixels.shape), ctx.dtype)
        runner = None if self.failed else self._runners.get(call)
        if runner is None:
            return self._eager(pixels, ctx)
        try:
            out = runner(pixels.contiguous(memory_format=torch.channels_last))
        except Exception as exc:
            self._fail("running", exc)
            return self._eager(pixels, ctx)
        self._used = self._files[call]
        return out

    def take_report(self) -> dict[str, Any]:
        """For ``meta.extras["stages"]``: ``compiled`` (the format, or ``"eager"``), ``artifact`` (its file),
        ``compile_seconds`` when this image waited for a build, ``compile_pending`` while a background build runs,
        ``compile_failed`` after a failure."""
        report = dict(self._report)
        report["compiled"] = self.fmt if self._used and not self.failed else "eager"
        if self._used and not self.failed:
            report["artifact"] = self._used
        for once in ("compile_seconds", "compile_failed", "compile_pending"):
            self._report.pop(once, None)
        self._used = None
        return report

    def _build_now(self, key: str, shape: tuple[int, ...], dtype: torch.dtype) -> Path | None:
        started = time.perf_counter()
        with self.settings.store.building(key) as mine:
            if mine:
                log.info("%s: compiling for %s input in %s (%s); this image waits for it", self.name,
                         "x".join(map(str, shape)), precision_name(dtype), self.fmt)
                build_artifact(self._target.network(), fmt=self.fmt, stage=self.name, shape=shape, dtype=dtype,
                               store=self.settings.store, key=key)
        if not mine:  # another process is building it: wait for that one, bounded
            deadline = time.monotonic() + 600
            while self.settings.store.is_building(key) and time.monotonic() < deadline:
                time.sleep(0.5)
        seconds = time.perf_counter() - started
        self._report["compile_seconds"] = round(self._report.get("compile_seconds", 0.0) + seconds, 3)
        log.info("%s: compiled for %s input in %.1f s", self.name, "x".join(map(str, shape)), seconds)
        return self.settings.store.verified(key)

    def _ask_for(self, key: str, shape: tuple[int, ...], dtype: torch.dtype) -> None:
        if self.mode != "auto" or not self.settings.background:
            return
        if key in self._requested:
            self._report["compile_pending"] = True
            return
        pid = start_background_build(self._target.network(), fmt=self.fmt, stage=self.name, shape=shape,
                                     dtype=dtype, store=self.settings.store, key=key)
        self._report["compile_pending"] = True
        if pid is not None:  # else another build runs: asked again when the cache is next looked at
            self._requested.add(key)
            log.info("%s: compiling for %s input in %s in the background (process %d, lowest priority); this run "
                     "goes on uncompiled, later images and runs use it (remaster cache list)", self.name,
                     "x".join(map(str, shape)), precision_name(dtype), pid)

    def _fail(self, doing: str, exc: Exception) -> None:
        self.failed = True
        self._report["compile_failed"] = True
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        log.warning("%s: %s its compiled form (%s) failed, running eagerly instead: %s%s", self.name, doing,
                    self.fmt, type(exc).__name__, f": {first_line}" if first_line else "")
