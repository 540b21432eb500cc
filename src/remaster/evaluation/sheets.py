"""Comparison sheets: one PNG per image with the input, every candidate and the original side by side,
zoomed on the crop with the most detail, each captioned with its scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from remaster.evaluation.report import ImageInfo, Report, format_value
from remaster.plugin.syntax import parse_stage

__all__ = ["SHEET_PANEL", "SHEET_GAP", "sheet_width", "detail_crop"]

#: Side of one panel of a comparison sheet, in pixels.
SHEET_PANEL = 256
#: Space around and between the panels of a comparison sheet, in pixels.
SHEET_GAP = 8
#: Units shown after a score on the sheets.
_UNITS = {"psnr": " dB"}


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


def sheet_for(image: ImageInfo, lr: np.ndarray, hr: np.ndarray, outputs: dict[str, np.ndarray], report: Report,
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
        lines = [(f"{_display(m)} {format_value(m, scores[c][m])}{_UNITS.get(parse_stage(m).name, '')}",
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


def sheet_name(name: str, taken: set[str]) -> str:
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(name).with_suffix("").as_posix())
    stem = stem.strip("._") or "image"
    candidate, n = f"{stem}.png", 2
    while candidate in taken:
        candidate, n = f"{stem}_{n}.png", n + 1
    taken.add(candidate)
    return candidate
