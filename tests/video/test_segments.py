"""Issue 22, resumable work: a video cut at its keyframes into segments, each written beside the output and
recorded in a manifest; the segments put end to end give every frame at its own time; a run killed at any moment
goes on with ``--resume`` without doing a finished segment again; nothing half-written at the output path."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from clips import LONG_PTS, frames_of, make_clip, packets_of  # noqa: E402

from reliability_support import run_cli  # noqa: E402
from remaster import Remasterer  # noqa: E402
from remaster.errors import UsageError  # noqa: E402
from remaster.video import remaster_video  # noqa: E402

#: Twelve seconds at 8 fps, a keyframe at least every two seconds: two or three segments of five seconds or more.
TWELVE_SECONDS = tuple(125 * i for i in range(96))


@pytest.fixture(scope="module")
def nearest2() -> Remasterer:
    return Remasterer("nearest(scale=2)", device="cpu", precision="fp32")


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    error = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return float("inf") if error == 0 else 10 * np.log10(255.0**2 / error)


@pytest.mark.parametrize(("suffix", "deep"), [(".mkv", False), (".mp4", False), (".mkv", True)],
                         ids=["h264-mkv", "h264-mp4", "hevc10-open-gop-mkv"])
def test_segments_put_end_to_end_give_every_frame_at_its_time(tmp_path, nearest2, suffix, deep):
    source = make_clip(tmp_path / "long.mkv", pts=LONG_PTS, gop=8, deep=deep)
    whole = remaster_video(source, tmp_path / f"whole{suffix}", nearest2, segment_seconds=100, crf=0)
    cut = remaster_video(source, tmp_path / f"cut{suffix}", nearest2, segment_seconds=0, crf=0)
    assert whole.segments == 1 and cut.segments >= 3 and cut.frames == whole.frames == len(LONG_PTS)
    cut_frames, whole_frames = frames_of(tmp_path / f"cut{suffix}"), frames_of(tmp_path / f"whole{suffix}")
    assert [t for t, _ in cut_frames] == [t for t, _ in whole_frames] == list(LONG_PTS)
    for (_, one), (_, other) in zip(whole_frames, cut_frames, strict=True):
        # H.264 at crf 0 is lossless: the same frames; x265 at crf 0 is not, and its two runs differ (noise content)
        assert _psnr(one, other) >= (38 if deep else float("inf"))
    assert packets_of(tmp_path / f"cut{suffix}", "audio") == packets_of(source, "audio")  # copied bit for bit
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["long.mkv", f"whole{suffix}", f"cut{suffix}"])


def _killed_run(source: Path, target: Path, at_frame: int) -> None:
    """A process that remasters ``source`` and SIGKILLs itself after ``at_frame`` frames."""
    script = (
        "import os, signal, sys\n"
        "from remaster import Remasterer\n"
        "from remaster.video import remaster_video\n"
        "def progress(done):\n"
        f"    if done.frames == {at_frame}:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        f"remaster_video({str(source)!r}, {str(target)!r}, Remasterer('nearest(scale=2)'), progress=progress)\n")
    finished = subprocess.run([sys.executable, "-c", script], timeout=300, capture_output=True, text=True)
    assert finished.returncode == -signal.SIGKILL, finished.stderr


def test_a_killed_run_goes_on_with_resume_without_doing_a_finished_segment_again(tmp_path, capsys):
    source = make_clip(tmp_path / "twelve.mkv", pts=TWELVE_SECONDS, gop=16)
    target = tmp_path / "twelve_x2.mkv"
    _killed_run(source, target, at_frame=80)
    parts = tmp_path / ".twelve_x2.mkv.parts"
    manifest = json.loads((parts / "manifest.json").read_text())
    assert 1 <= len(manifest["done"]) < len(manifest["segments"])  # killed in a later segment
    assert not target.exists()  # nothing half-written at the output path

    report = tmp_path / "report.json"
    code, errors = run_cli(capsys, "upscale", source, "-o", target, "--model", "nearest", "--scale", "2",
                           "--resume", "--report", report)
    assert code == 0 and errors == []
    [row] = json.loads(report.read_text())["items"]
    # the finished segments were taken as they were (their SHA-256 checked), only the rest was run
    assert row["video"]["resumed"] == len(manifest["done"]) and row["video"]["segments"] == len(manifest["segments"])
    assert not parts.exists()  # the side files go when the output is complete
    assert [t for t, _ in frames_of(target)] == list(TWELVE_SECONDS)
    assert packets_of(target, "audio") == packets_of(source, "audio")

    again = remaster_video(source, tmp_path / "clean.mkv", Remasterer("nearest(scale=2)"))
    for (_, resumed), (_, clean) in zip(frames_of(target), frames_of(tmp_path / "clean.mkv"), strict=True):
        assert _psnr(resumed, clean) > 40
    assert again.resumed == 0


def test_resume_reads_finished_segments_and_redoes_a_changed_one(tmp_path, nearest2):
    source = make_clip(tmp_path / "long.mkv", pts=LONG_PTS, gop=8)
    target = tmp_path / "out.mkv"
    parts = tmp_path / ".out.mkv.parts"
    told: list[int] = []

    def stop_in_the_third_segment(done):
        told.append(done.frames)
        manifest = json.loads((parts / "manifest.json").read_text())
        if len(manifest["done"]) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        remaster_video(source, target, nearest2, segment_seconds=0, progress=stop_in_the_third_segment)
    manifest = json.loads((parts / "manifest.json").read_text())
    second = parts / manifest["done"]["1"]["file"]
    second.write_bytes(second.read_bytes()[:-10])  # a changed file: its SHA-256 no longer matches
    told.clear()
    report = remaster_video(source, target, nearest2, segment_seconds=0, resume=True,
                            progress=lambda done: told.append(done.frames))
    assert report.resumed == 1 and report.frames == len(LONG_PTS)
    first_frames = manifest["segments"][0][2]
    assert told == list(range(first_frames + 1, len(LONG_PTS) + 1))  # the first segment was not done again
    assert [t for t, _ in frames_of(target)] == list(LONG_PTS) and not parts.exists()


def test_resume_refuses_another_job_and_without_resume_the_work_starts_over(tmp_path, nearest2):
    source = make_clip(tmp_path / "long.mkv", pts=LONG_PTS, gop=8)
    target = tmp_path / "out.mkv"

    def stop(done):
        if done.frames == len(LONG_PTS) - 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        remaster_video(source, target, nearest2, segment_seconds=0, progress=stop)
    with pytest.raises(UsageError, match="started with other settings") as refused:
        remaster_video(source, target, nearest2, segment_seconds=0, resume=True, crf=30)
    assert "leave out resume=True to start over" in str(refused.value)
    report = remaster_video(source, target, nearest2, segment_seconds=0)
    assert report.resumed == 0 and report.frames == len(LONG_PTS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mkv", "out.mkv"]


def test_what_cannot_be_written_is_refused_in_one_line_and_leaves_no_side_files(tmp_path, nearest2):
    deep = make_clip(tmp_path / "deep.mkv", pts=(0, 40, 80), deep=True, audio=False)
    with pytest.raises(UsageError, match="8-bit only") as refused:
        remaster_video(deep, tmp_path / "out.webm", nearest2)
    assert "write .mkv or .mp4" in str(refused.value)
    with pytest.raises(UsageError, match="AV1 output cannot be put together"):
        remaster_video(deep, tmp_path / "out.mkv", nearest2, codec="libsvtav1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep.mkv"]  # no output, no side folder


def test_a_two_frame_hevc_video_comes_through(tmp_path, nearest2):
    # libx265 gave such short encodes an unset decoding timestamp about half the time: every try must pass
    source = make_clip(tmp_path / "two.mkv", pts=(0, 40), deep=True, audio=False)
    for attempt in range(6):
        report = remaster_video(source, tmp_path / f"out{attempt}.mkv", nearest2)
        assert report.frames == 2 and [t for t, _ in frames_of(tmp_path / f"out{attempt}.mkv")] == [0, 40]


def test_a_folder_run_never_takes_an_unfinished_runs_segments_as_inputs(tmp_path, capsys):
    folder = tmp_path / "films"
    folder.mkdir()
    source = make_clip(folder / "long.mkv", pts=LONG_PTS, gop=8)
    parts = folder / ".long_x4.mkv.parts"  # an interrupted run that wrote beside its input
    parts.mkdir()
    (parts / "part-00000.mkv").write_bytes(source.read_bytes())
    code, errors = run_cli(capsys, "run", "nearest(scale=2)", folder, "-o", tmp_path / "out", "--suffix", "_x2")
    assert code == 0 and errors == []
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["long_x2.mkv"]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_network_stage_runs_every_frame_in_each_forced_precision(tmp_path, precision):
    """Whatever this machine's ``auto`` picks: the video path with a real network stage, each CPU precision forced."""
    source = make_clip(tmp_path / "in.mkv", pts=(0, 40, 80), audio=False, width=32, height=24)
    report = remaster_video(source, tmp_path / "out.mkv",
                            Remasterer("realesr-animevideov3(scale=2)", device="cpu", precision=precision))
    assert report.frames == 3 and [stage["precision"] for stage in report.stages] == [precision]
    assert [t for t, _ in frames_of(tmp_path / "out.mkv")] == [0, 40, 80]
