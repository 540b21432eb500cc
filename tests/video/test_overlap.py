"""Issue 22, throughput: a segment's frames are decoded on one thread, run through the network on the caller's and
encoded on another, joined by small bounded queues. Order and timestamps are kept, an error on any thread stops
the segment with the message it has without threads and leaves no part file, Ctrl-C ends every thread, and the
frames in flight stay few whatever the length."""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

av = pytest.importorskip("av")
sys.path.insert(0, str(Path(__file__).parent))

from clips import LONG_PTS, frames_of, make_clip  # noqa: E402

from remaster import Remasterer, RunContext, Stage  # noqa: E402
from remaster.errors import StageError  # noqa: E402
from remaster.video import remaster_video  # noqa: E402
from remaster.video.encode import DECODE_AHEAD, ENCODE_BEHIND, EncoderChoice, encode_segment  # noqa: E402

WORKERS = ("remaster-decode", "remaster-encode")


class Watch(Stage):
    """Records each frame it runs (its frame number in the sequence, the thread, the band that tells the clip's
    frames apart) and the frames in flight then; fails or stops on frame ``fail_on``/``interrupt_on``, takes
    ``pause`` seconds more per frame."""

    def __init__(self, *, fail_on: int | None = None, interrupt_on: int | None = None, pause: float = 0.0) -> None:
        super().__init__()
        self.fail_on, self.interrupt_on, self.pause = fail_on, interrupt_on, pause
        self.numbers: list[int] = []
        self.bands: list[int] = []
        self.threads: set[str] = set()
        self.in_flight: list[int] = []
        self.flight: Any = None  # a callable giving the frames decoded and not yet told done

    def run(self, pixels: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        assert ctx.sequence is not None
        self.numbers.append(ctx.sequence.frame)
        self.bands.append(round(float(pixels[0, :, :, :4].mean()) * 255))
        self.threads.add(threading.current_thread().name)
        if self.flight is not None:
            self.in_flight.append(self.flight())
        if ctx.sequence.frame == self.fail_on:
            raise StageError("broken on purpose", path="watch")
        if ctx.sequence.frame == self.interrupt_on:
            raise KeyboardInterrupt
        time.sleep(self.pause)  # a slower network: the decoder would run far ahead if nothing held it back
        return pixels.clone()


def synthetic(count: int | None, *, backwards_at: int | None = None, fail_at: int | None = None,
              pulled: list[int] | None = None) -> Iterator[Any]:
    """``count`` (``None``: endless) decoded-looking 64x48 frames, 40 ms apart; a timestamp that goes back at
    ``backwards_at``, an error at ``fail_at``; ``pulled`` counts the frames taken."""
    for index in itertools.count() if count is None else range(count):
        if index == fail_at:
            raise ValueError("the demuxer broke on purpose")
        rgb = np.full((48, 64, 3), index * 20 % 256, np.uint8)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p", dst_colorspace=1,
                                                                           dst_color_range=1)
        frame.pts, frame.time_base = (20 if index == backwards_at else 40 * index), Fraction(1, 1000)
        if pulled is not None:
            pulled[0] += 1
        yield frame


def segment(tmp_path: Path, stage: Watch, frames: Any, on_frame: Any = None) -> Any:
    """``frames`` encoded as one segment into ``tmp_path/parts/part-00000.mkv`` through ``stage``."""
    (tmp_path / "parts").mkdir(exist_ok=True)
    video = SimpleNamespace(time_base=Fraction(1, 1000), guessed_rate=None)
    pipeline = Remasterer([stage], device="cpu", precision="fp32", tile=0).for_sequence()
    return encode_segment(av, frames, tmp_path / "parts" / "part-00000.mkv", "matroska", video, pipeline,
                          EncoderChoice(crf=0), source=tmp_path / "in.mkv", target_suffix=".mkv", first_frame=0,
                          on_frame=on_frame)


def workers() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name in WORKERS]


def test_frames_keep_their_order_and_timestamps_and_progress_comes_in_order(tmp_path):
    stage = Watch()
    source = make_clip(tmp_path / "vfr.mkv", pts=LONG_PTS, audio=False)
    told: list[tuple[int, str]] = []
    report = remaster_video(source, tmp_path / "out.mkv", Remasterer([stage], device="cpu", precision="fp32"),
                            crf=0, progress=lambda done: told.append((done.frames, threading.current_thread().name)))
    assert report.frames == len(LONG_PTS)
    assert stage.numbers == list(range(len(LONG_PTS)))  # one frame per call, in order, one sequence
    assert stage.threads == {threading.current_thread().name}  # the network on the calling thread
    assert told == [(number, threading.current_thread().name) for number in range(1, len(LONG_PTS) + 1)]
    out = frames_of(tmp_path / "out.mkv")
    assert [stamp for stamp, _ in out] == list(LONG_PTS)  # variable frame rate: every frame at its own time
    expected = [index * 20 % 256 for index in range(len(LONG_PTS))]
    assert np.abs(np.array(stage.bands) - expected).max() <= 2
    assert np.abs(np.array([int(pixels[:, :8].mean()) for _, pixels in out]) - expected).max() <= 2
    assert workers() == []


def test_an_error_in_the_network_stops_the_segment_with_the_frame_and_time(tmp_path):
    stage = Watch(fail_on=10)
    source = make_clip(tmp_path / "vfr.mkv", pts=LONG_PTS, audio=False)
    with pytest.raises(StageError, match=rf"frame 10 \(at {LONG_PTS[10] / 1000:.3f} s\): .*broken on purpose"):
        remaster_video(source, tmp_path / "out.mkv", Remasterer([stage], device="cpu", precision="fp32"))
    assert stage.numbers == list(range(11))  # no frame run after it
    assert sorted(path.name for path in tmp_path.iterdir()) == ["vfr.mkv"]  # no part file, no side folder
    assert workers() == []


def test_an_error_in_a_later_segment_leaves_the_finished_ones_and_no_part_file(tmp_path):
    stage = Watch(fail_on=2)  # each segment is a sequence of its own: the third frame of each
    source = make_clip(tmp_path / "vfr.mkv", pts=LONG_PTS, gop=8, audio=False)
    with pytest.raises(StageError, match=r"frame \d+ \(at \d\.\d{3} s\): .*broken on purpose"):
        remaster_video(source, tmp_path / "out.mkv", Remasterer([stage], device="cpu", precision="fp32"),
                       segment_seconds=0)
    assert stage.numbers[-1] == 2
    parts = tmp_path / ".out.mkv.parts"
    assert not parts.exists() or all(path.suffix != ".tmp" and "00001" not in path.name
                                     for path in parts.iterdir())
    assert workers() == []


def test_an_error_on_the_decoding_thread_surfaces_as_it_was_raised(tmp_path):
    stage = Watch()
    with pytest.raises(ValueError, match="^the demuxer broke on purpose$"):
        segment(tmp_path, stage, synthetic(40, fail_at=7))
    assert stage.numbers == list(range(len(stage.numbers))) and len(stage.numbers) <= 7
    assert list((tmp_path / "parts").iterdir()) == []  # no part file, no temporary one
    assert workers() == []


def test_an_error_on_the_encoding_thread_surfaces_as_it_was_raised(tmp_path):
    # a timestamp going back: the muxer refuses the packet (what PyAV raises without threads too)
    with pytest.raises(av.FFmpegError):
        segment(tmp_path, Watch(), synthetic(12, backwards_at=6))
    assert list((tmp_path / "parts").iterdir()) == []
    assert workers() == []


@pytest.mark.timeout(120)
def test_ctrl_c_in_the_middle_ends_every_thread(tmp_path):
    stage = Watch(interrupt_on=5)
    with pytest.raises(KeyboardInterrupt):
        segment(tmp_path, stage, synthetic(None))  # an endless source: the decoder waits on a full queue
    assert workers() == []
    assert list((tmp_path / "parts").iterdir()) == []


def test_the_frames_in_flight_stay_few_whatever_the_length(tmp_path):
    stage = Watch(pause=0.005)
    pulled, told = [0], [0]
    stage.flight = lambda: pulled[0] - told[0]

    def done(_: Any) -> None:
        told[0] += 1

    result = segment(tmp_path, stage, synthetic(60, pulled=pulled), on_frame=done)
    assert result.frames == told[0] == pulled[0] == 60
    # in the decoder's queue and hands, the one running, in the encoder's queue and hands
    assert max(stage.in_flight) <= DECODE_AHEAD + ENCODE_BEHIND + 3
    assert [path.name for path in (tmp_path / "parts").iterdir()] == ["part-00000.mkv"]
    with av.open(str(tmp_path / "parts" / "part-00000.mkv")) as written:
        assert [round(float(frame.pts * frame.time_base) * 1000) for frame in written.decode(video=0)] == [
            40 * index for index in range(60)]
    assert workers() == []
