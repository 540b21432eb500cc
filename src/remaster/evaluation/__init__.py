"""Evaluate upscalers the way super-resolution papers do: degrade, upscale, score, compare.

>>> from remaster.evaluation import evaluate
>>> report = evaluate(["hr/a.png", "hr/b.png"], candidates=["bicubic", "realesrgan-x4plus"],
...                   crop_border=4, y_channel=True, out_dir="report")
>>> report.mean("realesrgan-x4plus", "psnr")

Each high-resolution (HR) image is cropped so that its size is a multiple of the
degradation's factor, degraded (by default ×1/4 bicubic, Gaussian noise, JPEG),
rounded to its bit depth as if saved as PNG, upscaled by every candidate back
to exactly the HR size, and scored against the HR image with the shared metrics
(:mod:`remaster.metrics`). :func:`compare_images` scores two images. The
command-line tool's ``remaster eval`` and ``remaster compare`` are thin layers
over these two functions. See ``docs/quality.md``.

The modules, each importing only those above it:

- ``defaults``: the default degradation and metrics (imports nothing, for ``remaster --help``);
- ``choices``: metric strings and candidates read and checked before any work;
- ``report``: :class:`Report`, its Markdown/CSV/JSON and the number formatting;
- ``machine``: the CPU, threads and versions recorded in a report's setup;
- ``scoring``: one metric on a pair of numpy images, and the warnings of those not measured;
- ``sheets``: the comparison sheets;
- ``run``: :func:`evaluate` and :func:`compare_images`.

The names below are imported from their module on first use (PEP 562), so that reading
``DEFAULT_METRICS`` does not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from remaster.lazy import LazyExports

if TYPE_CHECKING:  # what type checkers and editors see; at run time __getattr__ imports on demand
    from remaster.evaluation.choices import (
        MetricChoice,
        candidate_pipeline,
        check_metric_weights,
        parse_metrics,
        split_list,
    )
    from remaster.evaluation.defaults import COMPARE_METRICS, DEFAULT_DEGRADE, DEFAULT_METRICS
    from remaster.evaluation.machine import cpu_model
    from remaster.evaluation.report import ImageInfo, Report, format_value, json_number
    from remaster.evaluation.run import ProgressCallback, compare_images, evaluate
    from remaster.evaluation.sheets import SHEET_GAP, SHEET_PANEL, detail_crop, sheet_width

__all__ = [
    "evaluate",
    "compare_images",
    "ProgressCallback",
    "Report",
    "ImageInfo",
    "MetricChoice",
    "DEFAULT_DEGRADE",
    "DEFAULT_METRICS",
    "COMPARE_METRICS",
    "split_list",
    "parse_metrics",
    "check_metric_weights",
    "candidate_pipeline",
    "format_value",
    "json_number",
    "sheet_width",
    "detail_crop",
    "cpu_model",
    "SHEET_PANEL",
    "SHEET_GAP",
]

#: Each name this package re-exports → the module of it that defines the name.
_EXPORTS = {
    "DEFAULT_DEGRADE": "defaults",
    "DEFAULT_METRICS": "defaults",
    "COMPARE_METRICS": "defaults",
    "MetricChoice": "choices",
    "split_list": "choices",
    "parse_metrics": "choices",
    "check_metric_weights": "choices",
    "candidate_pipeline": "choices",
    "Report": "report",
    "ImageInfo": "report",
    "format_value": "report",
    "json_number": "report",
    "cpu_model": "machine",
    "SHEET_PANEL": "sheets",
    "SHEET_GAP": "sheets",
    "sheet_width": "sheets",
    "detail_crop": "sheets",
    "evaluate": "run",
    "compare_images": "run",
    "ProgressCallback": "run",
}

_lazy = LazyExports(globals(), _EXPORTS)


def __getattr__(name: str) -> Any:
    return _lazy.get(name)


def __dir__() -> list[str]:
    return _lazy.names()
