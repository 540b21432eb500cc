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
"""

from __future__ import annotations

import csv
import datetime as _dt
import inspect
import io as _io
import json
import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from . import io
from .errors import OutputError, UsageError
from .image import Image, Meta
from .metrics import MetricError, MetricSpec
from .pipeline import Remasterer, format_stage, parse_pipeline, parse_stage, resolve_spec, split_top_level
from .plugins import PluginHost, get_host

__all__ = [
    "evaluate",
    "compare_images",
    "Report",
    "MetricChoice",
    "DEFAULT_DEGRADE",
    "DEFAULT_METRICS",
    "COMPARE_METRICS",
    "split_list",
    "parse_metrics",
    "check_metric_weights",
    "candidate_pipeline",
    "format_value",
    "sheet_width",
    "detail_crop",
    "cpu_model",
    "SHEET_PANEL",
    "SHEET_GAP",
]

#: The degradation ``evaluate`` applies unless told otherwise: ×1/4 bicubic, mild noise, JPEG.
DEFAULT_DEGRADE = "degrade.downsample(scale=0.25) | degrade.noise(sigma=5, seed=0) | degrade.jpeg(quality=75)"

#: Metrics ``evaluate`` computes unless told otherwise (LPIPS/VGG need weights: only when asked for).
DEFAULT_METRICS = ("psnr", "ssim", "niqe")

#: Metrics ``compare_images`` computes unless told otherwise.
COMPARE_METRICS = ("psnr", "ssim")

#: Side of one panel of a comparison sheet, in pixels.
SHEET_PANEL = 256
#: Space around and between the panels of a comparison sheet, in pixels.
SHEET_GAP = 8

#: Options the evaluation sets for every metric; a metric string may not set them itself.
_RESERVED_OPTIONS = ("data_range", "crop_border", "y_channel", "reduction")

#: Decimals shown for a metric in tables and sheets (others: 4).
_DECIMALS = {"psnr": 2, "ssim": 4, "ms_ssim": 4, "niqe": 3, "lpips": 4, "vgg": 4, "seconds": 3}
_UNITS = {"psnr": " dB"}

ProgressCallback = Callable[[int, int, str], None]


# ----------------------------------------------------------------------------------------------- parsing


def split_list(text: str) -> list[str]:
    """Split ``"a, b(x=1, y=2), c"`` at the commas outside parentheses; empty items are dropped."""
    return [item for item in split_top_level(text, ",") if item]


@dataclass(frozen=True)
class MetricChoice:
    """One requested metric: the text as given (its label in reports), its spec and its options.

    Attributes:
        label: ``"psnr"`` or ``"lpips(net=vgg)"``, as the user wrote it.
        spec: The registered metric.
        options: Keyword options from the text (``{"net": "vgg"}``).
    """

    label: str
    spec: MetricSpec
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    def accepts(self, option: str) -> bool:
        """Whether the metric function takes the keyword ``option``."""
        return option in _keywords(self.spec)[0]


def _keywords(spec: MetricSpec) -> tuple[set[str], bool]:
    """The keyword parameters of a metric function, and whether it takes ``**kwargs``."""
    try:
        parameters = inspect.signature(spec.load()).parameters.values()
    except (TypeError, ValueError):  # a builtin or C function without a signature: accept anything
        return set(), True
    names = {p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    return names, any(p.kind is p.VAR_KEYWORD for p in parameters)


def parse_metrics(metrics: str | Sequence[str], *, host: PluginHost | None = None) -> list[MetricChoice]:
    """Look up metric strings (``"psnr"``, ``"lpips(net=vgg)"``) and check their options; no work is done.

    Raises:
        UnknownMetricError: a name is not registered (exit code 2).
        UsageError: a malformed string, an unknown option, an option the evaluation sets itself, or a repeat.
    """
    host = host.ensure_loaded() if host is not None else get_host()
    texts = split_list(metrics) if isinstance(metrics, str) else [str(m).strip() for m in metrics]
    if not texts:
        raise UsageError("no metrics given", hint=f"e.g. {','.join(DEFAULT_METRICS)}")
    choices: list[MetricChoice] = []
    for text in texts:
        name, options = parse_stage(text)
        spec = host.metrics.get(name)  # UnknownMetricError with the closest names
        reserved = sorted(set(options) & set(_RESERVED_OPTIONS))
        if reserved:
            raise UsageError(f"metric {text!r}: {', '.join(reserved)} is set for every metric",
                             hint="use --crop-border / --y-channel (crop_border=, y_channel= in Python)")
        keywords, var_keyword = _keywords(spec)
        unknown = sorted(set(options) - keywords) if not var_keyword else []
        if unknown:
            valid = sorted(keywords - {"data_range", "reduction", "crop_border", "y_channel"})
            raise UsageError(f"metric {name!r} has no option {', '.join(unknown)}",
                             hint=f"its options: {', '.join(valid) or 'none'}")
        if any(choice.label == text for choice in choices):
            raise UsageError(f"metric {text!r} is given twice")
        choices.append(MetricChoice(text, spec, options))
    return choices


def _metric_weights(choice: MetricChoice) -> tuple[str, ...]:
    """The weights files this configuration of a metric reads (LPIPS needs only its own network's)."""
    if choice.spec.func == "remaster.metrics.perceptual:lpips":
        from .metrics.perceptual import WEIGHTS

        net = str(choice.options.get("net", "alex"))
        if net in ("alex", "vgg"):
            return (WEIGHTS["vgg16" if net == "vgg" else "alexnet"], WEIGHTS[f"lpips-{net}"])
    return tuple(choice.spec.weights)


def check_metric_weights(choices: Sequence[MetricChoice], *, host: PluginHost | None = None) -> None:
    """Make sure the weights of every chosen metric are in the cache (checked by sha256); never downloads.

    Raises:
        WeightsNotFoundError: a file is missing; the message names the command that gets it.
        ChecksumError: a cached file is damaged (it is quarantined).
    """
    names = [name for choice in choices for name in _metric_weights(choice)]
    if not names:
        return
    from .weights import get_manager

    manager = get_manager(host)
    for name in dict.fromkeys(names):
        manager.ensure(name)


def candidate_pipeline(candidate: str, factor: int, *, host: PluginHost | None = None) -> list[str]:
    """The stage strings of a candidate, with ``scale=factor`` given to its scaling stage.

    A candidate is a stage string (``"bicubic"``, ``"realesrgan-x4plus"``, ``"lanczos(scale=4)"``) or a
    pipeline of them. Unless a stage of it already sets its scale, the first stage that takes a scale
    parameter gets the one that makes the whole candidate enlarge by ``factor`` (fixed-scale networks
    resample their native result to it).

    Raises:
        UnknownStageError, StageParamError, UsageError: the candidate cannot be read.
    """
    host = host.ensure_loaded() if host is not None else get_host()
    items = [parse_stage(item) for item in parse_pipeline(candidate)]
    specs = [resolve_spec(name, host) for name, _ in items]
    given = any(spec.info.scale_param and spec.info.scale_param in params for (_, params), spec in zip(items, specs))
    if not given:
        target = next((i for i, spec in enumerate(specs) if spec.info.scale_param), None)
        if target is not None:
            others = math.prod(spec.info.scale_for(spec.resolve_params(params))
                               for i, ((_, params), spec) in enumerate(zip(items, specs)) if i != target)
            name, params = items[target]
            items[target] = (name, {**params, str(specs[target].info.scale_param): float(factor) / others})
    return [format_stage(name, params) for name, params in items]


# ----------------------------------------------------------------------------------------------- values


def format_value(metric: str, value: float | None) -> str:
    """A score as the reports show it: fixed decimals per metric, ``inf``, or ``–`` when there is none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    name, _ = parse_stage(metric) if "(" in metric else (metric, None)
    return f"{value:.{_DECIMALS.get(name, 4)}f}"


def _json_number(value: float | None) -> Any:
    """Finite floats as they are; infinities as the strings ``"inf"``/``"-inf"``; NaN/None as ``null``."""
    if value is None or math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def _csv_number(value: float | None) -> str:
    if value is None or math.isnan(value):
        return ""
    return repr(float(value))


def _mean(values: Sequence[float]) -> float:
    """Mean of the values that were measured (NaN: not measured); NaN if none was."""
    kept = [v for v in values if not math.isnan(v)]
    if not kept:
        return math.nan
    if any(math.isinf(v) for v in kept):
        return float(np.mean(kept))  # +inf (or nan for +inf and -inf together), as numpy says
    return math.fsum(kept) / len(kept)


# ----------------------------------------------------------------------------------------------- report


@dataclass
class ImageInfo:
    """One evaluated image: its name in the report, where it came from, its sizes ``(width, height)``."""

    name: str
    source: str | None
    hr_size: tuple[int, int]
    lr_size: tuple[int, int]
    sheet: str | None = None


@dataclass
class Report:
    """The scores of an evaluation. Values are floats; ``nan`` means "not measured" (see ``warnings``).

    Attributes:
        images: The images, in order.
        candidates: Candidate labels (as given) → the pipeline that ran.
        metrics: The metric choices, in order.
        scores: ``scores[candidate][image][metric]``.
        seconds: ``seconds[candidate][image]``: wall time of the upscaling alone (not the scoring).
        originals: ``originals[image][metric]`` for the no-reference metrics, measured on the HR image.
        setup: What was run and where (degradation, factor, crop, device, versions, CPU, date).
        precisions: ``precisions[candidate][image]``: each stage with the precision it ran in,
            e.g. ``"realesrgan-x4plus [bf16]"`` (``--precision auto`` chooses per machine and per image).
        warnings: Metrics that could not be measured on some image, and why.
        files: Files written: ``"md"``, ``"csv"``, ``"json"``, and ``"sheet:<image>"`` per sheet.
    """

    images: list[ImageInfo]
    candidates: dict[str, str]
    metrics: list[MetricChoice]
    scores: dict[str, dict[str, dict[str, float]]]
    seconds: dict[str, dict[str, float]]
    originals: dict[str, dict[str, float]]
    setup: dict[str, Any]
    precisions: dict[str, dict[str, str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def metric_labels(self) -> list[str]:
        return [m.label for m in self.metrics]

    @property
    def no_reference(self) -> list[str]:
        return [m.label for m in self.metrics if not m.spec.needs_reference]

    def mean(self, candidate: str, metric: str) -> float:
        """Mean of a metric over the images (those where it could be measured)."""
        return _mean([self.scores[candidate][image.name][metric] for image in self.images])

    def precision_of(self, candidate: str) -> str:
        """What ``candidate`` ran in, over all images (``"a [bf16]"``, or each variant joined by ``"; "``)."""
        seen = dict.fromkeys(self.precisions.get(candidate, {}).values())
        return "; ".join(seen) or "–"

    def mean_seconds(self, candidate: str) -> float:
        return _mean([self.seconds[candidate][image.name] for image in self.images])

    def original_mean(self, metric: str) -> float:
        return _mean([self.originals[image.name][metric] for image in self.images])

    def best(self, metric: str, values: dict[str, float]) -> set[str]:
        """The candidates with the best of ``values`` for ``metric`` (ties included)."""
        choice = next(m for m in self.metrics if m.label == metric)
        finite = {k: v for k, v in values.items() if not math.isnan(v)}
        if len(finite) < 2:
            return set()
        target = max(finite.values()) if choice.spec.higher_is_better else min(finite.values())
        return {k for k, v in finite.items() if v == target}

    # -- serialisation ----------------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        """Everything in the report as JSON-ready values (infinities as ``"inf"``, NaN as ``null``)."""
        labels = self.metric_labels
        return {
            "setup": self.setup,
            "images": [{"name": i.name, "source": i.source, "hr_size": list(i.hr_size), "lr_size": list(i.lr_size),
                        "sheet": i.sheet} for i in self.images],
            "candidates": [{"name": label, "pipeline": pipeline, "precision": self.precision_of(label),
                            "precision_per_image": dict(self.precisions.get(label, {}))}
                           for label, pipeline in self.candidates.items()],
            "metrics": [{"name": m.label, "metric": m.name, "options": m.options,
                         "higher_is_better": m.spec.higher_is_better, "needs_reference": m.spec.needs_reference}
                        for m in self.metrics],
            "mean": {c: {**{m: _json_number(self.mean(c, m)) for m in labels},
                         "seconds": _json_number(self.mean_seconds(c))} for c in self.candidates},
            "per_image": {i.name: {c: {**{m: _json_number(self.scores[c][i.name][m]) for m in labels},
                                       "seconds": _json_number(self.seconds[c][i.name])} for c in self.candidates}
                          for i in self.images},
            "original": {"mean": {m: _json_number(self.original_mean(m)) for m in self.no_reference},
                         "per_image": {i.name: {m: _json_number(self.originals[i.name][m]) for m in self.no_reference}
                                       for i in self.images}},
            "warnings": list(self.warnings),
            "files": {k: str(v) for k, v in self.files.items()},
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2) + "\n"

    def to_csv(self) -> str:
        """One row per image and candidate, then the originals' no-reference scores, then the means.

        Mean rows have the image ``(mean)``; rows of the HR images themselves have the candidate ``original``.
        Numbers are written in full precision; an empty cell is a value that was not measured.
        """
        labels = self.metric_labels
        buffer = _io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["image", "candidate", *labels, "seconds"])
        for image in self.images:
            for c in self.candidates:
                writer.writerow([image.name, c, *(_csv_number(self.scores[c][image.name][m]) for m in labels),
                                 _csv_number(self.seconds[c][image.name])])
            if self.no_reference:
                writer.writerow([image.name, "original",
                                 *(_csv_number(self.originals[image.name].get(m)) for m in labels), ""])
        for c in self.candidates:
            writer.writerow(["(mean)", c, *(_csv_number(self.mean(c, m)) for m in labels),
                             _csv_number(self.mean_seconds(c))])
        if self.no_reference:
            writer.writerow(["(mean)", "original",
                             *(_csv_number(self.original_mean(m) if m in self.no_reference else None) for m in labels),
                             ""])
        return buffer.getvalue()

    def _table(self, rows: dict[str, dict[str, float]], seconds: dict[str, float],
               original: dict[str, float] | None) -> list[str]:
        labels = self.metric_labels
        arrows = {m.label: "↑" if m.spec.higher_is_better else "↓" for m in self.metrics}
        lines = ["| candidate | " + " | ".join(f"{m} {arrows[m]}" for m in labels) + " | s/image |",
                 "|---|" + "---:|" * (len(labels) + 1)]
        best = {m: self.best(m, {c: rows[c][m] for c in rows}) for m in labels}
        for c in rows:
            cells = []
            for m in labels:
                text = format_value(m, rows[c][m])
                cells.append(f"**{text}**" if c in best[m] else text)
            lines.append(f"| {c} | " + " | ".join(cells) + f" | {format_value('seconds', seconds[c])} |")
        if original is not None and self.no_reference:
            cells = [format_value(m, original.get(m)) if m in self.no_reference else "–" for m in labels]
            lines.append("| *original (HR)* | " + " | ".join(cells) + " | – |")
        return lines

    def to_markdown(self) -> str:
        """The report as Markdown: setup, the mean table, then per image its sheet and table.

        Bold marks the best candidate per metric; ↑/↓ say which way is better.
        """
        s = self.setup
        n = len(self.images)
        lines = ["# Quality report", ""]
        lines += [
            f"- **Images**: {n} high-resolution image(s), cropped to multiples of {s['factor']} "
            f"(rows/columns cut from the bottom/right, as BasicSR's `mod_crop`)",
            f"- **Degradation**: `{s['degrade']}` (×1/{s['factor']}), rounded to the source bit depth as if saved "
            "as PNG",
            f"- **Candidates**: upscale ×{s['factor']} back to the HR size: "
            + ", ".join(f"`{c}` (ran as `{self.precision_of(c)}`)" for c in self.candidates),
            f"- **Metrics**: {', '.join(self._metric_notes())}",
            f"- **Scoring**: crop_border={s['crop_border']}; y_channel={s['y_channel']}"
            + (" (PSNR/SSIM on BT.601 luma, MATLAB `rgb2ycbcr`, as SR papers)" if s["y_channel"] else ""),
            f"- **Timing**: seconds of upscaling per image, after one warm-up run of each candidate at the first "
            f"image's input size (model building excluded), on {s['device']} "
            f"(--precision {s['precision']}: what each candidate ran in is listed above); {s['cpu']}, {s['cpu_count']} CPU core(s), {s['torch_threads']} torch thread(s)",
            f"- **Run**: {s['date']}, remaster {s['remaster']}, torch {s['torch']}, {s['total_seconds']:.1f} s in all",
            "",
            f"## Mean over {n} image(s)",
            "",
        ]
        means = {c: {m: self.mean(c, m) for m in self.metric_labels} for c in self.candidates}
        lines += self._table(means, {c: self.mean_seconds(c) for c in self.candidates},
                             {m: self.original_mean(m) for m in self.no_reference})
        lines += ["", "**Bold**: best per column. ↑ higher is better, ↓ lower is better. "
                  "*original (HR)*: the no-reference metrics of the high-resolution images themselves.", ""]
        if self.warnings:
            lines += ["**Warnings**", ""] + [f"- {w}" for w in self.warnings] + [""]
        lines += ["## Per image", ""]
        for image in self.images:
            lines += [f"### {image.name}", "",
                      f"{image.hr_size[0]}×{image.hr_size[1]} HR, {image.lr_size[0]}×{image.lr_size[1]} degraded "
                      "input.", ""]
            if image.sheet:
                lines += [f"![{image.name}: input, candidates and original]({image.sheet})", ""]
            rows = {c: self.scores[c][image.name] for c in self.candidates}
            lines += self._table(rows, {c: self.seconds[c][image.name] for c in self.candidates},
                                 self.originals[image.name])
            lines.append("")
        return "\n".join(lines)

    def _metric_notes(self) -> list[str]:
        notes = []
        for m in self.metrics:
            kind = "full reference" if m.spec.needs_reference else "no reference, on the output"
            notes.append(f"`{m.label}` ({'↑' if m.spec.higher_is_better else '↓'}, {kind})")
        return notes

    def write(self, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
        """Write ``report.md``, ``report.csv`` and ``report.json`` into ``out_dir`` (atomically, replacing)."""
        folder = Path(out_dir)
        paths = {"md": folder / "report.md", "csv": folder / "report.csv", "json": folder / "report.json"}
        self.files.update(paths)
        io.write_atomic(paths["md"], self.to_markdown().encode())
        io.write_atomic(paths["csv"], self.to_csv().encode())
        io.write_atomic(paths["json"], self.to_json().encode())
        return paths


# ----------------------------------------------------------------------------------------------- machine


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


def _setup(degrade: str, factor: int, crop_border: int, y_channel: bool, device: torch.device,
           precision: str) -> dict[str, Any]:
    from . import __version__

    return {
        "degrade": degrade, "factor": factor, "crop_border": crop_border, "y_channel": y_channel,
        "device": str(device), "precision": precision, "cpu": cpu_model(), "cpu_count": _cpu_count(),
        "torch_threads": torch.get_num_threads(), "remaster": __version__, "torch": torch.__version__,
        "python": platform.python_version(),
        "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(), "total_seconds": 0.0,
    }


# ----------------------------------------------------------------------------------------------- scoring


def _levels(image: Image) -> float | None:
    """The largest integer value of the image's bit depth (255, 65535), or ``None`` for float images."""
    return {8: 255.0, 16: 65535.0}.get(image.meta.bit_depth)


def _as_array(image: Image, like: Image) -> np.ndarray:
    """Colour pixels (no alpha) as numpy in ``like``'s integer type: uint8/uint16, or float32 in [0, 1]."""
    dtype = {8: np.uint8, 16: np.uint16}.get(like.meta.bit_depth, np.float32)
    return io.to_numpy(image.with_pixels(image.pixels, None), dtype)


def _data_range(array: np.ndarray) -> float:
    return float(np.iinfo(array.dtype).max) if array.dtype.kind in "ui" else 1.0


def _crop(array: np.ndarray, border: int) -> np.ndarray:
    return array[border:array.shape[0] - border, border:array.shape[1] - border] if border else array


def _score(choice: MetricChoice, out: np.ndarray, ref: np.ndarray | None, *, crop_border: int,
           y_channel: bool) -> float:
    """One metric on numpy images (``ref=None`` for no-reference metrics); crop first, luma if asked."""
    options = dict(choice.options)
    a = _crop(out, crop_border)
    b = None if ref is None else _crop(ref, crop_border)
    if choice.accepts("y_channel"):
        options["y_channel"] = y_channel
        if y_channel and a.ndim == 2:  # a grey image is its own luma: measured as the RGB grey it stands for
            a = np.repeat(a[..., None], 3, axis=2)
            b = None if b is None else np.repeat(b[..., None], 3, axis=2)
    func = choice.spec.load()
    if b is None:
        value = func(a, data_range=_data_range(out), **options)
    else:
        value = func(a, b, data_range=_data_range(out), **options)
    if isinstance(value, torch.Tensor):
        value = value.item()
    return float(value)


class _Warnings:
    """Metrics that could not be measured, grouped per metric (first reason kept)."""

    def __init__(self) -> None:
        self._by_metric: dict[str, tuple[list[str], str]] = {}

    def add(self, metric: str, where: str, error: Exception) -> None:
        places, reason = self._by_metric.setdefault(metric, ([], str(error)))
        if where not in places:
            places.append(where)

    def lines(self) -> list[str]:
        out = []
        for metric, (places, reason) in self._by_metric.items():
            shown = ", ".join(places[:4]) + (f" and {len(places) - 4} more" if len(places) > 4 else "")
            out.append(f"{metric} was not measured on {shown}: {reason}")
        return out


# ----------------------------------------------------------------------------------------------- sheets


def sheet_width(panels: int) -> int:
    """Width in pixels of a comparison sheet with ``panels`` panels."""
    return SHEET_GAP + panels * (SHEET_PANEL + SHEET_GAP)


def _font(size: int, bold: bool = False) -> Any:
    from PIL import ImageFont

    for name in (("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"),):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            pass
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: a scalable font
    except TypeError:
        return ImageFont.load_default()


def detail_crop(image: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left ``(y, x)`` of the ``size``×``size`` window with the most detail (mean gradient magnitude)."""
    gray = image.astype(np.float64)
    if gray.ndim == 3:
        gray = gray[..., :3].mean(axis=2)
    h, w = gray.shape
    if size >= h and size >= w:
        return 0, 0
    energy = np.zeros_like(gray)
    energy[:, 1:] += np.abs(np.diff(gray, axis=1))
    energy[1:, :] += np.abs(np.diff(gray, axis=0))
    integral = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sy, sx = min(size, h), min(size, w)
    sums = integral[sy:, sx:] - integral[:-sy, sx:] - integral[sy:, :-sx] + integral[:-sy, :-sx]
    y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(y), int(x)


def _crop_size(height: int, width: int) -> int:
    """The zoomed crop: the largest power of two up to 128 that is at most half the image (8 at least)."""
    side = min(height, width)
    size = 128
    while size > 8 and size > side // 2:
        size //= 2
    return min(size, side)


def _rgb8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint16:
        array = np.rint(array / 257.0).astype(np.uint8)
    elif array.dtype.kind == "f":
        array = np.rint(np.clip(array, 0, 1) * 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return array


@dataclass
class _Panel:
    title: str
    pixels: np.ndarray  # full HR-sized image
    lines: list[tuple[str, bool]]  # caption lines: text, best?


def _render_sheet(panels: list[_Panel], header: list[str], crop: tuple[int, int, int]) -> Any:
    from PIL import Image as PILImage
    from PIL import ImageDraw

    y0, x0, size = crop
    title_font, font, header_font = _font(15, bold=True), _font(13), _font(14)
    line_height = 18
    caption_lines = max(len(p.lines) for p in panels) + 1
    top = SHEET_GAP + 20 * len(header) + 4
    height = top + SHEET_PANEL + 6 + caption_lines * line_height + SHEET_GAP
    width = sheet_width(len(panels))
    sheet = PILImage.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    for row, text in enumerate(header):
        draw.text((SHEET_GAP, SHEET_GAP + 20 * row), _fit(draw, text, header_font, width - 2 * SHEET_GAP),
                  fill="black", font=header_font)
    for index, panel in enumerate(panels):
        x = SHEET_GAP + index * (SHEET_PANEL + SHEET_GAP)
        part = _rgb8(panel.pixels)[y0:y0 + size, x0:x0 + size]
        zoomed = PILImage.fromarray(np.ascontiguousarray(part)).resize((SHEET_PANEL, SHEET_PANEL),
                                                                        PILImage.Resampling.NEAREST)
        sheet.paste(zoomed, (x, top))
        y = top + SHEET_PANEL + 6
        draw.text((x, y), _fit(draw, panel.title, title_font), fill="black", font=title_font)
        for text, best in panel.lines:
            y += line_height
            draw.text((x, y), _fit(draw, text, font), fill=(0, 120, 0) if best else (40, 40, 40),
                      font=_font(13, bold=True) if best else font)
    return sheet


def _fit(draw: Any, text: str, font: Any, width: int = SHEET_PANEL) -> str:
    """``text`` shortened with '...' so that it fits ``width`` pixels (one panel's by default)."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def _display(metric: str) -> str:
    """How a sheet names a metric: built-in names in capitals (PSNR, SSIM), options kept as given."""
    return metric.upper() if "(" not in metric else metric


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _sheet_for(image: ImageInfo, lr: np.ndarray, hr: np.ndarray, outputs: dict[str, np.ndarray], report: Report,
               factor: int) -> Any:
    """The comparison sheet of one image: input (nearest-enlarged), each candidate, the original."""
    size = _crop_size(hr.shape[0], hr.shape[1])
    y0, x0 = detail_crop(hr, size)
    enlarged = np.repeat(np.repeat(lr, factor, axis=0), factor, axis=1)
    labels = report.metric_labels
    scores = {c: report.scores[c][image.name] for c in report.candidates}
    best = {m: report.best(m, {c: scores[c][m] for c in scores}) for m in labels}
    panels = [_Panel(f"input {image.lr_size[0]}×{image.lr_size[1]} (nearest ×{factor})", enlarged, [])]
    for c in report.candidates:
        lines = [(f"{_display(m)} {format_value(m, scores[c][m])}{_UNITS.get(parse_stage(m)[0], '')}",
                  c in best[m]) for m in labels]
        lines.append((f"{_duration(report.seconds[c][image.name])} per image", False))
        panels.append(_Panel(c, outputs[c], lines))
    original = report.originals[image.name]
    panels.append(_Panel(f"original {image.hr_size[0]}×{image.hr_size[1]}", hr,
                         [(f"{_display(m)} {format_value(m, original[m])}", False) for m in report.no_reference]))
    setup = report.setup
    scoring = f"crop_border {setup['crop_border']}" + (", PSNR/SSIM on luma (Y)" if setup["y_channel"] else "")
    header = [f"{image.name} ({image.hr_size[0]}×{image.hr_size[1]}): the {size}×{size} crop at x={x0}, y={y0}, "
              f"shown ×{SHEET_PANEL / size:g}; scores of the whole image ({scoring}); green: best",
              f"degradation: {setup['degrade']}"]
    return _render_sheet(panels, header, (y0, x0, size))


def _sheet_name(name: str, taken: set[str]) -> str:
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(name).with_suffix("").as_posix())
    stem = stem.strip("._") or "image"
    candidate, n = f"{stem}.png", 2
    while candidate in taken:
        candidate, n = f"{stem}_{n}.png", n + 1
    taken.add(candidate)
    return candidate


# ----------------------------------------------------------------------------------------------- evaluate


def _inputs(hr: Sequence[Any]) -> list[tuple[str, Any, str | None]]:
    """``(name, source, path-or-None)`` for every HR item; names made unique."""
    items: list[tuple[str, Any, str | None]] = []
    seen: set[str] = set()
    for index, item in enumerate(hr):
        if isinstance(item, tuple):
            name, source = str(item[0]), item[1]
        elif isinstance(item, (str, os.PathLike)):
            name, source = Path(item).name, item
        else:
            name, source = f"image{index + 1}", item
        path = str(source) if isinstance(source, (str, os.PathLike)) else None
        base, n = name, 2
        while name in seen:
            name, n = f"{base} ({n})", n + 1
        seen.add(name)
        items.append((name, source, path))
    if not items:
        raise UsageError("no high-resolution images given")
    return items


def _load_hr(source: Any, factor: int) -> Image:
    """The HR image without alpha, cropped at the bottom/right to a multiple of ``factor``."""
    image = io.load(source)
    h, w = image.height - image.height % factor, image.width - image.width % factor
    if h < 1 or w < 1:
        raise UsageError(f"the image is {image.width}x{image.height} pixels, smaller than the factor {factor}",
                         path=getattr(image.meta, "source", None))
    return image.with_pixels(image.pixels[..., :h, :w].contiguous(), None)


def _quantize(image: Image, like: Image) -> Image:
    levels = _levels(like)
    if levels is None:
        return image
    return image.with_pixels(torch.round(image.pixels.clamp(0.0, 1.0) * levels) / levels, None)


def evaluate(
    hr: Sequence[Any],
    *,
    candidates: Sequence[str],
    degrade: str = DEFAULT_DEGRADE,
    metrics: str | Sequence[str] = DEFAULT_METRICS,
    crop_border: int = 0,
    y_channel: bool = False,
    out_dir: str | os.PathLike[str] | None = None,
    sheets: bool = True,
    save_images: bool = False,
    device: str = "auto",
    precision: str = "auto",
    tile: int | str = "auto",
    progress: ProgressCallback | None = None,
    host: PluginHost | None = None,
) -> Report:
    """Degrade each HR image, upscale it with every candidate, score the results against the HR image.

    Everything that can be checked is checked before any image is degraded: metric and stage names and
    options, the weights of the metrics, that every candidate gives back exactly the HR size, that the
    images load, that ``out_dir`` can be written, and that every candidate's model can be built.

    Args:
        hr: High-resolution images: paths, ``(name, image)`` pairs (image: anything
            :func:`remaster.io.load` takes), or arrays/PIL images (named ``image1``, ...). Alpha is dropped.
        candidates: Stage strings (or pipelines) that upscale; each gets ``scale=F``, F the inverse of the
            degradation's factor, unless it sets its scale itself (see :func:`candidate_pipeline`).
        degrade: The degradation pipeline; its total scale must be 1/F for an integer F >= 1.
        metrics: Metric names, optionally with options (``"lpips(net=vgg)"``), as a list or a
            comma-separated string. No-reference metrics are measured on each output (and on the HR image).
        crop_border: Pixels cut from each edge before every metric (SR papers cut the scale factor).
        y_channel: Measure the metrics that take ``y_channel`` (PSNR, SSIM, MS-SSIM) on BT.601 luma.
        out_dir: Where to write ``report.md``, ``report.csv``, ``report.json`` and ``sheets/*.png``;
            ``None`` writes nothing.
        sheets: Write one comparison sheet per image (needs ``out_dir``).
        save_images: Also write the degraded input and every output under ``out_dir/images/``.
        device, precision, tile: As :class:`~remaster.Remasterer`.
        progress: Called as ``progress(done, total, what)`` once the checks are done (``done=0``) and after
            each image × candidate.
        host: Plugin host (default: the process-wide one).

    Returns:
        The :class:`Report` (also written to ``out_dir``).

    Raises:
        UsageError, UnknownStageError, UnknownMetricError, StageParamError: a malformed request (exit code 2).
        WeightsNotFoundError: a metric's or candidate's weights are not in the cache.
        InputError, OutputError: an image cannot be read, ``out_dir`` cannot be written.
    """
    started = time.perf_counter()
    host = host.ensure_loaded() if host is not None else get_host()
    if isinstance(crop_border, bool) or not isinstance(crop_border, int) or crop_border < 0:
        raise UsageError(f"crop_border must be a non-negative integer, not {crop_border!r}")
    choices = parse_metrics(metrics, host=host)

    degrader = Remasterer(degrade, device=device, precision=precision, tile=tile, host=host)
    total_scale = math.prod(stage.scale for stage in degrader.stages)
    factor = round(1.0 / total_scale) if total_scale > 0 else 0
    if factor < 1 or abs(factor * total_scale - 1.0) > 1e-6:
        raise UsageError(f"the degradation scales by {total_scale:g}; it must shrink by 1/F for a whole number F",
                         hint="e.g. degrade.downsample(scale=0.25) for x4, 0.5 for x2, or no downsample for x1")
    if not candidates:
        raise UsageError("no candidates given", hint="e.g. nearest,bicubic,lanczos,realesrgan-x4plus")
    runners: dict[str, Remasterer] = {}
    for candidate in candidates:
        label = candidate.strip()
        if label in runners:
            raise UsageError(f"candidate {label!r} is given twice")
        runner = Remasterer(candidate_pipeline(label, factor, host=host), device=device, precision=precision,
                            tile=tile, host=host)
        scale = math.prod(stage.scale for stage in runner.stages)
        if abs(scale - factor) > 1e-6:
            raise UsageError(f"candidate {label!r} enlarges x{scale:g}, but the degradation shrinks x{factor}",
                             hint=f"leave its scale out, or give scale={factor}")
        runners[label] = runner

    check_metric_weights(choices, host=host)  # fails now, not after an hour of upscaling

    items = _inputs(hr)
    infos: list[ImageInfo] = []
    for name, source, path in items:  # read every image once now: a bad file stops the run before any work
        image = _load_hr(source, factor)
        if min(image.height, image.width) <= 2 * crop_border:
            raise UsageError(f"{name}: {image.width}x{image.height} pixels leave nothing with "
                             f"crop_border={crop_border}")
        lh, lw, channels = degrader.plan(image.height, image.width, image.channels)
        for label, runner in runners.items():
            oh, ow, _ = runner.plan(lh, lw, channels)
            if (oh, ow) != (image.height, image.width):
                raise UsageError(f"{name}: candidate {label!r} gives {ow}x{oh} from the {lw}x{lh} input, "
                                 f"not the HR size {image.width}x{image.height}")
        infos.append(ImageInfo(name, path, (image.width, image.height), (lw, lh)))

    folder = Path(out_dir) if out_dir is not None else None
    if folder is not None:
        try:
            (folder / "sheets" if sheets else folder).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the report folder: {exc.strerror}", path=folder) from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError("the report folder is not writable", path=folder)

    # Build every model now (weights, conversion) and run it once at the first input's size, outside the
    # timings: the first call of a network at a new size also pays for setting up its kernels.
    warm_w, warm_h = infos[0].lr_size
    for runner in runners.values():
        runner.run_image(Image(torch.full((1, 3, warm_h, warm_w), 0.5)))

    report = Report(images=infos, candidates={c: " | ".join(map(str, r.stages)) for c, r in runners.items()},
                    metrics=choices, scores={c: {} for c in runners}, seconds={c: {} for c in runners},
                    originals={}, setup=_setup(degrade, factor, crop_border, y_channel, degrader.device, precision))
    warnings = _Warnings()
    taken: set[str] = set()
    total, done = len(items) * len(runners), 0
    if progress is not None:
        progress(0, total, "")
    for (name, source, _), info in zip(items, infos):
        hr_image = _load_hr(source, factor)
        lr_image = _quantize(degrader.run_image(hr_image), hr_image)
        hr_array = _as_array(hr_image, hr_image)
        lr_array = _as_array(lr_image, hr_image)

        def measure(choice: MetricChoice, out: np.ndarray, ref: np.ndarray | None, where: str) -> float:
            try:
                return _score(choice, out, ref, crop_border=crop_border, y_channel=y_channel)
            except MetricError as exc:  # e.g. NIQE on an image too small for two 96x96 blocks
                warnings.add(choice.label, where, exc)
                return math.nan

        report.originals[name] = {m.label: measure(m, hr_array, None, f"{name} (original)")
                                  for m in choices if not m.spec.needs_reference}
        outputs: dict[str, np.ndarray] = {}
        for label, runner in runners.items():
            tick = time.perf_counter()
            result = runner.run_image(lr_image)
            report.seconds[label][name] = time.perf_counter() - tick
            report.precisions.setdefault(label, {})[name] = " | ".join(
                f"{entry['stage']} [{entry['precision']}]" for entry in result.meta.extras.get("stages", []))
            out = _as_array(result, hr_image)
            outputs[label] = out
            report.scores[label][name] = {
                m.label: measure(m, out, hr_array if m.spec.needs_reference else None, name) for m in choices}
            done += 1
            if progress is not None:
                progress(done, total, f"{name} {label}")
        if folder is not None and save_images:
            _save_images(folder / "images" / Path(_sheet_name(name, set())).stem, lr_image, outputs, hr_image)
        if folder is not None and sheets:
            sheet_file = _sheet_name(name, taken)
            info.sheet = f"sheets/{sheet_file}"
            target = folder / "sheets" / sheet_file
            buffer = _io.BytesIO()
            _sheet_for(info, lr_array, hr_array, outputs, report, factor).save(buffer, format="PNG")
            io.write_atomic(target, buffer.getvalue())
            report.files[f"sheet:{name}"] = target
    report.warnings = warnings.lines()
    report.setup["total_seconds"] = round(time.perf_counter() - started, 3)
    if folder is not None:
        report.write(folder)
    return report


def _save_images(folder: Path, lr: Image, outputs: dict[str, np.ndarray], hr: Image) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    io.save(lr, folder / "input.png", overwrite=True)
    for label, array in outputs.items():
        name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label).strip("._") or "candidate"
        io.save(io.load(array), folder / f"{name}.png", overwrite=True)
    io.save(hr, folder / "original.png", overwrite=True)


# ----------------------------------------------------------------------------------------------- compare


def compare_images(a: Any, b: Any, *, metrics: str | Sequence[str] = COMPARE_METRICS, crop_border: int = 0,
                   y_channel: bool = False, host: PluginHost | None = None) -> dict[str, Any]:
    """Score image ``a`` against the reference ``b``.

    Args:
        a, b: Anything :func:`remaster.io.load` takes (paths, arrays, PIL images); same size. Alpha is dropped.
            Two images of the same bit depth are compared in their integer values; otherwise as floats in [0, 1].
        metrics, crop_border, y_channel: As :func:`evaluate`.

    Returns:
        ``{label: value}`` for full-reference metrics and ``{label: {"a": value, "b": value}}`` for
        no-reference ones (measured on each image).

    Raises:
        MetricError: the images differ in size or channels (exit code 2).
        WeightsNotFoundError: a metric's weights are not in the cache.
    """
    host = host.ensure_loaded() if host is not None else get_host()
    if isinstance(crop_border, bool) or not isinstance(crop_border, int) or crop_border < 0:
        raise UsageError(f"crop_border must be a non-negative integer, not {crop_border!r}")
    choices = parse_metrics(metrics, host=host)
    check_metric_weights(choices, host=host)
    first, second = io.load(a), io.load(b)
    if first.meta.bit_depth == second.meta.bit_depth:
        x, y = _as_array(first, first), _as_array(second, second)
    else:  # 8-bit against 16-bit or float: both as floats in [0, 1]
        floats = Image(first.pixels, meta=Meta(bit_depth=32))
        x, y = _as_array(first, floats), _as_array(second, floats)
    if x.shape != y.shape:
        raise MetricError(f"the images have different sizes: {first.width}x{first.height}x{first.channels} and "
                          f"{second.width}x{second.height}x{second.channels}",
                          hint="compare images of the same size and colour mode")
    results: dict[str, Any] = {}
    for choice in choices:
        if choice.spec.needs_reference:
            results[choice.label] = _score(choice, x, y, crop_border=crop_border, y_channel=y_channel)
        else:
            results[choice.label] = {"a": _score(choice, x, None, crop_border=crop_border, y_channel=y_channel),
                                     "b": _score(choice, y, None, crop_border=crop_border, y_channel=y_channel)}
    return results
