"""Issue 22's "done when", end to end: a VFR 10-bit HEVC clip with Opus audio, SRT subtitles, a font attachment
and chapters comes back upscaled with the same frames and timestamps, every other stream intact, still 10-bit,
tagged and colour-accurate; an H.264/AAC MP4 likewise."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")
sys.path.insert(0, str(Path(__file__).parent))

from clips import CHAPTERS, FONT, VFR_PTS, frames_of, make_clip, packets_of  # noqa: E402

from remaster import Remasterer  # noqa: E402
from remaster.video import remaster_video  # noqa: E402


def _streams(path: Path) -> dict[str, object]:
    import av

    with av.open(str(path)) as container:
        video = container.streams.video[0]
        return {"kinds": sorted(f"{s.type}:{s.codec_context.name}" for s in container.streams
                                if s.type in ("audio", "subtitle")),
                "fonts": [(s.name, bytes(s.data)) for s in container.streams if s.type == "attachment"],
                "chapters": [(c["metadata"]["title"], round(c["start"] * c["time_base"] * 1000))
                             for c in container.chapters()],
                "video": (video.codec_context.pix_fmt, int(video.codec_context.colorspace),
                          int(video.codec_context.color_range), int(video.codec_context.color_primaries),
                          int(video.codec_context.color_trc)),
                "size": (video.width, video.height)}


def test_a_vfr_10_bit_hevc_clip_with_opus_srt_a_font_and_chapters(tmp_path):
    source = make_clip(tmp_path / "home.mkv", deep=True, rich=True, subtitles="srt", opus=True, patches=True,
                       width=64, height=48)
    report = remaster_video(source, tmp_path / "home_x2.mkv", Remasterer("nearest(scale=2)", device="cpu"))
    before, after = _streams(source), _streams(tmp_path / "home_x2.mkv")
    assert after["kinds"] == before["kinds"] == ["audio:opus", "subtitle:srt"]
    assert after["fonts"] == [("font.ttf", FONT)] and after["chapters"] == [(t, s) for t, s, _ in CHAPTERS]
    assert after["video"][0] == "yuv420p10le" and after["video"][1:] == before["video"][1:]  # 10-bit, same tags
    assert after["size"] == (128, 96) and report.frames == len(VFR_PTS)
    for kind in ("audio", "subtitle"):
        assert packets_of(tmp_path / "home_x2.mkv", kind) == packets_of(source, kind)  # bit for bit
    frames_in, frames_out = frames_of(source), frames_of(tmp_path / "home_x2.mkv")
    assert [t for t, _ in frames_out] == [t for t, _ in frames_in] == list(VFR_PTS)
    _colour_accurate(frames_in, frames_out)


def test_an_h264_aac_mp4_likewise(tmp_path):
    source = make_clip(tmp_path / "phone.mp4", patches=True)
    report = remaster_video(source, tmp_path / "phone_x2.mp4", Remasterer("nearest(scale=2)", device="cpu"))
    before, after = _streams(source), _streams(tmp_path / "phone_x2.mp4")
    assert after["kinds"] == before["kinds"] == ["audio:aac"] and after["video"] == before["video"]
    assert report.frames == len(VFR_PTS) and report.copied == ["audio:aac"]
    assert packets_of(tmp_path / "phone_x2.mp4", "audio") == packets_of(source, "audio")
    frames_in, frames_out = frames_of(source), frames_of(tmp_path / "phone_x2.mp4")
    assert [t for t, _ in frames_out] == [t for t, _ in frames_in]
    _colour_accurate(frames_in, frames_out)


def _colour_accurate(frames_in: list, frames_out: list) -> None:
    """Each flat patch's colour (its inside, away from the 4:2:0 edges) within one 8-bit level of the source's, at
    the default encoder settings."""
    for (_, one), (_, other) in zip(frames_in, frames_out, strict=True):
        for k in range(4):
            inside_in = one[4:-4, k * 16 + 4:(k + 1) * 16 - 4].reshape(-1, 3).mean(axis=0)
            inside_out = other[8:-8, k * 32 + 8:(k + 1) * 32 - 8].reshape(-1, 3).mean(axis=0)
            assert np.abs(inside_out - inside_in).max() <= 1.0, (k, inside_in, inside_out)


def test_an_untagged_sd_source_made_hd_keeps_its_colours(tmp_path):
    """SD → HD: an untagged 48-line source is read as players read SD (BT.601), and the 768-line output is tagged
    BT.601, so a player that follows the tags (not the HD default, BT.709) shows the source's colours."""
    import av

    source = make_clip(tmp_path / "sd.mkv", pts=(0, 40), audio=False, patches=True, colour=None)
    remaster_video(source, tmp_path / "hd.mkv", Remasterer("nearest(scale=16)", device="cpu"))
    with av.open(str(tmp_path / "hd.mkv")) as container:
        context = container.streams.video[0].codec_context
        assert (context.height, int(context.colorspace), int(context.color_range)) == (768, 6, 1)  # BT.601, limited
    for _, frame in frames_of(tmp_path / "hd.mkv"):  # read with the output's own tags
        for k, colour in enumerate([(200, 40, 40), (40, 200, 40), (40, 40, 200), (128, 128, 128)]):
            inside = frame[64:-64, k * 256 + 64:(k + 1) * 256 - 64].reshape(-1, 3).mean(axis=0)
            assert np.abs(inside - np.array(colour)).max() <= 1.5, (k, inside)
