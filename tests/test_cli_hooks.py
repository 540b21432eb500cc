"""The CLI hooks: plugins add options, shape the upscale pipeline and note each image; a broken one is only warned
of."""

from __future__ import annotations

import argparse
import re

import pytest
from PIL import Image as PILImage

from remaster import StageCall, hookimpl
from remaster.cli import build_parser, main
from remaster.cli.hooks import item_notes
from remaster.errors import UsageError
from remaster.plugin.host import PluginHost


def subcommand(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices[name]


class Sharpen:
    """A well-behaved plugin: one option on upscale, which turns the upscale into its own pipeline."""

    @hookimpl
    def remaster_add_options(self, command, parser):
        if command == "upscale":
            parser.add_argument("--sharpen", type=float, metavar="S", help="sharpen after upscaling")

    @hookimpl
    def remaster_upscale_pipeline(self, options, upscaler, scale):
        if options["sharpen"] is None:
            return None
        return [upscaler, StageCall("sharpen", {"amount": options["sharpen"], "scale": scale})]

    @hookimpl
    def remaster_item_note(self, extras):
        return f"sharpened {extras.get('sharpened', 0)}"


class HalfBroken:
    """Adds one option, then raises: neither option may stay."""

    @hookimpl
    def remaster_add_options(self, command, parser):
        parser.add_argument("--half")
        raise RuntimeError("oops")

    @hookimpl
    def remaster_item_note(self, extras):
        raise KeyError("faces")


class Clash:
    @hookimpl
    def remaster_add_options(self, command, parser):
        if command == "upscale":
            parser.add_argument("--model", help="mine")


def host_with(*plugins: object) -> PluginHost:
    return PluginHost(load_entry_points=False, extra_plugins=plugins).ensure_loaded()


def test_without_plugins_upscale_has_no_face_options():
    upscale = subcommand(build_parser(host_with()), "upscale")
    assert not any(o.startswith("--face") for o in upscale._option_string_actions)
    with pytest.raises(UsageError, match="unrecognized arguments: --face"):
        upscale.parse_args(["a.png", "-o", "b.png", "--face"])


def test_a_plugins_option_is_parsed_and_builds_the_upscale_pipeline(process_host, monkeypatch):
    from remaster.cli.run import _upscale_pipeline

    host = host_with(Sharpen())
    process_host(host)
    parser = build_parser(host)
    assert "sharpen after upscaling" in subcommand(parser, "upscale").format_help()
    args = parser.parse_args(["upscale", "a.png", "-o", "b.png", "--model", "bicubic", "--scale", "2",
                              "--sharpen", "0.5"])
    assert list(map(str, _upscale_pipeline(args))) == ["bicubic", "sharpen(amount=0.5, scale=2.0)"]
    args = parser.parse_args(["upscale", "a.png", "-o", "b.png", "--model", "bicubic", "--scale", "3"])
    # no option given: the plugin stays out of it
    assert list(map(str, _upscale_pipeline(args))) == ["bicubic(scale=3.0)"]


@pytest.mark.parametrize("broken", [HalfBroken, Clash])
def test_a_plugin_whose_options_break_adds_none_and_is_warned_of(process_host, broken, monkeypatch, capsys):
    host = host_with(broken(), Sharpen())
    process_host(host)
    upscale = subcommand(build_parser(host), "upscale")
    assert "--half" not in upscale._option_string_actions and "mine" not in upscale.format_help()
    assert "--sharpen" in upscale._option_string_actions and not host.errors
    assert main(["stages"]) == 0
    err = capsys.readouterr().err
    assert f"remaster: warning: plugin {broken.__name__}: cannot add its options to 'upscale'" in err


def test_notes_join_the_image_line_and_a_broken_one_is_warned_of_once(process_host, tmp_path, monkeypatch, capsys):
    host = host_with(HalfBroken(), Sharpen())
    process_host(host)
    assert item_notes(host, {"sharpened": 2}) == ["sharpened 2"]
    assert item_notes(host, {}) == ["sharpened 0"]
    assert [w.message for w in host.warnings].count("cannot describe an image's result (KeyError: 'faces')") == 1
    for name in ("a", "b"):
        PILImage.new("RGB", (4, 4)).save(tmp_path / f"{name}.png")
    assert main(["run", "bicubic(scale=1)", str(tmp_path / "a.png"), str(tmp_path / "b.png"),
                 "-o", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert err.count("cannot describe an image's result") == 1  # said by the command, not once per image
    assert re.search(r"b\.png -> \S+ \(\d+\.\d s, sharpened 0\)$", err, re.M), err


def test_a_pipeline_hook_that_crashes_is_one_error_line_naming_the_plugin(process_host, tmp_path, monkeypatch, capsys):
    class Crash:
        @hookimpl
        def remaster_upscale_pipeline(self, options, upscaler, scale):
            raise ZeroDivisionError("division by zero")

    process_host(host_with(Crash()))
    PILImage.new("RGB", (4, 4)).save(tmp_path / "a.png")
    assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "b.png"), "--model", "bicubic"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("remaster: error: Crash: raised ZeroDivisionError while building the upscale pipeline")
    assert "Traceback" not in "\n".join(err) and not (tmp_path / "b.png").exists()
