"""The side files of a video run: its finished segments and the manifest that records them, beside the output.

``clip_x4.mkv`` is worked on in ``.clip_x4.mkv.parts/``: ``manifest.json`` (the source, the job, the segments and
which are finished, each with its file's SHA-256) and ``part-00003.mkv`` for each finished segment, written
atomically. A run killed at any moment loses at most the segment it was writing; the same command with
``resume=True`` (``--resume``) goes on from there. The folder is removed once the output is complete.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from remaster.errors import UsageError
from remaster.io.atomic import clean_leftovers, write_atomic
from remaster.video.segments import Segment, SegmentPlan

__all__ = ["Manifest", "FinishedSegment", "parts_folder"]

_VERSION = 1


def parts_folder(target: Path) -> Path:
    """Where the side files of the run that writes ``target`` live."""
    return target.parent / f".{target.name}.parts"


@dataclass
class FinishedSegment:
    """A segment written to its file: what the manifest records of it."""

    file: str
    sha256: str
    frames: int
    codec: str = ""
    pixel_format: str = ""
    colour: dict[str, str] = field(default_factory=dict)
    stages: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


@dataclass
class Manifest:
    """The record of a video run's finished segments (see the module's doc).

    Attributes:
        folder: The side folder.
        source: The source's identity: path, size and modification time.
        job: What the run does (pipeline, encoder, container): a resumed run must do the same.
        segments: The segments as ``[start, end, frames]``.
        done: The finished segments by index.
    """

    folder: Path
    source: dict[str, Any]
    job: dict[str, Any]
    segments: list[list[int | None]]
    done: dict[int, FinishedSegment] = field(default_factory=dict)

    @classmethod
    def begin(cls, folder: Path, source: Path, job: dict[str, Any], plan: SegmentPlan, *,
              resume: bool) -> Manifest:
        """The manifest of a run about to start: a fresh one (an earlier run's side files removed), or with
        ``resume`` the earlier one, its finished segments checked against their SHA-256 (a segment whose file is
        missing or changed is done again).

        Raises:
            UsageError: ``resume`` where the earlier run had another source or did something else.
        """
        identity = _identity(source)
        if resume and (folder / "manifest.json").is_file():
            earlier = cls._load(folder)
            if earlier is not None:
                if earlier.source != identity or earlier.job != job or earlier.segments != plan.as_json():
                    what = "another source file" if earlier.source != identity else "other settings"
                    raise UsageError(f"the unfinished run in {folder} was started with {what}", path=source,
                                     hint="run the same command again, or leave out {opt:resume} to start over")
                clean_leftovers(folder)
                earlier.done = {index: part for index, part in earlier.done.items() if earlier._intact(part)}
                return earlier
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(mode=0o700, parents=True)
        manifest = cls(folder, identity, job, plan.as_json())
        manifest.save()
        return manifest

    def part_path(self, segment: Segment, suffix: str) -> Path:
        """The file segment ``segment`` is written to."""
        return self.folder / f"part-{segment.index:05d}{suffix}"

    def finish(self, segment: Segment, part: FinishedSegment) -> None:
        """Record ``segment`` as written (its file is in place), atomically."""
        self.done[segment.index] = part
        self.save()

    def save(self) -> None:
        """Write the manifest through a temporary file: a crash leaves the old one or the new one."""
        data = {"remaster_video": _VERSION, "source": self.source, "job": self.job, "segments": self.segments,
                "done": {str(index): vars(part) for index, part in sorted(self.done.items())}}
        write_atomic(self.folder / "manifest.json", json.dumps(data, indent=1).encode())

    def remove(self) -> None:
        """Delete the side folder (the output is complete)."""
        shutil.rmtree(self.folder, ignore_errors=True)

    @classmethod
    def _load(cls, folder: Path) -> Manifest | None:
        try:
            data = json.loads((folder / "manifest.json").read_text())
            if data.get("remaster_video") != _VERSION:
                return None
            done = {int(index): FinishedSegment(**part) for index, part in data["done"].items()}
            return cls(folder, data["source"], data["job"], data["segments"], done)
        except (OSError, ValueError, TypeError, KeyError):
            return None  # unreadable: the run starts over

    def _intact(self, part: FinishedSegment) -> bool:
        path = self.folder / part.file
        return path.is_file() and file_sha256(path) == part.sha256


def file_sha256(path: Path) -> str:
    """The SHA-256 of the file at ``path``, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _identity(source: Path) -> dict[str, Any]:
    stat = source.stat()
    return {"path": str(source.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
