"""benchmarks/gpu_check.py (make gpu-check) still runs: checked on the CPU in its quick mode."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "gpu_check.py"


@pytest.mark.slow
def test_the_gpu_check_runs_on_the_cpu_and_writes_its_results(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "bench.json"
    assert module.main(["--device", "cpu", "--quick", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert {(row["model"], row["precision"], row["tile"]) for row in result["rows"]} == {
        (model, "fp32", tile) for model in module.MODELS for tile in (0, 16)}
    assert all(row["images_per_second"] > 0 for row in result["rows"])
    assert result["backoff"] == []  # needs a GPU
    table = out.with_suffix(".md").read_text()
    assert "| realesrgan-x4plus | fp32 | 16 | 24² |" in table and "command: `python benchmarks/gpu_check.py" in table
