"""The scores of an evaluation (:class:`Report`) and how they are written: Markdown, CSV and JSON, with
the number formatting the tables, the sheets and the command-line tool share.
"""

from __future__ import annotations

import csv
import io as _io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from remaster import io
from remaster.evaluation.choices import MetricChoice
from remaster.plugin.syntax import parse_stage

__all__ = ["Report", "ImageInfo", "format_value", "json_number"]

#: Decimals shown for a metric in tables and sheets (others: 4).
_DECIMALS = {"psnr": 2, "ssim": 4, "ms_ssim": 4, "niqe": 3, "lpips": 4, "vgg": 4, "seconds": 3}


def format_value(metric: str, value: float | None) -> str:
    """A score as the reports show it: fixed decimals per metric, ``inf``, or ``–`` when there is none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    name, _ = parse_stage(metric) if "(" in metric else (metric, None)
    return f"{value:.{_DECIMALS.get(name, 4)}f}"


def json_number(value: float | None) -> Any:
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
            "mean": {c: {**{m: json_number(self.mean(c, m)) for m in labels},
                         "seconds": json_number(self.mean_seconds(c))} for c in self.candidates},
            "per_image": {i.name: {c: {**{m: json_number(self.scores[c][i.name][m]) for m in labels},
                                       "seconds": json_number(self.seconds[c][i.name])} for c in self.candidates}
                          for i in self.images},
            "original": {"mean": {m: json_number(self.original_mean(m)) for m in self.no_reference},
                         "per_image": {i.name: {m: json_number(self.originals[i.name][m]) for m in self.no_reference}
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
            f"(--precision {s['precision']}: what each candidate ran in is listed above); {s['cpu']}, "
            f"{s['cpu_count']} CPU core(s), {s['torch_threads']} torch thread(s)",
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
