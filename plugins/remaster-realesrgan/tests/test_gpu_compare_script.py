"""benchmarks/compare_realesrgan_gpu.py: its help and its refusal without CUDA, and the parts that need no GPU."""

from __future__ import annotations

import argparse
import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "compare_realesrgan_gpu.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("compare_realesrgan_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_help_works_anywhere():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--peak-tflops" in proc.stdout and "RealESRGANer" in proc.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_without_cuda_it_refuses_with_one_line(script, capsys, tmp_path):
    assert script.main(["--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs a CUDA GPU" in err
    assert not (tmp_path / "r.json").exists()


def test_sizes_peaks_and_flops(script):
    assert script.parse_size("1920x1080") == (1080, 1920)
    with pytest.raises(argparse.ArgumentTypeError, match="WIDTHxHEIGHT"):
        script.parse_size("big")
    assert script.tensor_peak("NVIDIA H100 PCIe", None) == 756.0
    assert script.tensor_peak("NVIDIA H100 80GB HBM3", None) == 989.0
    assert script.tensor_peak("Some New GPU", None) is None and script.tensor_peak("x", 12.5) == 12.5
    # Compiled rows: the fixed window (tile + 72 for overlap 24) fits in a 512² image with tile 440, not 512.
    assert script.compile_tile(512, 512, 512, 24) == 440 and script.compile_tile(512, 1080, 1920, 24) == 512
    from remaster import Remasterer

    stage = Remasterer("realesr-animevideov3", device="cpu", precision="fp32", tile=0).prepare().stages[0]
    network = stage.instance(torch.device("cpu"), torch.float32).descriptor.model
    flops = script.conv_flops(network, 160, 120, torch.device("cpu"), sample=16)
    # SRVGGNetCompact: 3x3 convolutions 3->64, 16 x 64->64 and 64->48 at the input's size; 2 FLOPs per multiply-add.
    assert flops == 2 * 9 * (3 * 64 + 16 * 64 * 64 + 64 * 48) * 160 * 120


def test_the_table_and_the_docs_section(script, tmp_path):
    row = {"model": "realesrgan-x4plus", "input": "512×512", "label": "ours fp16, tile=0", "images_per_second": 2.0,
           "vs_official": 3.1, "tflops": 100.0, "peak_share": 0.1, "peak_bytes": 2**31, "psnr_vs_fp32": math.inf,
           "first_call_seconds": 1.5}
    result = {"machine": {"device": "cuda:0 (GPU, 80.0 GiB)", "torch": "2", "cuda": "12", "date": "today"},
              "command": "python benchmarks/compare_realesrgan_gpu.py", "tensor_peak_tflops": 989.0,
              "rows": [row, {**row, "label": "RealESRGANer half=True, tile=0", "skipped": "no realesrgan"}]}
    table = script.markdown(result)
    assert "| realesrgan-x4plus | 512×512 | ours fp16, tile=0 | 2.00 | 3.10× | 100.0 | 10.0% | 2.00 GiB | ∞ | 1.5 |" \
        in table
    assert "skipped: no realesrgan" in table
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nbefore\n")
    script.write_docs(docs, table)
    script.write_docs(docs, table.replace("2.00 |", "4.00 |"))  # a second run replaces its section
    text = docs.read_text()
    assert text.count(script.START_MARKER) == 1 and "before" in text and "| 4.00 |" in text
