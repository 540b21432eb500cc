"""Issue 22: a pipeline told that its images are consecutive frames of one sequence, and stages keeping state."""

from __future__ import annotations

import torch

from remaster import FrameSequence, Image, Remasterer, RunContext, Stage, StageInfo, Tiling
from remaster.plugin import FrameSequence as PluginFrameSequence


class Counter:
    def __init__(self) -> None:
        self.frames: list[int] = []


class Remembers(Stage):
    """Records, per call, the frame it was told and how many frames its own state has seen."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int | None, int]] = []

    def run(self, pixels: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        if ctx.sequence is None:
            self.calls.append((None, 0))
        else:
            counter = ctx.sequence.state(self, Counter)
            counter.frames.append(ctx.sequence.frame)
            self.calls.append((ctx.sequence.frame, len(counter.frames)))
        return pixels.clone()


def frame() -> Image:
    return Image(torch.rand(1, 3, 8, 8))


def test_the_sequence_is_the_plugin_surfaces_and_keeps_state_per_owner():
    assert FrameSequence is PluginFrameSequence
    sequence = FrameSequence("clip.mp4")
    assert sequence.frame == -1 and sequence.advance() == 0 and sequence.frame == 0
    one, two = object(), object()
    assert sequence.state(one, list) is sequence.state(one, list)
    assert sequence.state(one, list) is not sequence.state(two, list)
    sequence.reset()
    assert sequence.frame == -1 and "clip.mp4" in repr(sequence)


def test_a_sequence_view_runs_frames_in_order_and_a_still_image_has_none():
    stage = Remembers()
    pipeline = Remasterer([stage], device="cpu", precision="fp32")
    frames = pipeline.for_sequence()
    for _ in range(3):
        frames.run_image(frame())
    pipeline.run_image(frame())  # the pipeline itself is unchanged: a still image
    assert stage.calls == [(0, 1), (1, 2), (2, 3), (None, 0)]
    assert frames.stages is pipeline.stages and pipeline.sequence is None


def test_each_sequence_starts_fresh_and_an_explicit_one_wins():
    stage = Remembers()
    pipeline = Remasterer([stage], device="cpu", precision="fp32")
    first, second = pipeline.for_sequence(), pipeline.for_sequence()
    first.run_image(frame())
    second.run_image(frame())
    mine = FrameSequence()
    pipeline.run_image(frame(), sequence=mine)
    pipeline.run_image(frame(), sequence=mine)
    assert stage.calls == [(0, 1), (0, 1), (0, 1), (1, 2)]


def test_tiles_and_the_alpha_pass_are_not_frames():
    stage = Remembers()  # a plain stage object gets the default info: tiling supported
    stage.tile_overlap = 0
    tiled = Remasterer([stage], device="cpu", precision="fp32", tile=32).for_sequence()
    tiled.run_image(Image(torch.rand(1, 3, 64, 64)))
    assert len(stage.calls) == 4 and all(call == (None, 0) for call in stage.calls)

    stage = Remembers()
    stage.info = StageInfo(alpha="process", tiling=Tiling.UNSUPPORTED)  # type: ignore[attr-defined]
    frames = Remasterer([stage], device="cpu", precision="fp32").for_sequence()
    frames.run_image(Image(torch.rand(1, 3, 8, 8), alpha=torch.rand(1, 1, 8, 8)))
    assert stage.calls == [(0, 1), (None, 0)]  # colour is the frame; its alpha plane is not the next one
