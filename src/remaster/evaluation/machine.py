"""Where an evaluation ran: the CPU, the cores and threads, the versions and the date in a report's setup."""

from __future__ import annotations

import datetime as _dt
import os
import platform
from typing import Any

import torch

__all__ = ["cpu_model"]


def cpu_model() -> str:
    """The CPU's model name (from ``/proc/cpuinfo`` on Linux), or the platform's description."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def run_setup(degrade: str, factor: int, crop_border: int, y_channel: bool, device: torch.device,
           precision: str) -> dict[str, Any]:
    from remaster import __version__

    return {
        "degrade": degrade, "factor": factor, "crop_border": crop_border, "y_channel": y_channel,
        "device": str(device), "precision": precision, "cpu": cpu_model(), "cpu_count": _cpu_count(),
        "torch_threads": torch.get_num_threads(), "remaster": __version__, "torch": torch.__version__,
        "python": platform.python_version(),
        "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(), "total_seconds": 0.0,
    }
