"""The defaults of an evaluation: the degradation and the metrics ``eval`` and ``compare`` use unless told.

Kept apart, and free of any import, so that the command-line tool can show them in ``--help`` without
loading torch or numpy (``tests/test_evaluation.py`` checks that it stays so).
"""

from __future__ import annotations

__all__ = ["DEFAULT_DEGRADE", "DEFAULT_METRICS", "COMPARE_METRICS"]

#: The degradation ``evaluate`` applies unless told otherwise: ×1/4 bicubic, mild noise, JPEG.
DEFAULT_DEGRADE = "degrade.downsample(scale=0.25) | degrade.noise(sigma=5, seed=0) | degrade.jpeg(quality=75)"

#: Metrics ``evaluate`` computes unless told otherwise (LPIPS/VGG need weights: only when asked for).
DEFAULT_METRICS = ("psnr", "ssim", "niqe")

#: Metrics ``compare_images`` computes unless told otherwise.
COMPARE_METRICS = ("psnr", "ssim")
