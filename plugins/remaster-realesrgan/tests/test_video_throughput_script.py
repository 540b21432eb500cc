"""benchmarks/video_throughput.py (issue 22) still runs: three paths on a tiny clip, its JSON and its doc section."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "benchmarks" / "video_throughput.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("video_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_sizes_and_sampled_frames(script):
    assert script.parse_size("854x480") == (854, 480)
    with pytest.raises(Exception, match="even"):
        script.parse_size("853x480")
    assert script.sampled(100, 4) == [0, 33, 66, 99]
    assert script.sampled(3, 8) == [0, 1, 2] and script.sampled(5, 1) == [0]


def test_without_ffmpeg_it_refuses_with_one_line(script, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg on this PATH
    assert script.main(["--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ffmpeg" in err and "apt-get install ffmpeg" in err
    assert not (tmp_path / "r.json").exists()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
                    reason="needs the ffmpeg binary (make ffmpeg-env, or apt-get install ffmpeg)")
def test_a_tiny_run_measures_the_three_paths_and_writes_its_section(script, tmp_path):
    peers = subprocess.run([sys.executable, "-c", "import sys, torchvision.transforms.functional as f; "
                            "sys.modules.setdefault('torchvision.transforms.functional_tensor', f); import realesrgan"],
                           capture_output=True, check=False)
    if peers.returncode:
        pytest.skip("needs the test-only peers of requirements-peers.txt (realesrgan)")
    doc = tmp_path / "video.md"
    doc.write_text("# Videos\n\n" + "\n\n".join(f"{begin}\nplaceholder\n{end}" for begin, end in
                                                 map(script.markers, script.CASES)) + "\n\nafter\n")
    out = tmp_path / "r.json"
    assert script.main(["--case", "animevideov3", "--frames", "3", "--size", "64x48", "--psnr-frames", "2",
                        "--out", str(out), "--docs", str(doc)]) == 0
    result = json.loads(out.read_text())
    case = result["cases"][0]
    assert {name: path["frames"] for name, path in case["paths"].items()} == {"remaster": 3, "model": 3, "official": 3}
    assert all(path["fps"] > 0 for path in case["paths"].values())
    assert case["psnr_frames"] == [0, 2] and min(case["psnr"]["official_vs_remaster_fp32"]) >= 45
    text = doc.read_text()
    assert "### realesr-animevideov3 ×4, 64×48, 3 frames" in text and "remaster / model alone" in text
    assert text.count("placeholder") == 1 and text.endswith("after\n")  # the x4plus section and the rest kept
    assert "`python benchmarks/video_throughput.py --case animevideov3" in text
