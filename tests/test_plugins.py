"""Plugin manager and registry: real entry points in throw-away distributions."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from remaster import Param, PluginError, StageInfo, StageKind, StageSpec, UnknownStageError, hookimpl
from remaster.plugin import Preset, PresetRegistry
from remaster.plugin.host import PluginHost
from remaster.plugin.registries import StageRegistry


def make_distribution(site: Path, dist: str, version: str, modules: dict[str, str],
                      entry_points: dict[str, str]) -> None:
    """Lay out an installed distribution (dist-info + modules) the way pip would."""
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[remaster]\n{lines}\n")
    for name, source in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(source))


GOOD = """
from remaster import StageSpec, StageKind, StageInfo, Param, hookimpl

@hookimpl
def remaster_register_stages(register):
    register(StageSpec("invert", StageKind.FILTER, "good_stage_impl:Invert", summary="negative",
                       params=(Param("amount", float, 1.0, min=0, max=1),)))
"""
GOOD_IMPL = """
import torch
from remaster import Stage

class Invert(Stage):
    def __init__(self, amount=1.0):
        super().__init__(amount=amount)
        self.amount = amount

    def run(self, pixels, ctx):
        return torch.lerp(pixels, 1 - pixels, self.amount)
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    yield site
    for name in ("good_plugin", "good_stage_impl", "broken_plugin", "raising_plugin", "dup_plugin", "bad_spec_plugin"):
        sys.modules.pop(name, None)


def test_entry_point_plugin_is_loaded_with_its_version_and_stages(site):
    make_distribution(site, "remaster-good", "1.2.3", {"good_plugin": GOOD, "good_stage_impl": GOOD_IMPL},
                      {"good": "good_plugin"})
    host = PluginHost().ensure_loaded()
    info = next(p for p in host.plugins if p.name == "good")
    assert (info.distribution, info.version, info.stages, info.error) == ("remaster-good", "1.2.3", ["invert"], None)
    spec = host.stages.get("invert")
    assert spec.plugin == "good"
    # Registration is cheap: the implementation module is imported only on first use.
    assert "good_stage_impl" not in sys.modules
    import numpy as np

    from remaster import Remasterer

    out = Remasterer(["invert"], host=host).run(np.zeros((4, 5, 3), np.uint8))
    assert (out == 255).all()
    assert "good_stage_impl" in sys.modules


def test_broken_plugins_are_reported_and_do_not_take_the_others_down(site):
    make_distribution(site, "remaster-good", "1.0", {"good_plugin": GOOD, "good_stage_impl": GOOD_IMPL},
                      {"good": "good_plugin"})
    make_distribution(site, "remaster-broken", "0.1", {"broken_plugin": "import does_not_exist_anywhere\n"},
                      {"broken": "broken_plugin"})
    make_distribution(site, "remaster-raising", "0.1", {"raising_plugin": """
        from remaster import hookimpl

        @hookimpl
        def remaster_register_stages(register):
            raise RuntimeError("boom")
        """}, {"raising": "raising_plugin"})
    make_distribution(site, "remaster-dup", "0.1", {"dup_plugin": """
        from remaster import StageSpec, StageKind, hookimpl

        @hookimpl
        def remaster_register_stages(register):
            register(StageSpec("dup-ok", StageKind.FILTER, "x:Y"))
            register(StageSpec("bicubic", StageKind.UPSCALER, "x:Y"))
        """}, {"dup": "dup_plugin"})
    make_distribution(site, "remaster-badspec", "0.1", {"bad_spec_plugin": """
        from remaster import hookimpl

        @hookimpl
        def remaster_register_stages(register):
            register({"name": "not-a-spec"})
        """}, {"badspec": "bad_spec_plugin"})
    host = PluginHost().ensure_loaded()
    by_name = {p.name: p for p in host.plugins}
    assert by_name["good"].error is None
    assert "does_not_exist_anywhere" in str(by_name["broken"].error)
    assert "broken" in str(by_name["broken"].error)
    assert "boom" in str(by_name["raising"].error) and "raising" in str(by_name["raising"].error)
    assert "already registered by plugin 'remaster.stages.builtin'" in str(by_name["dup"].error)
    assert "StageSpec" in str(by_name["badspec"].error)
    # Atomic: nothing of the duplicate-registering plugin is kept.
    assert "dup-ok" not in host.stages
    assert "invert" in host.stages and "bicubic" in host.stages
    assert len(host.errors) == 4


def test_cli_lists_plugins_and_their_errors(process_host, site, capsys):
    make_distribution(site, "remaster-broken", "0.1", {"broken_plugin": "raise ImportError('no numpy here')\n"},
                      {"broken": "broken_plugin"})
    from remaster.cli import main

    process_host(None)
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "remaster.stages.builtin" in out and "bicubic" in out
    assert "broken  remaster-broken 0.1" in out and "no numpy here" in out


def test_extra_plugin_objects_register_like_entry_points():
    class Plugin:
        @hookimpl
        def remaster_register_stages(self, register):
            register(StageSpec("noop", StageKind.FILTER, lambda **kw: None, params=(Param("x", int, 1),)))

    host = PluginHost(load_entry_points=False, extra_plugins=(Plugin(),)).ensure_loaded()
    assert host.stages.get("noop").plugin == "Plugin"


def test_hookimpl_with_fewer_arguments_is_accepted():
    class OldPlugin:
        @hookimpl
        def remaster_register_stages(self):
            pass

    host = PluginHost(load_entry_points=False, extra_plugins=(OldPlugin(),)).ensure_loaded()
    assert not host.errors


def test_misspelt_hook_is_reported_not_fatal():
    class Typo:
        @hookimpl
        def remaster_register_stagez(self, register):
            pass

    host = PluginHost(load_entry_points=False, extra_plugins=(Typo(),)).ensure_loaded()
    assert host.errors and "remaster_register_stagez" in str(host.errors[0])
    assert "bicubic" in host.stages


def test_unknown_stage_suggests_close_names():
    host = PluginHost(load_entry_points=False).ensure_loaded()
    with pytest.raises(UnknownStageError, match="did you mean bicubic"):
        host.stages.get("bicubc")
    with pytest.raises(KeyError):  # also a KeyError, for dict-like callers
        host.stages.get("zzz")


@pytest.mark.parametrize("spec, message", [
    (StageSpec("Bad Name", StageKind.FILTER, "a:b"), "invalid"),
    (StageSpec("ok", "filter", "a:b"), "StageKind"),  # type: ignore[arg-type]
    (StageSpec("ok", StageKind.FILTER, "no-colon"), "factory"),
    (StageSpec("ok", StageKind.FILTER, "a:b", params=(Param("x", int), Param("x", int))), "twice"),
    (StageSpec("ok", StageKind.FILTER, "a:b", info=StageInfo(scale_param="scale")), "unknown parameter 'scale'"),
])
def test_invalid_specs_are_rejected(spec, message):
    with pytest.raises(PluginError, match=message):
        StageRegistry().add_all([spec], plugin="p")


def test_registering_builtins_imports_no_implementation():
    code = (
        "import sys; from remaster.plugin.host import PluginHost; "
        "h = PluginHost(load_entry_points=False).ensure_loaded(); "
        "assert len(h.stages) >= 8; "
        "bad = [m for m in ('remaster.stages.interpolate', 'remaster.stages.degrade') if m in sys.modules]; "
        "print(bad); assert not bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- editor presets


@pytest.mark.parametrize("preset, message", [
    (Preset("Upscale X4", "upscale x4", "bicubic"), "invalid"),
    (Preset("p", "", "bicubic"), "label"),
    (Preset("p", "p", "  "), "pipeline"),
    (Preset("p", "p", "bicubic", faces_of="p"), "itself"),
    (Preset("p", "p", "bicubic", faces_of="Not An Id"), "faces_of"),
    (Preset("p", "p", "bicubic", requires="gfpgan"), "requires"),  # type: ignore[arg-type]
    (Preset("p", "p", "bicubic", order="1"), "order"),  # type: ignore[arg-type]
])
def test_invalid_presets_are_rejected(preset, message):
    with pytest.raises(PluginError, match=message):
        PresetRegistry().add_all([preset], plugin="p")


def test_presets_are_credited_to_their_plugin_in_dialog_order_and_a_bad_one_drops_the_whole_plugin():
    class Presets:
        @hookimpl
        def remaster_register_presets(self, register):
            register(Preset("second", "second", "bicubic", order=2))
            register(Preset("first", "first", "lanczos", order=1, requires=["bicubic"]))

    class Broken:
        @hookimpl
        def remaster_register_stages(self, register):
            register(StageSpec("broken-stage", StageKind.FILTER, "a:b"))

        @hookimpl
        def remaster_register_presets(self, register):
            register(Preset("clash", "clash", "bicubic"))
            register(Preset("second", "taken", "bicubic"))

    host = PluginHost(load_entry_points=False, extra_plugins=(Presets(), Broken())).ensure_loaded()
    assert [(p.name, p.plugin) for p in host.presets] == [("first", "Presets"), ("second", "Presets")]
    assert host.presets.get("first").requires == ("bicubic",)
    assert next(p for p in host.plugins if p.name == "Presets").presets == ["second", "first"]
    assert "already registered by plugin 'Presets'" in str(host.errors[0])
    assert "clash" not in host.presets and "broken-stage" not in host.stages


def test_installed_plugins_register_the_editor_presets():
    host = PluginHost().ensure_loaded()
    by_id = {preset.name: preset for preset in host.presets}
    assert by_id["upscale-x4"].pipeline == "realesrgan-x4plus" and by_id["upscale-x4"].plugin == "realesrgan"
    assert by_id["upscale-x2-faces"].faces_of == "upscale-x2" and by_id["upscale-x2-faces"].plugin == "gfpgan"


def _file_stage(name: str, plugin: str = "") -> StageSpec:
    return StageSpec(name=name, kind=StageKind.FILTER, factory="remaster.stages.builtin:Identity", plugin=plugin)


class _Declines:
    @hookimpl
    def remaster_stage_from_file(self, path):
        return None


def test_model_file_stage_is_checked_and_credited_to_the_plugin_that_answered(tmp_path):
    class Answers:
        @hookimpl
        def remaster_stage_from_file(self, path):
            return _file_stage("from-file", plugin="someone-else")

    model = tmp_path / "model.pth"
    model.write_bytes(b"")
    # Registered after Answers, so pluggy asks _Declines first: the credit must go to the one that answered.
    host = PluginHost(load_entry_points=False, extra_plugins=(Answers(), _Declines())).ensure_loaded()
    spec = host.stage_from_file(model)
    assert (spec.name, spec.plugin) == ("from-file", "Answers")
    assert "from-file" not in host.stages  # it belongs to the pipeline that named the file, not to the registry


@pytest.mark.parametrize("spec, message", [
    (_file_stage("Not A Name"), "name 'Not A Name' is invalid"),
    (StageSpec(name="x", kind="filter", factory="a.b:C"), "not a StageKind"),
    ("a string", "gave str instead of a StageSpec"),
])
def test_invalid_model_file_stage_is_a_plugin_error_naming_plugin_and_file(tmp_path, spec, message):
    class Invalid:
        @hookimpl
        def remaster_stage_from_file(self, path):
            return spec

    model = tmp_path / "model.safetensors"
    model.write_bytes(b"")
    host = PluginHost(load_entry_points=False, extra_plugins=(Invalid(),)).ensure_loaded()
    with pytest.raises(PluginError, match=message) as caught:
        host.stage_from_file(model)
    text = str(caught.value)
    assert text.startswith("Invalid: ") and str(model) in text and "\n" not in text


def test_model_file_no_plugin_recognises_is_a_stage_error(tmp_path):
    from remaster import StageError

    model = tmp_path / "unknown.pth"
    model.write_bytes(b"")
    host = PluginHost(load_entry_points=False, extra_plugins=(_Declines(),)).ensure_loaded()
    with pytest.raises(StageError, match="unknown.pth: no installed plugin can run this model file"):
        host.stage_from_file(model)
