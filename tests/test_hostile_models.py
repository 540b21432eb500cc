"""Issue 21: a model file cannot exhaust memory: a zip checkpoint whose members inflate far beyond the file is
refused before torch reads it (a 1 MB file inflated to 1 GiB and 1.7 GB of RSS before)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from reliability_support import tally  # noqa: E402
from remaster.errors import WeightsError  # noqa: E402
from remaster.weights import load_state_dict, load_state_dict_layout  # noqa: E402


def zip_bomb(folder: Path, inflated: int = 2**30) -> Path:
    """A real ``torch.save`` checkpoint rewritten with deflated members, its tensor data grown to ``inflated``
    zero bytes (about 1 MB on disk), written in chunks so the test itself never holds it."""
    real = folder / "real.pth"
    torch.save({"weight": torch.zeros(16)}, real)
    bomb = folder / "bomb.pth"
    with zipfile.ZipFile(real) as source, zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as out:
        for member in source.infolist():
            if member.filename.endswith("/data/0"):
                with out.open(member.filename, "w", force_zip64=True) as target:
                    chunk = bytes(2**24)
                    for _ in range(inflated // len(chunk)):
                        target.write(chunk)
            else:
                out.writestr(member.filename, source.read(member.filename))
    return bomb


def test_a_zip_bomb_checkpoint_is_refused_on_every_reading_path(tmp_path):
    bomb = zip_bomb(tmp_path)
    assert bomb.stat().st_size < 4 * 2**20
    for read in (load_state_dict, load_state_dict_layout):
        with pytest.raises(WeightsError, match="zip bomb"):
            read(bomb)
    assert load_state_dict(tmp_path / "real.pth")["weight"].shape == (16,)  # a real checkpoint still loads
    tally("bad input", "a zip-bomb checkpoint")


def test_refusing_a_zip_bomb_costs_no_memory(tmp_path):
    bomb = zip_bomb(tmp_path)
    code = textwrap.dedent(f"""
        import resource
        from remaster.errors import WeightsError
        from remaster.weights import load_state_dict
        load_state_dict({str(tmp_path / 'real.pth')!r})
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            load_state_dict({str(bomb)!r})
        except WeightsError:
            print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip(), result.stderr
    assert int(result.stdout.split()[-1]) < 32  # MiB
