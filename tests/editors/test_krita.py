"""Krita for real: the plug-in, installed as a user would, runs inside Krita 5 (kritarunner, Qt's offscreen platform).

``make test-krita`` installs Krita and PyQt5 from Debian when they are missing. Krita draws on Qt's ``offscreen``
platform, not under Xvfb: in one CI run ``xvfb-run -a`` chose display :99, its Xvfb did not start (xvfb-run hides
why, and goes on regardless) and Krita aborted ("could not connect to display :99"); offscreen needs no X server.

Krita's exit code says nothing (kritarunner exits 0 when the script fails), so the driver writes a sentinel file and
this test reads it, then compares the new layer's pixels with what the library makes from the same input.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from remaster import Remasterer, io
from remaster.server.client import encode_png, swap_red_blue

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = "bicubic(scale=2) | sepia"  # fast stand-ins for the networks; the plug-in does not care

pytestmark = [pytest.mark.slow, pytest.mark.editors]


def _desktop_environment() -> dict[str, str]:
    """This environment as a desktop would start Krita in: without an activated virtual environment.

    Krita's embedded Python takes its prefix from the first ``python3`` on ``PATH``; a venv's has no PyQt5, and
    Krita's scripting then cannot start.
    """
    env = dict(os.environ)
    venv = env.pop("VIRTUAL_ENV", None) or (sys.prefix if sys.prefix != sys.base_prefix else None)
    env.pop("PYTHONHOME", None)
    env.pop("DISPLAY", None)
    env["QT_QPA_PLATFORM"] = "offscreen"
    if venv:
        bin_dir = os.path.join(venv, "bin")
        env["PATH"] = os.pathsep.join(part for part in env.get("PATH", "").split(os.pathsep)
                                      if os.path.normpath(part) != os.path.normpath(bin_dir))
    return env


def _missing() -> str | None:
    if shutil.which("kritarunner") is None:
        return "kritarunner not found (make test-krita installs krita and python3-pyqt5 from Debian)"
    return None


def expected_rgba(rgba: np.ndarray, depth: int) -> np.ndarray:
    dtype = np.uint16 if depth == 16 else np.uint8
    data = encode_png(rgba.astype(f"={'u2' if depth == 16 else 'u1'}").tobytes(), rgba.shape[1], rgba.shape[0], 4,
                      depth)
    return io.to_numpy(Remasterer(PIPELINE, device="cpu").run_image(io.load(data)), dtype)


@pytest.mark.skipif(_missing() is not None, reason=str(_missing()))
def test_plugin_adds_the_remastered_layer_in_krita(remaster_server, tmp_path):
    server = remaster_server("--device", "cpu")
    pykrita = tmp_path / "pykrita"
    subprocess.run([sys.executable, str(ROOT / "scripts/install_editor_plugin.py"), "krita", str(pykrita)],
                   check=True, capture_output=True)
    rng = np.random.default_rng(0)
    cases, inputs = [], []
    for depth, (height, width) in ((8, (20, 28)), (16, (17, 23))):
        top = 2**depth
        rgba = rng.integers(0, top, (height, width, 4), dtype=np.uint16 if depth == 16 else np.uint8)
        rgba[..., 3] = top - 1  # opaque: Krita keeps colour under zero alpha differently from PNG readers
        raw = tmp_path / f"in{depth}.raw"
        raw.write_bytes(swap_red_blue(rgba.tobytes(), 4, depth))  # Krita's BGRA order
        cases.append({"depth": f"U{depth}", "width": width, "height": height, "pixels": str(raw),
                      "pipeline": PIPELINE})
        inputs.append((rgba, depth))
    cases.append({**cases[0], "pipeline": "bicubik(scale=2)"})  # a server error must reach the message box
    out = tmp_path / "out"
    out.mkdir()
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"pykrita": str(pykrita), "server_file": str(server.file), "out": str(out),
                               "cases": cases}))
    env = {**_desktop_environment(), "REMASTER_KRITA_JOB": str(job), "PYTHONPATH": str(Path(__file__).parent)}
    run = subprocess.run(["kritarunner", "-s", "krita_driver", "-f", "main"], env=env,
                         capture_output=True, text=True, timeout=300)
    sentinel = out / "sentinel.json"
    assert sentinel.exists(), f"Krita did not run the driver:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    report = json.loads(sentinel.read_text())
    assert report["ok"], report.get("error")
    assert report["krita"].startswith("5.") and report["extension_registered"]
    assert report["presets"] == ["upscale x4", "upscale x2", "custom pipeline"]
    assert report["pipelines"] == {
        "upscale x4/False": ["realesrgan-x4plus", False],
        "upscale x2/True": ["gfpgan(upscale=2.0, background='realesrgan-x4plus')", False],
        "custom pipeline/True": ["bicubic(scale=3)", True],  # the face box does not apply to custom pipelines
    }
    for case, (rgba, depth) in zip(report["cases"], inputs):
        height, width = rgba.shape[:2]
        assert case["document"] == [width * 2, height * 2]  # the canvas grew with the upscale
        assert case["layers"][-2:] == ["input", "input (remaster)"]  # above the layer it came from
        assert case["new_layer"]["depth"] == f"U{depth}" and case["new_layer"]["bounds"] == [width * 2, height * 2]
        assert case["last_progress"] == 1.0
        raw = Path(case["pixels"]).read_bytes()
        got = np.frombuffer(swap_red_blue(raw, 4, depth), np.uint16 if depth == 16 else np.uint8)
        got = got.reshape(height * 2, width * 2, 4)
        want = expected_rgba(rgba, depth)
        assert want.shape == got.shape
        np.testing.assert_array_equal(got, want)
    failed = report["cases"][-1]
    assert "no stage named 'bicubik'" in failed["error"] and "did you mean bicubic" in failed["error"]
    assert failed["layers"][-1] == "input"  # nothing added
    assert failed["document"] == [cases[0]["width"], cases[0]["height"]]  # nor resized
