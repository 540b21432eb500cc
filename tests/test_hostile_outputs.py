"""Issue 21: every file remaster writes is a regular file, published without replacing another run's; a run never
takes its own outputs as inputs; several inputs never become a folder named like a file."""

from __future__ import annotations

import errno
import os
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image as PILImage

sys.path.insert(0, str(Path(__file__).parent))

from reliability_support import run_cli, tally  # noqa: E402
from remaster import io  # noqa: E402
from remaster.errors import OutputError  # noqa: E402

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo (POSIX)")


def picture(path: Path, size: tuple[int, int] = (8, 6)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.new("RGB", size, (10, 200, 30)).save(path)
    return path


def test_a_file_published_without_replace_never_replaces_one(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"first")
    with pytest.raises(OutputError, match="already exists"):
        io.write_atomic(target, b"second", replace=False)
    assert target.read_bytes() == b"first" and sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
    io.write_atomic(target, b"third")  # replace is what --overwrite asks for
    assert target.read_bytes() == b"third"


def test_of_concurrent_writers_of_one_name_exactly_one_wins(tmp_path):
    """Two runs that both found the name free: one publishes, the other is told, every time (no lie in a report)."""
    for round_ in range(20):
        target = tmp_path / f"out{round_}.png"
        start, outcomes = threading.Barrier(2), []

        def write(data: bytes, start: threading.Barrier = start, target: Path = target,
                  outcomes: list[bytes | None] = outcomes) -> None:
            start.wait(timeout=10)
            try:
                io.write_atomic(target, data, replace=False)
                outcomes.append(data)
            except OutputError:
                outcomes.append(None)

        threads = [threading.Thread(target=write, args=(bytes([n]) * 1000,)) for n in (1, 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        winners = [data for data in outcomes if data is not None]
        assert len(winners) == 1 and target.read_bytes() == winners[0]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    tally("fault", "two writers of one name at once, 20 rounds")


def test_without_hard_links_the_fallback_keeps_the_guarantee(tmp_path, monkeypatch):
    def no_links(*args: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)  # as on a file system without hard links
    target = tmp_path / "out.png"
    io.write_atomic(target, b"first", replace=False)
    with pytest.raises(OutputError, match="already exists"):
        io.write_atomic(target, b"second", replace=False)
    assert target.read_bytes() == b"first" and len(list(tmp_path.iterdir())) == 1


@needs_fifo
def test_a_fifo_in_the_way_is_refused_never_replaced(tmp_path, capsys):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    image = io.load(picture(tmp_path / "in" / "a.png"))
    for overwrite in (False, True):
        with pytest.raises(OutputError):
            io.save(image, fifo, overwrite=overwrite)
    with pytest.raises(OutputError, match="not a regular file"):
        io.write_atomic(fifo, b"data")
    report = tmp_path / "report.json"
    os.mkfifo(report)
    code, errors = run_cli(capsys, "upscale", tmp_path / "in" / "a.png", "-o", tmp_path / "out.png", "--model",
                           "nearest", "--report", report)
    assert code == 1 and "not a regular file" in errors[0]
    assert not (tmp_path / "out.png").exists()  # refused before any work
    assert fifo.is_fifo() and report.is_fifo()
    tally("bad input", "a FIFO where an output or the report goes")


def test_a_run_never_takes_its_own_outputs_as_inputs(tmp_path, capsys):
    folder = tmp_path / "photos"
    picture(folder / "a.png")
    picture(folder / "sub" / "b.png")
    out = folder / "out"
    for _ in range(2):  # the second run, as a resume, finds out/ inside photos/ full of images
        code, _ = run_cli(capsys, "upscale", folder, "-o", out, "--model", "nearest", "--scale", "2",
                          "--resume")
        assert code == 0
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == ["a.png", "sub/b.png"]
    tally("bad input", "-o inside the input folder, run again")


def test_several_inputs_never_make_a_folder_named_like_a_file(tmp_path, capsys):
    a, b = picture(tmp_path / "a.png"), picture(tmp_path / "b.png")
    code, errors = run_cli(capsys, "upscale", a, b, "-o", tmp_path / "out.png", "--model", "nearest")
    assert code == 2 and "names one image file, but there are 2 inputs" in errors[0]
    assert not (tmp_path / "out.png").exists()


@pytest.mark.skipif(os.name != "posix", reason="temporary files are told apart by their writer's lock (fcntl)")
def test_a_killed_writers_temporary_file_is_cleaned_only_when_its_owner_is_gone(tmp_path):
    import fcntl

    from remaster.io.atomic import LEFTOVER_AGE_S

    folder = tmp_path / "out"
    folder.mkdir()
    old = time.time() - 10 * LEFTOVER_AGE_S
    orphan, young, alive, other = (folder / name for name in (
        ".a.png.0123abcd.tmp", ".b.png.89abcdef.tmp", ".c.png.deadbeef.tmp", ".segment-0001.part"))
    for path in (orphan, young, alive, other):
        path.write_bytes(b"half a picture")
    for path in (orphan, alive, other):
        os.utime(path, (old, old))
    holder = os.open(alive, os.O_RDONLY)  # a live writer's lock, as write_atomic holds it
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        io.write_atomic(folder / "d.png", b"new")  # the next write into that folder
    finally:
        os.close(holder)
    assert not orphan.exists()  # its owner is gone: cleaned
    assert young.exists() and alive.exists() and other.exists()  # maybe being written; a live run's; not ours
    assert (folder / "d.png").read_bytes() == b"new"


@pytest.mark.skipif(os.name != "posix", reason="temporary files are told apart by their writer's lock (fcntl)")
def test_a_run_removes_its_outputs_temporary_files_once_their_writers_let_go_and_waits_no_longer_than_told(tmp_path):
    import fcntl

    from remaster.io.atomic import remove_temporaries

    folder = tmp_path / "out"
    folder.mkdir()
    fresh, released, held, others = (folder / name for name in (
        ".a.png.0123abcd.tmp", ".b.png.89abcdef.tmp", ".c.png.deadbeef.tmp", ".d.png.00000000.tmp"))
    for path in (fresh, released, held, others):
        path.write_bytes(b"half a picture")
    locks = {path: os.open(path, os.O_RDONLY) for path in (released, held)}
    for fd in locks.values():
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a writer still running holds them
    letting_go = threading.Timer(0.3, os.close, [locks.pop(released)])  # that writer ends meanwhile
    letting_go.start()
    try:
        started = time.monotonic()
        left = remove_temporaries(folder, {"a.png", "b.png", "c.png"}, until=started + 1.0)
        waited = time.monotonic() - started
    finally:
        letting_go.join()
        os.close(locks.pop(held))
    assert left == [held] and 1.0 <= waited < 5  # a writer alive at the deadline keeps its file
    assert not fresh.exists() and not released.exists()  # young as they are: their writers are gone
    assert held.exists() and others.exists()  # not one of the outputs named
