"""Registration of the built-in stages, parameter validation and the check_stage helper."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest
import torch

from remaster.errors import StageParamError
from remaster.pipeline.stage import RunContext, Stage
from remaster.plugin.host import PluginHost
from remaster.plugin.specs import Param, StageInfo, StageKind, StageSpec, Tiling
from remaster.stages import builtin
from remaster.testing import check_stage

EXPECTED = {
    "nearest": StageKind.UPSCALER,
    "bilinear": StageKind.UPSCALER,
    "bicubic": StageKind.UPSCALER,
    "lanczos": StageKind.UPSCALER,
    "degrade.downsample": StageKind.DEGRADER,
    "degrade.noise": StageKind.DEGRADER,
    "degrade.jpeg": StageKind.DEGRADER,
    "degrade.blur": StageKind.DEGRADER,
    "degrade.realesrgan": StageKind.DEGRADER,
}


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost(load_entry_points=False).ensure_loaded()


def test_all_builtins_registered(host: PluginHost) -> None:
    assert host.errors == []
    names = {spec.name: spec for spec in host.stages}
    assert set(names) == set(EXPECTED)
    for name, kind in EXPECTED.items():
        spec = names[name]
        assert spec.kind is kind
        assert spec.plugin == "remaster.stages.builtin"
        assert spec.summary and "\n" not in spec.summary
        assert all(p.help for p in spec.params), name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_builtin_conforms(host: PluginHost, name: str) -> None:
    check_stage(host.stages.get(name))


def test_check_stage_accepts_a_name() -> None:
    check_stage("bicubic", {"scale": 2}, sizes=((9, 7),))


def test_interpolator_info(host: PluginHost) -> None:
    for name in ("nearest", "bilinear", "bicubic", "lanczos"):
        spec = host.stages.get(name)
        assert spec.info.scale_param == "scale"
        assert spec.info.tiling is Tiling.SUPPORTED and spec.info.tile_overlap == 8
        assert spec.info.in_channels == (1, 3) and spec.info.dtypes == ("fp32",)
        assert spec.info.alpha == "process"  # alpha gets the same filter as colour
        assert spec.info.scale_for(spec.resolve_params({})) == 4.0
        assert spec.info.scale_for(spec.resolve_params({"scale": "1.5"})) == 1.5


def test_degrader_info(host: PluginHost) -> None:
    for name in ("degrade.downsample", "degrade.noise", "degrade.jpeg", "degrade.blur"):
        spec = host.stages.get(name)
        assert spec.info.deterministic_seed
        assert spec.resolve_params({})["seed"] is None
        # Blur is local and sizes its tile overlap from sigma, so tiles are exact; the others need the whole image.
        assert spec.info.tiling is (Tiling.SUPPORTED if name == "degrade.blur" else Tiling.UNSUPPORTED)
    assert host.stages.get("degrade.downsample").info.scale_for({"scale": 0.25}) == 0.25
    assert host.stages.get("degrade.noise").info.scale_for({}) == 1.0


def test_choices_match_implementations(host: PluginHost) -> None:
    from remaster.stages import degrade

    def choices(stage: str, param: str) -> tuple[Any, ...] | None:
        return next(p.choices for p in host.stages.get(stage).params if p.name == param)

    assert choices("degrade.downsample", "method") == degrade.DOWNSAMPLE_METHODS
    assert choices("degrade.noise", "kind") == degrade.NOISE_KINDS


def test_unknown_parameter_lists_valid_ones(host: PluginHost) -> None:
    with pytest.raises(StageParamError) as caught:
        host.stages.get("degrade.noise").resolve_params({"sigam": 3})
    message = str(caught.value)
    assert "sigam" in message and "sigma" in message and "kind" in message and "seed" in message


@pytest.mark.parametrize(
    ("name", "params", "fragment"),
    [
        ("bicubic", {"scale": 0}, "minimum"),
        ("bicubic", {"scale": 65}, "maximum"),
        ("bicubic", {"scale": "big"}, "not a valid float"),
        ("degrade.downsample", {"scale": 2}, "maximum"),
        ("degrade.downsample", {"method": "cubic"}, "not one of"),
        ("degrade.jpeg", {"quality": 0}, "minimum"),
        ("degrade.jpeg", {"quality": 101}, "maximum"),
        ("degrade.jpeg", {"quality": 50.5}, "not a valid int"),
        ("degrade.noise", {"sigma": -1}, "minimum"),
        ("degrade.noise", {"kind": "salt"}, "not one of"),
        ("degrade.noise", {"gray": "maybe"}, "not a valid bool"),
        ("degrade.noise", {"seed": "x"}, "not a valid int"),
        ("degrade.blur", {"sigma": 0.05}, "minimum"),
    ],
)
def test_bad_values_rejected(host: PluginHost, name: str, params: dict[str, Any], fragment: str) -> None:
    with pytest.raises(StageParamError, match=fragment):
        host.stages.get(name).resolve_params(params)


def test_strings_are_coerced(host: PluginHost) -> None:
    resolved = host.stages.get("degrade.noise").resolve_params({"sigma": "5", "gray": "true", "seed": "3"})
    assert resolved == {"sigma": 5.0, "kind": "gaussian", "gray": True, "seed": 3}


def test_registration_imports_no_implementation() -> None:
    code = textwrap.dedent(
        """
        import sys
        import remaster.stages.builtin as builtin
        specs = []
        builtin.remaster_register_stages(register=specs.append)
        assert len(specs) == 9, specs
        loaded = sorted(m for m in sys.modules
                        if m in ("remaster.stages.interpolate", "remaster.stages.degrade",
                                 "remaster.stages.highorder"))
        print(",".join(loaded))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"registration imported {result.stdout.strip()}"


def test_builtin_specs_are_fresh_and_valid() -> None:
    assert [spec.name for spec in builtin.builtin_specs()] == list(EXPECTED)


# --- check_stage catches broken stages ---------------------------------------------------------


class _Broken(Stage):
    """Misbehaves in the way named by ``fault``."""

    def run(self, pixels: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        fault = self.params["fault"]
        if fault == "shape":
            return pixels[..., 1:, :].clone()
        if fault == "inplace":
            return pixels.mul_(0.5)
        if fault == "nan":
            out = pixels.clone()
            out[..., 0, 0] = float("nan")
            return out
        if fault == "range":  # a 0-255 result: the scaling mistake the pipeline reports
            return pixels * 255.0
        if fault == "overshoot":  # what a sharp network gives: clamped by the pipeline, accepted by check_stage
            return (pixels * 1.07 - 0.0522).clamp(-0.0522, 1.0155)
        if fault == "dtype":
            return (pixels * 255).to(torch.uint8)
        if fault == "batch":
            return pixels + pixels.shape[0] * 0.01
        if fault == "seed":
            return (pixels + 0.01 * torch.rand(pixels.shape)).clamp(0, 1)
        return pixels.clone()


def _spec(fault: str) -> StageSpec:
    params = (Param("fault", str, fault, help="what to break"), Param("seed", int, None, help="seed"))
    return StageSpec(f"broken-{fault}", StageKind.FILTER, factory=_Broken, params=params,
                     info=StageInfo(deterministic_seed=True))


@pytest.mark.parametrize(
    ("fault", "fragment"),
    [
        ("shape", "output shape"),
        ("inplace", "in place"),
        ("nan", "NaN"),
        ("range", "output range"),
        ("dtype", "float"),
        ("batch", "batched and single"),
        ("seed", "seed"),
    ],
)
def test_check_stage_reports_faults(fault: str, fragment: str) -> None:
    with pytest.raises(AssertionError, match=fragment) as caught:
        check_stage(_spec(fault), sizes=((5, 7),))
    assert f"broken-{fault}" in str(caught.value)


def test_check_stage_accepts_the_overshoot_the_pipeline_clamps() -> None:
    """Issue 21: check_stage failed at [-0.0522, 1.0155], which docs/plugins.md says the pipeline clamps."""
    check_stage(_spec("overshoot"), sizes=((5, 7),))


def test_check_stage_passes_a_good_stage() -> None:
    check_stage(_spec("none"))
