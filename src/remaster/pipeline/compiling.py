"""``torch.compile`` in the process for network stages (``compile="on"`` on CUDA, or with a ``torch.compile`` backend
other than the artifact formats): timed, with an eager fallback. On the CPU, compiled stages run cached artifacts
instead (:mod:`remaster.pipeline.artifact_run`).

Compiling pays off only when the same shapes come back: the pipeline runs a
compiled stage on tiles of one fixed size (:func:`remaster.pipeline.tiling.run_tiled`
with ``fixed_window``), so one compilation serves every tile of every image
larger than the window; calls of any other size (an image smaller than the
window on an axis) run eagerly rather than on padded input, which would change
the result at the image's edge.
Compilation happens lazily, inside the first call with a new input shape,
dtype or precision; :class:`CompiledRun` times those calls (compilation plus
one forward pass) and reports them, and when compiling fails it warns once
and runs the stage eagerly from then on, so ``--compile`` never costs a run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import torch

from remaster.errors import RemasterError
from remaster.pipeline.stage import RunContext
from remaster.pipeline.tiling import is_out_of_memory

__all__ = ["CompiledRun", "DEFAULT_COMPILE_TILE", "backend_name"]

log = logging.getLogger(__name__)

#: Tile size of a compiled stage when ``tile="auto"``: large enough to fill a GPU, one shape for every image.
DEFAULT_COMPILE_TILE = 512

RunFn = Callable[[torch.Tensor, RunContext], torch.Tensor]


def backend_name(backend: str | Callable[..., Any]) -> str:
    """How a ``torch.compile`` backend is named in reports: its name, or the callable's."""
    return backend if isinstance(backend, str) else getattr(backend, "__name__", type(backend).__name__)


class CompiledRun:
    """A stage's ``run`` compiled with ``torch.compile``, called like it.

    Args:
        run: The stage's ``run(pixels, ctx)``.
        name: The stage, for log lines.
        backend: A ``torch.compile`` backend name or callable.

    Attributes:
        failed: Compiling failed once; every call since runs eagerly.
    """

    def __init__(self, run: RunFn, *, name: str, backend: str | Callable[..., Any] = "inductor"):
        self.name, self.backend = name, backend
        #: The one input size (height, width) that is compiled; calls of other sizes (an image smaller than the
        #: window on an axis, or after an out-of-memory back-off) run eagerly, exactly. ``None``: any size.
        self.window: tuple[int, int] | None = None
        self._eager = run
        # dynamic=False: one specialised graph per tile shape, which the fixed tile size keeps to one.
        self._compiled: RunFn = torch.compile(run, backend=backend, dynamic=False)
        self.failed = False
        self._seen: set[tuple[Any, ...]] = set()
        self._seconds = 0.0  # compilation time not yet reported (take_report)
        self._note_failure = False

    def __call__(self, pixels: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        if self.failed or (self.window is not None and tuple(pixels.shape[-2:]) != self.window):
            return self._eager(pixels, ctx)
        key = (tuple(pixels.shape), pixels.dtype, pixels.device, ctx.dtype,
               torch.is_autocast_enabled(pixels.device.type))
        first = key not in self._seen
        started = time.perf_counter()
        try:
            out = self._compiled(pixels, ctx)
        except RemasterError:
            raise  # the stage's own verdict, compiled or not
        except Exception as exc:
            if is_out_of_memory(exc):
                raise  # the tiler backs off to smaller tiles (a new shape, compiled again)
            self.failed = self._note_failure = True
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            log.warning("%s: torch.compile (backend %s) failed, running eagerly instead: %s%s", self.name,
                        backend_name(self.backend), type(exc).__name__, f": {first_line}" if first_line else "")
            return self._eager(pixels, ctx)
        if first:
            if pixels.device.type == "cuda":
                torch.cuda.synchronize(pixels.device)  # the compiled kernels' first run is part of the cost
            seconds = time.perf_counter() - started
            self._seen.add(key)
            self._seconds += seconds
            log.info("%s: compiled for %s input (%s, backend %s) in %.1f s", self.name,
                     "x".join(map(str, pixels.shape)), str(ctx.dtype).removeprefix("torch."),
                     backend_name(self.backend), seconds)
        return out

    def take_report(self) -> dict[str, Any]:
        """For ``meta.extras["stages"]``: ``compiled`` (the backend, or ``"eager"`` after a failure) and
        ``compile_seconds`` (time spent compiling since the last report, first calls included), when any."""
        report: dict[str, Any] = {"compiled": "eager" if self.failed else backend_name(self.backend)}
        if self._note_failure:
            report["compile_failed"] = True
            self._note_failure = False
        if self._seconds:
            report["compile_seconds"] = round(self._seconds, 3)
            self._seconds = 0.0
        return report
