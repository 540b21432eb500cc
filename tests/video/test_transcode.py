"""Issue 22, first step: a video through a pipeline, every frame with its own timestamp, audio copied, colour
read and tagged from the source, depth kept, nothing at the output path unless complete."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from clips import CHAPTERS, FONT, VFR_PTS, frames_of, make_clip, packets_of  # noqa: E402

from reliability_support import run_cli  # noqa: E402
from remaster import Remasterer  # noqa: E402
from remaster.errors import InputError, OutputError  # noqa: E402
from remaster.video import remaster_video  # noqa: E402


@pytest.fixture(scope="module")
def nearest2() -> Remasterer:
    return Remasterer("nearest(scale=2)", device="cpu", precision="fp32")


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_every_frame_keeps_its_timestamp_and_the_audio_is_copied(tmp_path, nearest2, suffix):
    source = make_clip(tmp_path / f"vfr{suffix}")
    target = tmp_path / f"out{suffix}"
    report = remaster_video(source, target, nearest2)
    got, want = frames_of(target), frames_of(source)
    assert [pts for pts, _ in got] == [pts for pts, _ in want]
    assert [pts for pts, _ in want] == list(VFR_PTS)  # variable frame rate: no fps was guessed
    assert report.frames == len(VFR_PTS) and got[0][1].shape == (96, 128, 3)
    assert packets_of(target, "audio") == packets_of(source, "audio")  # bit for bit
    assert report.copied == ["audio:aac"] and report.dropped == []


def test_frames_are_the_pipelines_output(tmp_path, nearest2):
    source = make_clip(tmp_path / "in.mkv", pts=(0, 40, 80), audio=False, patches=True)
    target = tmp_path / "out.mkv"
    remaster_video(source, target, nearest2, crf=0)
    for (_, before), (_, after) in zip(frames_of(source), frames_of(target), strict=True):
        expected = before.repeat(2, axis=0).repeat(2, axis=1).astype(int)
        assert np.abs(after.astype(int) - expected).mean() < 2.0  # x2 nearest, after 4:2:0 and back


@pytest.mark.parametrize("colour", [(1, 1), (6, 1), (1, 2)], ids=["bt709-limited", "bt601-limited", "bt709-full"])
def test_colours_come_back_and_the_output_is_tagged_like_the_source(tmp_path, colour):
    import av

    source = make_clip(tmp_path / "in.mkv", pts=(0, 40), audio=False, patches=True, colour=colour)
    target = tmp_path / "out.mkv"
    remaster_video(source, target, Remasterer("nearest(scale=1)", device="cpu", precision="fp32"), crf=0)
    with av.open(str(target)) as container:
        context = container.streams.video[0].codec_context
        assert (int(context.colorspace), int(context.color_range)) == colour
    for (_, before), (_, after) in zip(frames_of(source), frames_of(target), strict=True):
        # Flat patches: within about one 8-bit level inside each patch (its edges carry 4:2:0 chroma); full range
        # rounds through one more step of swscale, two levels.
        for k in range(4):
            inside = (slice(4, -4), slice(k * 16 + 4, (k + 1) * 16 - 4))
            got, want = np.median(after[inside], axis=(0, 1)), np.median(before[inside], axis=(0, 1))
            assert np.abs(got - want).max() <= (1.0 if colour[1] == 1 else 2.0), (k, got, want)


def test_a_10_bit_source_stays_10_bit(tmp_path, nearest2):
    import av

    source = make_clip(tmp_path / "deep.mkv", pts=(0, 40, 80), deep=True, audio=False)
    target = tmp_path / "deep_x2.mkv"
    report = remaster_video(source, target, nearest2)
    with av.open(str(target)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.pix_fmt == "yuv420p10le" and stream.codec_context.name == "hevc"
        assert sum(1 for _ in container.decode(stream)) == 3
    assert report.colour["depth"] == "16-bit path" and report.stages[0]["precision"] == "fp32"


def test_nothing_is_left_at_the_output_path_of_a_failure(tmp_path, nearest2):
    not_a_video = tmp_path / "notes.mp4"
    not_a_video.write_text("not a video at all")
    with pytest.raises(InputError):
        remaster_video(not_a_video, tmp_path / "out.mkv", nearest2)
    silent = make_clip(tmp_path / "in.mkv", audio=False)
    audio_only = tmp_path / "audio.mka"
    import av

    with av.open(str(make_clip(tmp_path / "with-audio.mkv"))) as container, av.open(str(audio_only), "w") as out:
        stream = container.streams.audio[0]
        copy = out.add_stream_from_template(stream)
        for packet in container.demux(stream):
            if packet.dts is not None:
                packet.stream = copy
                out.mux(packet)
    with pytest.raises(InputError, match="has no video stream"):
        remaster_video(audio_only, tmp_path / "out.mkv", nearest2)
    (tmp_path / "taken.mkv").write_bytes(b"old")
    with pytest.raises(OutputError, match="already exists"):
        remaster_video(silent, tmp_path / "taken.mkv", nearest2)
    assert (tmp_path / "taken.mkv").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio.mka", "in.mkv", "notes.mp4", "taken.mkv",
                                                          "with-audio.mkv"]  # no output, no temporary file


def test_the_command_takes_a_video_as_it_takes_an_image(tmp_path, capsys):
    source = make_clip(tmp_path / "clip.mp4")
    code, errors = run_cli(capsys, "upscale", source, "-o", tmp_path / "clip_x2.mkv", "--model", "nearest",
                           "--scale", "2")
    assert code == 0 and errors == []
    import json

    from remaster.cli import main

    assert main(["upscale", str(source), "-o", str(tmp_path / "again.mkv"), "--model", "nearest"]) == 0
    err = capsys.readouterr().err
    assert "1 video(s)" in err and f"{len(VFR_PTS)} frames at " in err and " fps" in err
    assert main(["upscale", str(source), "-o", str(tmp_path / "json.mkv"), "--model", "nearest", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)["items"]
    assert row["video"]["frames"] == len(VFR_PTS) and row["video"]["copied"] == ["audio:aac"]
    assert row["stages"][0]["precision"] == "fp32" and row["seconds"] > 0
    # MP4 into Matroska: the MP4's AAC priming (1024 samples, 21 ms before zero) moves every stream by the same
    # 21 ms (Matroska has no negative timestamps); the frames' spacing and the sync with the audio stay.
    times = [pts for pts, _ in frames_of(tmp_path / "clip_x2.mkv")]
    assert [t - times[0] for t in times] == list(VFR_PTS) and times[0] in (0, 21)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(source.read_bytes())
    make_clip(folder / "b.mkv", pts=(0, 40), audio=False)
    code, errors = run_cli(capsys, "upscale", folder, "-o", tmp_path / "out", "--model", "nearest", "--scale", "2")
    assert code == 0 and errors == []
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.mp4", "b.mkv"]
    broken = folder / "c.mp4"
    broken.write_bytes(source.read_bytes()[:200])
    code, errors = run_cli(capsys, "upscale", folder, "-o", tmp_path / "out2", "--model", "nearest")
    assert code == 1 and len(errors) == 1 and "c.mp4" in errors[0]
    assert sorted(p.name for p in (tmp_path / "out2").iterdir()) == ["a.mp4", "b.mkv"]  # the others still done


def test_attachments_chapters_and_metadata_come_along(tmp_path, nearest2):
    import av

    source = make_clip(tmp_path / "rich.mkv", rich=True)
    report = remaster_video(source, tmp_path / "out.mkv", nearest2)
    with av.open(str(tmp_path / "out.mkv")) as container:
        [font] = [stream for stream in container.streams if stream.type == "attachment"]
        assert (font.name, font.mimetype, bytes(font.data)) == ("font.ttf", "font/ttf", FONT)
        assert [(c["metadata"]["title"], round(c["start"] * c["time_base"] * 1000)) for c in container.chapters()] \
            == [(title, start) for title, start, _ in CHAPTERS]
        assert container.metadata["title"] == "A home movie"
        assert container.streams.video[0].metadata["language"] == "fra"
    assert "attachment:font.ttf" in report.copied and "chapters:2" in report.copied
    # MP4 holds chapters but no attachments: the font is left out, and the report says why.
    report = remaster_video(source, tmp_path / "out.mp4", nearest2)
    assert any(line.startswith("attachment:font.ttf (.mp4 holds no attachments") for line in report.dropped)
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert len(container.chapters()) == 2


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_progress_counts_frames_against_the_frames_the_video_has(tmp_path, nearest2, suffix):
    from remaster.video import VideoProgress

    told: list[VideoProgress] = []
    remaster_video(make_clip(tmp_path / f"in{suffix}"), tmp_path / f"out{suffix}", nearest2, progress=told.append)
    assert [done.frames for done in told] == list(range(1, len(VFR_PTS) + 1))  # after each frame
    fractions = [done.fraction for done in told]
    assert fractions == sorted(fractions) and 0 < fractions[0] < 0.2 and fractions[-1] == 1.0
    # Matroska records no frame count, and its rate is variable here: the packets are counted before the run
    assert {done.expected for done in told} == {len(VFR_PTS)}
    assert str(told[-1]) == f"frame {len(VFR_PTS)} of {len(VFR_PTS)}"
    assert str(VideoProgress(1.0, 12, expected=10)) == "frame 12 of 12"  # never "12 of 10"


def test_a_folder_run_tells_its_observer_each_frame_of_a_video(tmp_path, process_host):
    from remaster import PipelineOptions
    from remaster.plugin.host import get_host
    from remaster.plugin.syntax import parse_pipeline
    from remaster.runs.engine import Layout
    from remaster.runs.local import LocalEngine

    source = make_clip(tmp_path / "clip.mp4")
    engine = LocalEngine(PipelineOptions(device="cpu", precision="fp32"), get_host())
    items = engine.plan(Layout((str(source),), str(tmp_path / "clip_x2.mkv")))

    class Recorder:
        def __init__(self) -> None:
            self.told: list[tuple[int, float, str]] = []
            self.done: list = []

        def ready(self, header, planned):
            assert "1 video(s)" in header

        def started(self, index, item):
            pass

        def progress(self, index, fraction, detail=""):
            self.told.append((index, fraction, detail))

        def finished(self, item):
            self.done.append(item)

    recorder = Recorder()
    assert engine.run(items, parse_pipeline("nearest(scale=2)"), recorder) is False  # not interrupted
    assert items[0].ok and items[0].extras["video"]["frames"] == len(VFR_PTS)
    assert [detail for _, _, detail in recorder.told] == [f"frame {n} of {len(VFR_PTS)}"
                                                          for n in range(1, len(VFR_PTS) + 1)]
    assert {index for index, _, _ in recorder.told} == {0}
