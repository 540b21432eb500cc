"""What each Real-ESRGAN weights file must hold: the ``check`` functions of the catalogue's specs.

The weights manager imports this module only when it checks a file (before
pinning a hash on first use, and in ``remaster weights verify``), so that
registering the plugin stays cheap.
"""

from __future__ import annotations

from pathlib import Path

from remaster.weights import expect_network


def rrdb_x4(path: Path) -> None:
    """An RRDBNet (spandrel's ``ESRGAN``) at x4: RealESRGAN_x4plus and its anime 6-block variant."""
    expect_network(path, "ESRGAN", scale=4)


def rrdb_x2(path: Path) -> None:
    """An RRDBNet at x2 (with pixel-unshuffle): RealESRGAN_x2plus."""
    expect_network(path, "ESRGAN", scale=2)


def compact_x4(path: Path) -> None:
    """An SRVGGNetCompact (spandrel's ``Compact``) at x4: realesr-animevideov3, realesr-general-x4v3."""
    expect_network(path, "Compact", scale=4)
