"""Folder runs with reading and writing overlapped: input order kept, memory bounded, failures named, Ctrl-C safe."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from PIL import Image as PILImage

from remaster import Remasterer, io
from remaster.runs.local import run_items
from remaster.runs.plan import BatchItem


def make_items(tmp_path: Path, count: int) -> list[BatchItem]:
    (tmp_path / "in").mkdir()
    items = []
    for index in range(count):
        source = tmp_path / "in" / f"{index:02d}.png"
        PILImage.new("RGB", (6 + index, 5), (index * 20, 40, 90)).save(source)
        items.append(BatchItem(source, tmp_path / "out" / f"{index:02d}.png"))
    return items


class Watched(Remasterer):
    """A pipeline that records when each image runs, and can fail or stop on one."""

    def __init__(self, *, fail_on: int | None = None, interrupt_on: int | None = None):
        super().__init__(["nearest(scale=2)"], precision="fp32")
        self.ran: list[int] = []
        self.quantised: list[bool] = []
        self.fail_on, self.interrupt_on = fail_on, interrupt_on

    def run_image(self, image, **kwargs):  # what run_for_file calls
        index = int(Path(image.meta.source).stem)
        self.ran.append(index)
        self.quantised.append(kwargs.get("quantise", False))
        if index == self.fail_on:
            raise ValueError("broken on purpose")
        if index == self.interrupt_on:
            raise KeyboardInterrupt
        time.sleep(0.01)
        return super().run_image(image, **kwargs)


def test_outcomes_come_in_input_order_and_equal_a_sequential_run(tmp_path):
    items = make_items(tmp_path, 7)
    items[2].skipped = True
    remasterer = Watched()
    yielded = [item.source.name for item in run_items(remasterer, items)]
    assert yielded == [item.source.name for item in items]
    assert remasterer.quantised == [True] * 6  # PNG of an 8-bit source: the integer result, as run_file makes it
    assert [item.ok for item in items] == [True, True, False, True, True, True, True]
    sequential = Remasterer(["nearest(scale=2)"], precision="fp32")
    for item in items:
        if not item.skipped:
            expected = sequential.run_image(io.load(item.source))
            assert (io.load(item.target).to_numpy() == expected.to_numpy()).all()
            assert item.seconds > 0 and item.extras["stages"][0]["stage"].startswith("nearest")


def test_failures_are_one_line_naming_the_file_and_the_run_goes_on(tmp_path):
    items = make_items(tmp_path, 4)
    items[0].source.write_bytes(b"not an image")  # fails while read
    items[3].target.parent.mkdir(parents=True)
    items[3].target.write_bytes(b"already there")  # fails before it is read, without --overwrite
    list(run_items(Watched(fail_on=1), items))  # 1 fails while it runs
    assert [item.ok for item in items] == [False, False, True, False]
    assert str(items[0].source) in items[0].error
    assert items[1].error == f"{items[1].source}: ValueError: broken on purpose"
    assert isinstance(items[1].exception, ValueError)
    assert "already exists" in items[3].error and items[3].target.read_bytes() == b"already there"


def test_the_reader_stays_a_bounded_number_of_images_ahead(tmp_path, monkeypatch):
    items = make_items(tmp_path, 8)
    loads: list[int] = []
    real_load = io.load

    def counting_load(source, **kwargs):
        loads.append(int(Path(source).stem))
        return real_load(source, **kwargs)

    remasterer = Watched()
    seen_ahead = []

    def started(index, item):
        time.sleep(0.05)  # give the reader every chance to run ahead
        seen_ahead.append(max(loads) - index)

    monkeypatch.setattr("remaster.io.load", counting_load)
    list(run_items(remasterer, items, read_ahead=2, on_start=started))
    # the one running, two waiting in the queue, and one read that waits to be put there
    assert max(seen_ahead) <= 3, seen_ahead
    assert all(item.ok for item in items)


def test_ctrl_c_writes_what_was_computed_starts_nothing_new_and_leaves_no_thread(tmp_path):
    items = make_items(tmp_path, 6)
    remasterer = Watched(interrupt_on=3)
    with pytest.raises(KeyboardInterrupt):
        list(run_items(remasterer, items))
    assert remasterer.ran == [0, 1, 2, 3]
    assert [item.ok for item in items] == [True, True, True, False, False, False]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["00.png", "01.png", "02.png"]  # no temp file
    assert not [t for t in threading.enumerate() if t.name.startswith("remaster-")]


class WaitsForTheLine(Watched):
    """Runs image 1 only once image 0's outcome was reported: a report that waits for image 1 would never come."""

    def __init__(self, reported: threading.Event):
        super().__init__()
        self.reported = reported

    def run_image(self, image, **kwargs):
        if int(Path(image.meta.source).stem) == 1:
            assert self.reported.wait(timeout=30), "image 0's line waited for image 1 to finish"
        return super().run_image(image, **kwargs)


def test_each_outcome_is_reported_when_its_output_is_on_disk(tmp_path):
    """Issue 21: a written image's line came only after the next image finished (26 s later on a photo)."""
    items = make_items(tmp_path, 3)
    reported = threading.Event()
    seen: list[tuple[str, bool]] = []

    def on_done(item: BatchItem) -> None:
        seen.append((item.source.name, Path(item.target).is_file()))
        reported.set()

    list(run_items(WaitsForTheLine(reported), items, on_done=on_done))
    assert seen == [(item.source.name, True) for item in items]  # each one on disk when reported


def test_after_ctrl_c_every_image_written_is_reported(tmp_path):
    items = make_items(tmp_path, 6)
    seen: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        list(run_items(Watched(interrupt_on=3), items, on_done=lambda item: seen.append(item.source.name)))
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert sorted(seen) == written == ["00.png", "01.png", "02.png"]
