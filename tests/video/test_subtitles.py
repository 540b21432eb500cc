"""Issue 22, every other stream kept: subtitles copied bit for bit where the container holds them, text subtitles
re-encoded (SRT and ASS into MP4 as mov_text, into WebM as WebVTT) with their text, times, language and title."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("av")
sys.path.insert(0, str(Path(__file__).parent))

from clips import CUES, make_clip, packets_of  # noqa: E402

from remaster import Remasterer  # noqa: E402
from remaster.video import remaster_video  # noqa: E402


@pytest.fixture(scope="module")
def same() -> Remasterer:
    return Remasterer("nearest(scale=1)", device="cpu", precision="fp32")


def cues_of(path: Path) -> tuple[str, dict[str, str], list[tuple[int, int, bytes]]]:
    """The subtitle stream's codec, metadata and packets: start and duration in ms, and the bytes."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.subtitles[0]
        base = stream.time_base
        packets = [(round(packet.pts * base * 1000), round(packet.duration * base * 1000), bytes(packet))
                   for packet in container.demux(stream) if packet.dts is not None]
        return stream.codec_context.name, dict(stream.metadata), packets


def test_subtitles_are_copied_bit_for_bit_into_matroska(tmp_path, same):
    source = make_clip(tmp_path / "in.mkv", subtitles="srt", pts=(0, 40, 80))
    report = remaster_video(source, tmp_path / "out.mkv", same)
    assert report.copied == ["audio:aac", "subtitle:srt"] and report.converted == [] and report.dropped == []
    assert packets_of(tmp_path / "out.mkv", "subtitle") == packets_of(source, "subtitle")
    codec, metadata, cues = cues_of(tmp_path / "out.mkv")
    assert (metadata["language"], metadata["title"]) == ("eng", "English")
    assert [(start, duration) for start, duration, _ in cues] == [(start, end - start) for start, end, *_ in CUES]


@pytest.mark.parametrize(("kind", "suffix"), [("srt", ".mp4"), ("ass", ".mov")])
def test_text_subtitles_become_mov_text_with_their_text_and_times(tmp_path, same, kind, suffix):
    import av

    source = make_clip(tmp_path / "in.mkv", subtitles=kind, pts=(0, 40, 80, 200, 433))
    target = tmp_path / f"out{suffix}"
    report = remaster_video(source, target, same)
    name = "srt" if kind == "srt" else "ssa"
    assert report.converted == [f"subtitle:{name}->mov_text"] and report.dropped == []
    codec, metadata, packets = cues_of(target)
    assert codec == "mov_text" and metadata["language"] == "eng"
    assert "English" in (metadata.get("title"), metadata.get("name"))  # MP4 reads a track's title back as "name"
    # tx3g samples: a 16-bit big-endian length, the UTF-8 text (markup gone), then style boxes; the muxer fills
    # the gaps between cues with empty samples.
    said = [(start, duration, data[2:2 + int.from_bytes(data[:2], "big")].decode())
            for start, duration, data in packets if data[:2] != b"\x00\x00"]
    assert said == [(start, end - start, text) for start, end, _, text in CUES]
    with av.open(str(target)) as container:  # FFmpeg decodes them, the italic word still italic
        stream = container.streams.subtitles[0]
        events = [rect.ass.decode() for packet in container.demux(stream) if packet.dts is not None
                  for rect in (stream.codec_context.decode2(packet) or [])]
    assert "Hello {\\i1}world" in events[0] and events[1].endswith("Second\\Nline")


def test_text_subtitles_become_webvtt_in_webm(tmp_path, same):
    source = make_clip(tmp_path / "in.mkv", subtitles="ass", pts=(0, 40, 80), audio=False)
    report = remaster_video(source, tmp_path / "out.webm", same)
    assert report.converted == ["subtitle:ssa->webvtt"]
    codec, metadata, cues = cues_of(tmp_path / "out.webm")
    assert codec == "webvtt" and (metadata["language"], metadata["title"]) == ("eng", "English")
    assert cues == [(100, 200, b"Hello <i>world</i>"), (300, 120, b"Second\nline")]


def test_the_command_says_what_it_converted(tmp_path, capsys):
    from remaster.cli import main

    source = make_clip(tmp_path / "in.mkv", subtitles="srt", pts=(0, 40), audio=False)
    assert main(["upscale", str(source), "-o", str(tmp_path / "out.mp4"), "--model", "nearest", "--scale", "1",
                 "--json"]) == 0
    captured = capsys.readouterr()
    [row] = json.loads(captured.out)["items"]
    assert row["video"]["converted"] == ["subtitle:srt->mov_text"] and row["video"]["dropped"] == []
    assert main(["upscale", str(source), "-o", str(tmp_path / "again.mp4"), "--model", "nearest", "--scale",
                 "1"]) == 0
    assert "subtitle:srt->mov_text converted" in capsys.readouterr().err
