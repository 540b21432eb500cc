"""Issue 22: a video's frames reach the stages as one FrameSequence (what the gfpgan stage tracks faces in)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("av")
sys.path.insert(0, str(Path(__file__).parent))

from clips import make_clip  # noqa: E402

from remaster import FrameSequence, Image, Remasterer, RunContext, Stage  # noqa: E402
from remaster.video import remaster_video  # noqa: E402


class FrameNumbers(Stage):
    """Records, per call, the sequence it was given (``None`` for none) and the frame number it said."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[FrameSequence | None, int]] = []

    def run(self, pixels: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        self.seen.append((ctx.sequence, -1 if ctx.sequence is None else ctx.sequence.frame))
        return pixels.clone()


def test_each_video_is_one_sequence_of_its_frames_in_order(tmp_path):
    stage = FrameNumbers()
    pipeline = Remasterer([stage], device="cpu", precision="fp32", tile=0)
    source = make_clip(tmp_path / "in.mkv", pts=(0, 40, 80), audio=False)
    remaster_video(source, tmp_path / "one.mkv", pipeline)
    remaster_video(source, tmp_path / "two.mkv", pipeline)
    first, second = stage.seen[:3], stage.seen[3:]
    assert [frame for _, frame in first] == [0, 1, 2] and [frame for _, frame in second] == [0, 1, 2]
    assert first[0][0] is not None and all(sequence is first[0][0] for sequence, _ in first)
    assert second[0][0] is not first[0][0]  # a fresh sequence for each video
    pipeline.run_image(Image(torch.rand(1, 3, 8, 8)))
    assert stage.seen[-1] == (None, -1) and pipeline.sequence is None  # the caller's pipeline is as it was


def test_each_segment_starts_a_fresh_sequence(tmp_path):
    from clips import LONG_PTS

    stage = FrameNumbers()
    pipeline = Remasterer([stage], device="cpu", precision="fp32", tile=0)
    source = make_clip(tmp_path / "in.mkv", pts=LONG_PTS, gop=8, audio=False)
    report = remaster_video(source, tmp_path / "out.mkv", pipeline, segment_seconds=0)
    starts = [index for index, (_, frame) in enumerate(stage.seen) if frame == 0]
    assert len(starts) == report.segments >= 3 and starts[0] == 0  # a segment starts at a keyframe, anywhere
    sequences = [stage.seen[start][0] for start in starts]
    assert len({id(sequence) for sequence in sequences}) == len(sequences)
