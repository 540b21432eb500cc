"""Issue 22, colour and depth: HDR10's mastering display and content light level carried from a 10-bit HEVC
source to the output, with its BT.2020 primaries and PQ transfer."""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import pytest

pytest.importorskip("av")
sys.path.insert(0, str(Path(__file__).parent))

from clips import HDR10_DISPLAY, HDR10_LIGHT, make_clip  # noqa: E402

from remaster import Remasterer  # noqa: E402
from remaster.video import remaster_video  # noqa: E402
from remaster.video.hdr import HDR10, LightLevel, source_hdr10  # noqa: E402


@pytest.fixture(scope="module")
def nearest2() -> Remasterer:
    return Remasterer("nearest(scale=2)", device="cpu", precision="fp32")


def first_frame(path: Path) -> tuple[HDR10 | None, tuple[int, int, int], str]:
    """The HDR10 metadata of the first decoded frame, the stream's (primaries, transfer, matrix) and pixel format."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frame = next(container.decode(stream))
        context = stream.codec_context
        return (source_hdr10(frame), (int(context.color_primaries), int(context.color_trc), int(context.colorspace)),
                context.pix_fmt)




@pytest.mark.parametrize(("suffix", "codec"), [(".mkv", None), (".mp4", None), (".mov", "libx264")])
def test_hdr10_metadata_reaches_the_output(tmp_path, nearest2, suffix, codec):
    source = make_clip(tmp_path / "hdr.mkv", pts=(0, 40, 80), deep=True, audio=False, colour=(9, 1), hdr10=True)
    hdr10, tags, _ = first_frame(source)
    assert hdr10 is not None and hdr10.display is not None
    assert hdr10.display.red == (Fraction(34000, 50000), Fraction(16000, 50000))
    assert hdr10.display.white == (Fraction(15635, 50000), Fraction(16450, 50000))
    assert (hdr10.display.max_luminance, hdr10.display.min_luminance) == (1000, Fraction(1, 10000))
    assert hdr10.display.x265() == HDR10_DISPLAY and hdr10.light == LightLevel(*HDR10_LIGHT)
    assert tags == (9, 16, 9)  # BT.2020, PQ, BT.2020 non-constant
    report = remaster_video(source, tmp_path / f"out{suffix}", nearest2, codec=codec)
    got, got_tags, pixel_format = first_frame(tmp_path / f"out{suffix}")
    assert got == hdr10 and got_tags == tags and pixel_format == "yuv420p10le"
    assert report.colour["hdr10"] == f"master-display={HDR10_DISPLAY} max-cll=1000,400" and report.dropped == []


def test_an_encoder_not_given_it_is_said(tmp_path, nearest2):
    source = make_clip(tmp_path / "hdr.mkv", pts=(0, 40, 80), deep=True, audio=False, colour=(9, 1), hdr10=True)
    report = remaster_video(source, tmp_path / "out.mkv", nearest2, codec="ffv1")
    assert report.colour["hdr10"].startswith("not carried: ffv1 is not given it; use libx265")
    assert report.dropped == [f"hdr10:metadata ({report.colour['hdr10'].removeprefix('not carried: ')})"]
    hdr10, tags, _ = first_frame(tmp_path / "out.mkv")
    assert hdr10 is None and tags == (9, 16, 9)  # the metadata is indeed gone; the tags are still carried


def test_a_source_without_it_is_encoded_as_before(tmp_path, nearest2):
    # Three frames: libx265 gives a two-frame stream's first packet an unset DTS about half the time, which Matroska
    # refuses (pts (0) < dts (7321837325327558045)); that happens on main as well.
    source = make_clip(tmp_path / "sdr.mkv", pts=(0, 40, 80), deep=True, audio=False)
    report = remaster_video(source, tmp_path / "out.mkv", nearest2)
    assert "hdr10" not in report.colour and first_frame(tmp_path / "out.mkv")[0] is None
