"""Device and precision choice.

The pipeline asks here which device to run on and which precision each stage
computes in, so that "auto" means the same thing everywhere and a bad request
fails early with a :class:`~remaster.errors.UsageError` rather than deep inside
a stage.
"""

from __future__ import annotations

import contextlib
import functools
import re
from typing import Any

import torch

from .errors import UsageError

__all__ = [
    "resolve_device",
    "cpu_supports_fast_bf16",
    "resolve_precision",
    "autocast_context",
    "describe_device",
    "PRECISIONS",
]

#: Precision names accepted on the command line and in the API.
PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_NAMES = {dtype: name for name, dtype in PRECISIONS.items()}
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")
_DEVICE_HINT = "use auto, cpu, cuda or cuda:N"


def resolve_device(requested: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` into a usable device.

    ``"auto"`` picks the current CUDA device when there is one, else the CPU.

    Raises:
        UsageError: for an unknown name, or a CUDA device that is not there.
    """
    text = str(requested).strip().lower()
    match = _DEVICE_RE.match(text)
    if match is None or (match.group(1) == "auto" and match.group(2) is not None):
        raise UsageError(f"unknown device {str(requested)!r}", hint=_DEVICE_HINT)
    kind, index = match.group(1), match.group(2)
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UsageError(
            f"device {text!r} was requested but CUDA is not available",
            hint="use --device cpu, or install a CUDA build of PyTorch and check the NVIDIA driver",
        )
    if index is None:
        return torch.device("cuda", torch.cuda.current_device())
    count = torch.cuda.device_count()
    if int(index) >= count:
        raise UsageError(
            f"device {text!r} does not exist: there {'is' if count == 1 else 'are'} {count} CUDA "
            f"device{'' if count == 1 else 's'}",
            hint=f"use cuda:0 to cuda:{count - 1}" if count > 1 else "use cuda or cuda:0",
        )
    return torch.device("cuda", int(index))


def _cpuinfo_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def _has_amx() -> bool:
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)
    if check is not None:
        try:
            return bool(check())
        except Exception:  # a private helper: any failure means "don't know"
            pass
    return "amx_bf16" in _cpuinfo_flags()


def _has_avx512_bf16() -> bool:
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    if check is not None:
        try:
            return bool(check())
        except Exception:
            pass
    return "avx512_bf16" in _cpuinfo_flags()


@functools.lru_cache(maxsize=None)
def cpu_supports_fast_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AMX-BF16 or AVX512-BF16).

    Without either, PyTorch emulates bf16 and it is slower than fp32, so
    "auto" precision only picks bf16 on CPUs where this is true.
    """
    return _has_amx() or _has_avx512_bf16()


def resolve_precision(requested: str, device: torch.device, supported: tuple[torch.dtype, ...]) -> torch.dtype:
    """Choose the compute dtype for a stage.

    Args:
        requested: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        device: Where the stage runs.
        supported: Dtypes the stage supports (:attr:`StageInfo.dtypes`).

    ``"auto"`` prefers fp16 on CUDA (bf16 when the stage lacks fp16 and the GPU
    has bf16), bf16 on CPUs with native bf16, and fp32 otherwise.

    Raises:
        UsageError: for an unknown name, fp16 on the CPU, or a precision the
            stage does not support.
    """
    name = str(requested).strip().lower()
    if name != "auto" and name not in PRECISIONS:
        raise UsageError(f"unknown precision {requested!r}", hint="use auto, fp32, bf16 or fp16")
    stage_names = ", ".join(_NAMES.get(dtype, str(dtype)) for dtype in supported) or "none"
    if name != "auto":
        dtype = PRECISIONS[name]
        if dtype is torch.float16 and device.type == "cpu":
            raise UsageError("fp16 is not supported on CPU, use bf16 or fp32")
        if dtype not in supported:
            raise UsageError(f"this stage does not support {name}", hint=f"it supports {stage_names}")
        return dtype

    if device.type == "cuda":
        if torch.float16 in supported:
            return torch.float16
        if torch.bfloat16 in supported and torch.cuda.is_bf16_supported():
            return torch.bfloat16
    elif device.type == "cpu" and torch.bfloat16 in supported and cpu_supports_fast_bf16():
        return torch.bfloat16
    if torch.float32 in supported:
        return torch.float32
    # A stage without fp32: take what it has, as long as the device can run it.
    for dtype in supported:
        if not (dtype is torch.float16 and device.type == "cpu"):
            return dtype
    raise UsageError(f"no precision this stage supports ({stage_names}) runs on {device.type}",
                     hint="run it on another device")


def autocast_context(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager[Any]:
    """Autocast to ``dtype`` on ``device``; a no-op context for fp32."""
    if dtype in (torch.float16, torch.bfloat16):
        return torch.autocast(device.type, dtype=dtype)
    return contextlib.nullcontext()


def describe_device(device: torch.device) -> str:
    """One line for logs, e.g. ``"cpu (AVX2, 2 threads)"`` or ``"cuda:0 (NVIDIA H100, 79.1 GiB)"``."""
    if device.type == "cuda":
        index = torch.cuda.current_device() if device.index is None else device.index
        props = torch.cuda.get_device_properties(index)
        return f"cuda:{index} ({props.name}, {props.total_memory / 2**30:.1f} GiB)"
    if device.type == "cpu":
        if _has_amx():
            isa = "AMX"
        elif _has_avx512_bf16():
            isa = "AVX512-BF16"
        else:
            capability = getattr(torch.backends.cpu, "get_cpu_capability", None)
            isa = capability() if capability is not None else "unknown ISA"
        threads = torch.get_num_threads()
        return f"cpu ({isa}, {threads} thread{'' if threads == 1 else 's'})"
    return str(device)
