"""Issue 22, bad input: not a video, a corrupt or truncated file, a disk that fills up — one line naming the file
and what to do, exit 1, nothing at the output path, the other items of the folder run still done."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("av")
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from clips import make_clip  # noqa: E402

from reliability_support import mounted_tmpfs, run_cli  # noqa: E402

#: Twelve seconds at 8 fps: cut in half, it is six seconds short of what its header says.
TWELVE_SECONDS = tuple(125 * i for i in range(96))


def test_corrupt_and_truncated_videos_are_one_line_each_and_the_rest_is_done(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    make_clip(folder / "good.mkv")
    whole = make_clip(tmp_path / "whole.mkv", pts=TWELVE_SECONDS, gop=16).read_bytes()
    (folder / "truncated.mkv").write_bytes(whole[:len(whole) // 2])
    (folder / "corrupt.mp4").write_bytes(os.urandom(5000))
    code, errors = run_cli(capsys, "run", "nearest(scale=2)", folder, "-o", tmp_path / "out")
    assert code == 1
    corrupt, truncated = errors
    assert corrupt == (f"remaster: error: {folder / 'corrupt.mp4'}: cannot open the video: invalid data found when "
                       "processing input (the file is damaged or not a video remaster can decode; re-export it)")
    assert re.fullmatch(rf"remaster: error: {re.escape(str(folder / 'truncated.mkv'))}: is truncated: its header "
                        r"says [56]\.\d s more than its packets hold \(the copy is incomplete: copy, download or "
                        r"export it again\)", truncated), truncated
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.mkv"]  # no side folder, no temporary


def test_a_disk_that_fills_up_is_one_line_and_nothing_at_the_output_path(tmp_path, capsys):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    folder = tmp_path / "in"
    folder.mkdir()
    make_clip(folder / "big.mkv", pts=TWELVE_SECONDS, gop=16)  # noise: ~1.5 MB upscaled, in two segments
    with mounted_tmpfs(tmp_path / "tiny-disk", "size=600k") as disk:
        code, errors = run_cli(capsys, "run", "nearest(scale=2)", folder, "-o", disk)
        assert code == 1 and len(errors) == 1
        assert errors[0].startswith(f"remaster: error: {folder / 'big.mkv'}: {disk / 'big.mkv'}: could not write "
                                    "the video: no space left on device (free some space and run the same command "
                                    "again; with --resume")
        assert not (disk / "big.mkv").exists()
        leftovers = [p.name for p in disk.iterdir()]
        assert leftovers in ([], [".big.mkv.parts"])  # only finished segments, kept for --resume
        if leftovers:
            assert not [p for p in (disk / ".big.mkv.parts").iterdir() if p.name.endswith(".tmp")]
