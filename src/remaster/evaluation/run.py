"""The two runs: :func:`evaluate` (load and crop the HR images, degrade, quantise, upscale with every
candidate, score, write the report and sheets) and :func:`compare_images` (score one image against another).
"""

from __future__ import annotations

import io as _io
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from remaster import io
from remaster.errors import OutputError, UsageError
from remaster.evaluation.choices import MetricChoice, candidate_pipeline, check_metric_weights, parse_metrics
from remaster.evaluation.defaults import COMPARE_METRICS, DEFAULT_DEGRADE, DEFAULT_METRICS
from remaster.evaluation.machine import run_setup
from remaster.evaluation.report import ImageInfo, Report
from remaster.evaluation.scoring import UnmeasuredWarnings, score_metric
from remaster.evaluation.sheets import sheet_for, sheet_name
from remaster.io.image import Image, Meta
from remaster.metrics import MetricError
from remaster.pipeline.options import PipelineOptions
from remaster.pipeline.remasterer import Remasterer
from remaster.plugin.host import PluginHost, get_host
from remaster.weights import get_manager

__all__ = ["evaluate", "compare_images", "ProgressCallback"]

ProgressCallback = Callable[[int, int, str], None]


def _levels(image: Image) -> float | None:
    """The largest integer value of the image's bit depth (255, 65535), or ``None`` for float images."""
    return {8: 255.0, 16: 65535.0}.get(image.meta.bit_depth)


def _as_array(image: Image, like: Image) -> np.ndarray:
    """Colour pixels (no alpha) as numpy in ``like``'s integer type: uint8/uint16, or float32 in [0, 1]."""
    dtype = {8: np.uint8, 16: np.uint16}.get(like.meta.bit_depth, np.float32)
    return io.to_numpy(image.with_pixels(image.pixels, None), dtype)


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
    options: PipelineOptions | None = None,
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
        options: How the degradation and the candidates run (device, precision, tile, ...); default
            ``PipelineOptions()``.
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

    options = options or PipelineOptions()
    degrader = Remasterer(degrade, options, host=host)
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
        runner = Remasterer(candidate_pipeline(label, factor, host=host), options, host=host)
        scale = math.prod(stage.scale for stage in runner.stages)
        if abs(scale - factor) > 1e-6:
            raise UsageError(f"candidate {label!r} enlarges x{scale:g}, but the degradation shrinks x{factor}",
                             hint=f"leave its scale out, or give scale={factor}")
        runners[label] = runner

    check_metric_weights(choices, host=host)  # fails now, not after an hour of upscaling
    manager = get_manager(host)  # the metrics' weights come from this run's host, not the process-wide one

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
                    originals={}, setup=run_setup(degrade, factor, crop_border, y_channel, degrader.device,
                                                       options.precision))
    warnings = UnmeasuredWarnings()
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
                return score_metric(choice, out, ref, crop_border=crop_border, y_channel=y_channel,
                                    weights_manager=manager)
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
            _save_images(folder / "images" / Path(sheet_name(name, set())).stem, lr_image, outputs, hr_image)
        if folder is not None and sheets:
            sheet_file = sheet_name(name, taken)
            info.sheet = f"sheets/{sheet_file}"
            target = folder / "sheets" / sheet_file
            buffer = _io.BytesIO()
            sheet_for(info, lr_array, hr_array, outputs, report, factor).save(buffer, format="PNG")
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
    manager = get_manager(host)  # the metrics' weights come from this run's host, not the process-wide one
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
            results[choice.label] = score_metric(choice, x, y, crop_border=crop_border, y_channel=y_channel,
                                                 weights_manager=manager)
        else:
            results[choice.label] = {"a": score_metric(choice, x, None, crop_border=crop_border, y_channel=y_channel,
                                                  weights_manager=manager),
                                     "b": score_metric(choice, y, None, crop_border=crop_border, y_channel=y_channel,
                                                  weights_manager=manager)}
    return results
