"""Consecutive frames of one sequence, and the state stages keep across them (:class:`FrameSequence`).

A still image is run on its own; the frames of a video are not: a face detector's boxes, a temporal
denoiser's history, a colour stage's running average all want to know the frame before. The caller that
runs frames in order — the video code, one per video (and one per segment of it) — makes a
:class:`FrameSequence` and gives it to every frame's run (``Remasterer.run_image(..., sequence=...)``); the
pipeline moves it on one frame per run and hands it to each stage as ``RunContext.sequence``. Where there is
none (a still image, a folder of photos) a stage behaves as it always did.

A stage keeps its state here under its own key, so that two stages (or two of the same kind) in one
pipeline never share it, and the state lives exactly as long as the sequence::

    def run(self, pixels, ctx):
        if ctx.sequence is not None:
            history = ctx.sequence.state(self, MyHistory)   # made on the sequence's first frame
            ...

Standard library only, like the rest of :mod:`remaster.plugin`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["FrameSequence"]

T = TypeVar("T")


class FrameSequence:
    """The frames of one video (or one segment of it) run in order, and the per-stage state kept across them.

    Not thread-safe and not shared between sequences: one object per sequence, used by one run at a time.
    Frames must be run in display order; a new sequence (or :meth:`reset`) starts fresh, e.g. at a cut or at
    the start of a segment that is run on its own.

    Args:
        name: What the sequence is, for messages (a file name); optional.
    """

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._frame = -1
        self._states: dict[int, tuple[object, Any]] = {}

    @property
    def frame(self) -> int:
        """The number of the frame being run, from 0; -1 before the first."""
        return self._frame

    def advance(self) -> int:
        """Start the next frame and return its number. The pipeline calls it once per image it runs."""
        self._frame += 1
        return self._frame

    def state(self, owner: object, factory: Callable[[], T]) -> T:
        """The state ``owner`` keeps in this sequence: made by ``factory()`` the first time it is asked for.

        Args:
            owner: Whose state it is; a stage passes itself. Told apart by identity, and kept alive by the
                sequence, so one stage's state is never another's.
            factory: Makes the state on the first frame the owner runs on.
        """
        held = self._states.get(id(owner))
        if held is None:
            held = self._states[id(owner)] = (owner, factory())
        return held[1]

    def reset(self) -> None:
        """Forget every stage's state and start again from frame 0 (a cut, a segment run on its own)."""
        self._frame = -1
        self._states.clear()

    def __repr__(self) -> str:
        return f"FrameSequence({self.name!r}, frame={self._frame}, states={len(self._states)})"
