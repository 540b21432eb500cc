"""remaster.plugin is the torch-free surface for plugin authors; the CLI starts without torch.

Each check runs in a fresh interpreter, since this test process has long imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "numpy", "PIL", "cv2")


def loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_plugin_surface_imports_nothing_heavy():
    assert loaded_after("import remaster.plugin\nfrom remaster.plugin import *") == []


def test_import_remaster_is_lazy():
    assert loaded_after("import remaster\nfrom remaster import hookimpl, StageSpec, StageInfo, Param") == []
    assert "torch" in loaded_after("from remaster import Remasterer")


def test_registering_every_installed_plugin_imports_no_torch():
    code = ("from remaster.plugin.host import PluginHost\nhost = PluginHost().ensure_loaded()\n"
            "assert not host.errors, host.errors\n"
            "assert 'realesrgan-x4plus' in host.stages and 'gfpgan' in host.stages")
    assert loaded_after(code) == []


def test_precisions_are_names_and_old_style_dtypes_still_work():
    import torch

    from remaster.plugin import StageInfo

    assert StageInfo().dtypes == ("fp32",)
    assert StageInfo(dtypes=(torch.float32, torch.bfloat16)).dtypes == ("fp32", "bf16")
    with pytest.raises(ValueError, match="unknown precision"):
        StageInfo(dtypes=("fp64",))


def test_a_ref_binds_arguments_without_importing_its_module_first():
    from remaster.plugin import Ref

    ref = Ref("fractions:Fraction", denominator=4)
    assert ref.load()(3) == __import__("fractions").Fraction(3, 4)
    assert str(ref) == "fractions:Fraction(denominator=...)"


@pytest.mark.parametrize("args", [["--help"], ["stages"], ["plugins"], ["weights", "list"], ["upscale", "--help"],
                                  ["cache", "list"]])
def test_the_cli_starts_without_torch(args):
    code = ("import contextlib, io\nfrom remaster.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
            "    try:\n"
            f"        code = main({args!r})\n"
            "    except SystemExit as exit:\n"
            "        code = exit.code\n"
            "assert code == 0, code")
    assert "torch" not in loaded_after(code)


def test_python_dash_m_remaster_is_the_command():
    result = subprocess.run([sys.executable, "-m", "remaster", "stages", "--json"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert any(stage["name"] == "bicubic" for stage in json.loads(result.stdout))


def test_a_plugin_written_for_api_1_still_loads(fault_host):
    """tests/fault_plugin imports from `remaster` and names precisions as torch dtypes, as API 1 plugins did."""
    assert fault_host.stages.get("fault.nan-low-precision").info.dtypes == ("fp32", "bf16")
    assert "sepia" in fault_host.stages  # and the example plugin, which imports only remaster.plugin


def test_submodules_are_attributes_of_the_lazy_package():
    """`import remaster; remaster.io.load(...)` worked when the package imported everything eagerly."""
    code = ("import remaster\nassert callable(remaster.io.load) and callable(remaster.weights.get_manager)\n"
            "assert remaster.pipeline.Remasterer and remaster.metrics.psnr")
    assert "torch" in loaded_after(code)  # (they need torch; the point is that they are reachable)
