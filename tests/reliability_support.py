"""Helpers of the reliability tests (test_corpus.py, test_batch.py): the invariants every case is held to.

* the input file's bytes are unchanged;
* no temporary file is left behind, in the input or the output folder;
* every output that exists is complete (decodes fully);
* a failure is one line that names the file and the reason.

Each case also records itself in a tally (when ``REMASTER_RELIABILITY_TALLY`` names a file), from
which ``scripts/reliability_counts.py`` builds the counts table of docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

import remaster
from remaster.cli import main
from remaster.errors import RemasterError

HERE = Path(__file__).parent
CORPUS = HERE / "corpus"
FAULT_PLUGIN = HERE / "fault_plugin"




def install_fault_plugin(site: Path) -> Path:
    """Lay out a dist-info whose ``remaster`` entry point is tests/fault_plugin; returns ``site``."""
    info = site / "remaster_fault_plugin-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: remaster-fault-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[remaster]\nfault = remaster_fault_plugin\n")
    return site


def snapshot(*folders: Path) -> dict[Path, bytes]:
    """Every file under ``folders`` with its bytes."""
    return {p: p.read_bytes() for folder in folders if folder.exists() for p in folder.rglob("*") if p.is_file()}


def temp_files(*folders: Path) -> list[Path]:
    """Leftovers of an atomic write (``.name.xxxx.tmp``) or anything else hidden."""
    return [p for folder in folders if folder.exists() for p in folder.rglob(".*")]


def decodes_completely(path: Path) -> bool:
    """The file decodes to the end (a partial PNG/JPEG/TIFF would not)."""
    if path.suffix.lower() == ".json":
        json.loads(path.read_text())
        return True
    try:
        remaster.io.load(path)
    except RemasterError:
        return False
    return True


def tally(kind: str, case: str, lost: int = 0, **counts: float) -> None:
    """Record one case for scripts/reliability_counts.py (a no-op unless it asked)."""
    target = os.environ.get("REMASTER_RELIABILITY_TALLY")
    if target:
        with open(target, "a", encoding="utf-8") as file:
            file.write(json.dumps({"kind": kind, "case": case, "lost": lost, **counts}) + "\n")


def check_invariants(kind: str, case: str, inputs: dict[Path, bytes], *folders: Path,
                     expected_outputs: list[Path] = ()) -> None:
    """Inputs unchanged, no temp files, outputs complete, the expected outputs present; tallied."""
    lost = sum(1 for path, data in inputs.items() if not path.exists() or path.read_bytes() != data)
    lost += sum(1 for path in expected_outputs if not (path.exists() and decodes_completely(path)))
    tally(kind, case, lost, inputs=len(inputs), outputs=len(expected_outputs))
    assert lost == 0, "an input changed or a finished output is missing or incomplete"
    assert not temp_files(*folders), temp_files(*folders)
    for folder in folders:
        for path in folder.rglob("*") if folder.exists() else ():
            if path.is_file() and path not in inputs:
                assert decodes_completely(path), f"{path} is incomplete"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    """Run ``remaster`` in-process; returns the exit code and the error lines it printed."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.startswith("remaster: error:")]


def stage_input(tmp_path: Path, *names: str) -> Path:
    """Copy corpus files into a fresh input folder (the corpus itself is never handed to remaster)."""
    folder = tmp_path / "in"
    folder.mkdir(exist_ok=True)
    for name in names:
        shutil.copyfile(CORPUS / name, folder / name)
    return folder


def upscaled(array: np.ndarray, factor: int = 2) -> np.ndarray:
    return np.repeat(np.repeat(array, factor, axis=0), factor, axis=1)


@contextmanager
def mounted_tmpfs(folder: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted on ``folder`` for the test (needs root); the test is skipped, with the reason, if refused."""
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs ({options}): {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)
