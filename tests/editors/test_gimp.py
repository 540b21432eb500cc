"""GIMP 3 for real: the plug-in runs through the PDB inside GIMP 3.0 in a Debian trixie chroot.

Debian 12 ships only GIMP 2.10 (no Python plug-ins), so ``make test-gimp`` builds a trixie chroot with
GIMP 3 once (scripts/gimp3-chroot.sh; outside git, reused) and this test runs ``gimp-console-3.0`` in it
(scripts/gimp3-run.sh). The chroot shares the host's network, so the plug-in reaches the host's
``remaster serve`` on loopback. The driver writes a sentinel file; the test compares the new layer's size
and pixels with the library's output for the same input. Skips, with the reason, where there is no chroot.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from remaster import Remasterer, io
from remaster.server.client import encode_png

ROOT = Path(__file__).resolve().parents[2]
CHROOT = Path(os.environ.get("REMASTER_GIMP_CHROOT", "/var/cache/remaster/gimp3-trixie"))
PIPELINE = "bicubic(scale=2) | sepia"

pytestmark = [pytest.mark.slow, pytest.mark.editors]


def _missing() -> str | None:
    if not (CHROOT / ".ready").exists():
        failed = CHROOT.with_name(CHROOT.name + ".failed")
        why = f": {failed.read_text().strip()}" if failed.exists() else ""
        return f"no GIMP 3 chroot at {CHROOT} (make test-gimp builds it; needs root and debootstrap){why}"
    if os.geteuid() != 0:
        return "running GIMP in the chroot needs root (chroot, mount)"
    if shutil.which("unshare") is None:
        return "unshare (util-linux) not found"
    return None


@pytest.mark.skipif(_missing() is not None, reason=str(_missing()))
def test_plugin_adds_the_remastered_layer_through_the_pdb(remaster_server):
    work = Path(tempfile.mkdtemp(prefix="remaster-test-", dir=CHROOT / "tmp"))
    inside = Path("/tmp") / work.name  # the same folder as GIMP sees it
    try:
        _server = remaster_server("--device", "cpu", server_file=work / "server.json")  # kept alive
        plugins = work / "home" / ".config" / "GIMP" / "3.0" / "plug-ins"
        subprocess.run([sys.executable, str(ROOT / "scripts/install_editor_plugin.py"), "gimp", str(plugins)],
                       check=True, capture_output=True)
        shutil.copy(Path(__file__).parent / "gimp_driver.py", work)
        rng = np.random.default_rng(0)
        cases, inputs = [], []
        for depth, (height, width) in ((8, (20, 28)), (16, (17, 23))):
            dtype = np.uint16 if depth == 16 else np.uint8
            rgba = rng.integers(0, 2**depth, (height, width, 4), dtype=dtype)
            rgba[..., 3] = 2**depth - 1
            png = encode_png(rgba.tobytes(), width, height, 4, depth)
            (work / f"in{depth}.png").write_bytes(png)
            cases.append({"depth": depth, "width": width, "height": height, "png": str(inside / f"in{depth}.png"),
                          "pipeline": PIPELINE})
            inputs.append((png, rgba, depth))
        cases.append({"depth": 8, "width": 28, "height": 20, "png": str(inside / "in8.png"),
                      "pipeline": "bicubik(scale=2)"})  # a server error must reach the caller as the PDB error
        (work / "out").mkdir()
        (work / "job.json").write_text(json.dumps({"out": str(inside / "out"), "cases": cases}))
        command = ["env", f"HOME={inside / 'home'}", f"REMASTER_SERVER_FILE={inside / 'server.json'}",
                   f"REMASTER_GIMP_JOB={inside / 'job.json'}",
                   "gimp-console-3.0", "-i", "-n", "--batch-interpreter=python-fu-eval",
                   "-b", f"exec(open('{inside / 'gimp_driver.py'}').read())", "--quit"]
        run = subprocess.run([str(ROOT / "scripts/gimp3-run.sh"), str(CHROOT), *command], capture_output=True,
                             text=True, timeout=300)
        sentinel = work / "out" / "sentinel.json"
        assert sentinel.exists(), f"GIMP did not run the driver:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
        report = json.loads(sentinel.read_text())
        assert report["ok"], report.get("error")
        assert report["gimp"].startswith("3.") and report["registered"]
        for case, (png, rgba, depth) in zip(report["cases"], inputs):
            assert case["status"] == "success", case
            height, width = rgba.shape[:2]
            assert case["image"] == [width * 2, height * 2]  # the canvas grew with the upscale
            assert case["layers"] == ["input (remaster)", "input"]  # above the layer it came from
            assert case["new_layer"] == [width * 2, height * 2] and case["offsets"] == [0, 0]
            dtype = np.uint16 if depth == 16 else np.uint8
            got = np.frombuffer(Path(work / "out" / Path(case["pixels"]).name).read_bytes(), dtype)
            want = io.to_numpy(Remasterer(PIPELINE, device="cpu").run_image(io.load(png)), dtype)
            np.testing.assert_array_equal(got.reshape(want.shape), want)
        failed = report["cases"][-1]
        assert failed["status"] == "execution-error" and "bicubik" in failed.get("message", ""), failed
        assert failed["layers"] == ["input"]  # nothing added on failure
    finally:
        shutil.rmtree(work, ignore_errors=True)
