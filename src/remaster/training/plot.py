"""A small PNG of the training curves (loss and validation PSNR against step), drawn with Pillow."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

__all__ = ["plot_curves"]

_W, _H, _PAD = 900, 360, 54
_COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189))


def _panel(draw, box: tuple[int, int, int, int], title: str,
           series: Sequence[tuple[str, Sequence[tuple[float, float]]]]) -> None:
    from PIL import ImageFont

    font = ImageFont.load_default()
    x0, y0, x1, y1 = box
    draw.rectangle(box, outline=(120, 120, 120))
    draw.text((x0, y0 - 16), title, fill=(0, 0, 0), font=font)
    points = [p for _, values in series for p in values if math.isfinite(p[1])]
    if not points:
        draw.text((x0 + 10, y0 + 10), "no data yet", fill=(90, 90, 90), font=font)
        return
    xmin, xmax = min(p[0] for p in points), max(p[0] for p in points)
    ymin, ymax = min(p[1] for p in points), max(p[1] for p in points)
    xmax, ymax = (xmax if xmax > xmin else xmin + 1), (ymax if ymax > ymin else ymin + 1e-6)

    def to_px(x: float, y: float) -> tuple[float, float]:
        return (x0 + (x - xmin) / (xmax - xmin) * (x1 - x0), y1 - (y - ymin) / (ymax - ymin) * (y1 - y0))

    for i in range(5):  # y ticks
        value = ymin + (ymax - ymin) * i / 4
        _, y = to_px(xmin, value)
        draw.line((x0 - 3, y, x0, y), fill=(0, 0, 0))
        draw.text((x0 - _PAD + 2, y - 6), f"{value:.4g}", fill=(0, 0, 0), font=font)
    draw.text((x0, y1 + 4), f"{xmin:g}", fill=(0, 0, 0), font=font)
    draw.text((x1 - 40, y1 + 4), f"{xmax:g} steps", fill=(0, 0, 0), font=font)
    for k, (label, values) in enumerate(series):
        colour = _COLOURS[k % len(_COLOURS)]
        line = [to_px(x, y) for x, y in values if math.isfinite(y)]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        for x, y in line[-1:] if len(line) > 1 else line:
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=colour)
        draw.text((x1 - 150, y0 + 6 + 14 * k), label, fill=colour, font=font)


def plot_curves(path: Path, losses: dict[str, list[tuple[float, float]]],
                validation: dict[str, list[tuple[float, float]]]) -> None:
    """Write ``path``: training losses on the left, validation metrics on the right."""
    from PIL import Image, ImageDraw

    from remaster.io import write_atomic

    image = Image.new("RGB", (_W, _H), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    half = _W // 2
    _panel(draw, (_PAD, 30, half - 20, _H - 30), "training loss", list(losses.items()))
    _panel(draw, (half + _PAD, 30, _W - 20, _H - 30), "validation", list(validation.items()))
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    write_atomic(path, buffer.getvalue())
