"""Stages that misbehave on purpose, for the reliability tests (tests/test_corpus.py, tests/test_batch.py).

Installed for a test by writing a throw-away dist-info whose entry point names this module, so the
plugin is found the way any third-party plugin is (also by a real ``remaster`` subprocess).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from remaster import Param, Stage, StageInfo, StageKind, StageSpec, Tiling, hookimpl


class _Fault(Stage):
    """Takes whatever parameters its spec declares (kept in ``self.params`` by :class:`Stage`)."""


class Raises(_Fault):
    def run(self, pixels, ctx):
        raise RuntimeError("simulated failure inside a plugin")


class WrongShape(_Fault):
    def run(self, pixels, ctx):
        return pixels[..., :-1, :]


class WrongDtype(_Fault):
    def run(self, pixels, ctx):
        return (pixels * 255).round().to(torch.uint8)


class WrongRange(_Fault):
    def run(self, pixels, ctx):
        return pixels * 255  # 0-255 floats: clamping would give a white image


class NaNInReducedPrecision(_Fault):
    """NaN only when asked to compute in bf16/fp16, as an overflowing network would."""

    def run(self, pixels, ctx):
        if ctx.dtype != torch.float32:
            return pixels * float("nan")
        return pixels.clone()


class AlwaysNaN(_Fault):
    def run(self, pixels, ctx):
        out = pixels.clone()
        out[..., 0, 0] = float("inf")
        return out


class CountsFaces(_Fault):
    """Reports a face count the way the face stage does, as a numpy integer."""

    def run(self, pixels, ctx):
        ctx.report["faces"] = np.int64(self.params.get("faces", 2))
        return pixels


class Slow(_Fault):
    """Sleeps in small steps (so Ctrl-C lands quickly), then returns its input."""

    def run(self, pixels, ctx):
        deadline = time.monotonic() + self.params.get("seconds", 0.5)
        while time.monotonic() < deadline:
            time.sleep(0.01)
        return pixels.clone()


class Crash(_Fault):
    """Ends its whole process, as a segfault or the OOM killer would (tests/distributed).

    Only on images ``width`` pixels wide (0: any); with ``marker``, only once: the first run creates the marker file.
    """

    def run(self, pixels, ctx):
        width, marker = self.params.get("width", 0), self.params.get("marker", "")
        if width and pixels.shape[-1] != width:
            return pixels.clone()
        if marker:
            try:
                Path(marker).touch(exist_ok=False)
            except FileExistsError:
                return pixels.clone()
        os._exit(3)


_LOW = (torch.float32, torch.bfloat16)


@hookimpl
def remaster_register_stages(register):
    for name, factory, info, params in [
        ("fault.raise", Raises, StageInfo(), ()),
        ("fault.shape", WrongShape, StageInfo(), ()),
        ("fault.dtype", WrongDtype, StageInfo(), ()),
        ("fault.range", WrongRange, StageInfo(), ()),
        ("fault.nan-low-precision", NaNInReducedPrecision, StageInfo(dtypes=_LOW, tiling=Tiling.UNSUPPORTED), ()),
        ("fault.inf", AlwaysNaN, StageInfo(tiling=Tiling.UNSUPPORTED), ()),
        ("fault.faces", CountsFaces, StageInfo(), (Param("faces", int, 2, min=0),)),
        ("fault.crash", Crash, StageInfo(tiling=Tiling.UNSUPPORTED),
         (Param("width", int, 0, min=0), Param("marker", str, ""))),
        ("fault.slow", Slow, StageInfo(tiling=Tiling.UNSUPPORTED), (Param("seconds", float, 0.5, min=0),)),
    ]:
        register(StageSpec(name, StageKind.FILTER, factory, summary="misbehaves on purpose (tests)", info=info,
                           params=params))

