"""Commands are registered through ``remaster_register_commands``: remaster's own first, then plugins' commands."""

from __future__ import annotations

import json

import pytest

from remaster.cli import build_parser, main
from remaster.cli import commands as cli_commands
from remaster.cli.commands import COMMANDS, PLUGIN
from remaster.cli.hooks import command_arguments
from remaster.cli.main import cli_host
from remaster.errors import PluginError, UsageError
from remaster.plugin import Command, hookimpl
from remaster.plugin.host import PluginHost


def hello_arguments(parser):
    parser.add_argument("--name", default="world")


def hello(args, host):
    print(json.dumps({"hello": args.name, "json": args.json, "stages": len(host.stages)}))
    return 0


class Hello:
    """A plugin that adds a command of its own, and an option to it through remaster_add_options."""

    @hookimpl
    def remaster_register_commands(self, register):
        register(Command("hello", help="say hello", arguments=hello_arguments, run=hello))

    @hookimpl
    def remaster_add_options(self, command, parser):
        if command == "hello":
            parser.add_argument("--shout", action="store_true")


class Thief:
    """Tries to take remaster's own ``upscale``."""

    @hookimpl
    def remaster_register_commands(self, register):
        register(Command("upscale", help="mine now", run=hello))


def broken_arguments(parser):
    raise RuntimeError("no arguments today")


def crashing(args, host):
    raise ZeroDivisionError("division by zero")


class Broken:
    @hookimpl
    def remaster_register_commands(self, register):
        register(Command("wonky", help="its arguments fail", arguments=broken_arguments, run=hello))
        register(Command("crash", help="its run fails", run=crashing))
        register(Command("missing", help="its module is not there", run="no_such_module_xyz:run"))


def use_host(process_host, *plugins: object) -> PluginHost:
    host = PluginHost(load_entry_points=False, extra_plugins=plugins)
    process_host(host)
    return host


def test_remasters_own_commands_are_registered_through_the_hook_and_credited(process_host, monkeypatch, capsys):
    host = use_host(process_host)
    assert main(["plugins", "--json"]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert listed[PLUGIN]["commands"] == [c.name for c in COMMANDS]
    assert listed[PLUGIN]["distribution"] == "remaster"
    assert [c.name for c in host.commands] == [c.name for c in COMMANDS]
    assert {c.plugin for c in host.commands} == {PLUGIN}


def test_a_plugins_command_runs_with_the_host_and_takes_common_and_plugin_options(process_host, monkeypatch, capsys):
    host = use_host(process_host, Hello())
    parser = build_parser()
    assert "say hello" in parser.format_help()
    args = parser.parse_args(["hello", "--name", "you", "--shout"])
    assert args.shout is True
    assert main(["hello", "--name", "you", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"hello": "you", "json": True, "stages": len(host.stages)}
    assert host.commands.get("hello").plugin == "Hello"


def test_a_plugin_cannot_take_a_name_of_remasters_commands():
    host = PluginHost(load_entry_points=False, extra_plugins=(Thief(),), builtins=(cli_commands,)).ensure_loaded()
    thief = next(p for p in host.plugins if p.name == "Thief")
    assert "command 'upscale' is already registered by plugin 'remaster.cli.commands'" in str(thief.error)
    assert host.commands.get("upscale").plugin == PLUGIN
    assert "mine now" not in build_parser(host).format_help()


def test_the_default_host_loads_the_commands_before_any_installed_plugin(process_host, monkeypatch):
    process_host(None)
    host = cli_host()
    names = [p.name for p in host.plugins]
    assert names.index(PLUGIN) < min(names.index(p.name) for p in host.plugins if p.distribution != "remaster")


def test_a_host_loaded_before_the_cli_with_a_thief_is_one_clear_error(process_host, monkeypatch, capsys):
    use_host(process_host, Thief()).ensure_loaded()  # the thief came first: remaster's commands cannot be added
    with pytest.raises(PluginError, match="command 'upscale' is already registered by plugin 'Thief'"):
        cli_host()
    assert main(["stages"]) == 1
    assert capsys.readouterr().err.startswith(f"remaster: error: {PLUGIN}: command 'upscale' is already registered")


def test_broken_commands_are_left_out_or_fail_as_one_line_naming_the_plugin(process_host, monkeypatch, capsys):
    host = use_host(process_host, Broken())
    parser = build_parser()
    assert "wonky" not in parser.format_help() and "crash" in parser.format_help()
    with pytest.raises(UsageError, match="invalid choice: 'wonky'"):
        parser.parse_args(["wonky"])
    assert [w.message for w in host.warnings] == [
        "command 'wonky' left out: its arguments fail (RuntimeError: no arguments today)"]
    assert main(["stages", "-q"]) == 0
    capsys.readouterr()

    assert main(["crash"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("remaster: error: Broken: command 'crash' raised ZeroDivisionError: division by zero")
    assert "Traceback" not in err

    assert main(["missing"]) == 1
    err = capsys.readouterr().err
    assert "remaster: error: Broken: cannot import command 'missing' (ModuleNotFoundError" in err


@pytest.mark.parametrize("command, message", [
    (Command("Bad Name", help="x", run=hello), "command name 'Bad Name' is invalid"),
    (Command("two-lines", help="a\nb", run=hello), "has help='a\\nb'"),
    (Command("no-run", help="x", run=42), "has run=42"),
    (Command("bad-args", help="x", run=hello, arguments="nocolon"), "has arguments='nocolon'"),
])
def test_invalid_commands_leave_their_plugin_out(command, message):
    class Plugin:
        @hookimpl
        def remaster_register_commands(self, register):
            register(command)

    host = PluginHost(load_entry_points=False, extra_plugins=(Plugin(),)).ensure_loaded()
    assert message in str(next(p for p in host.plugins if p.name == "Plugin").error)


def test_the_command_example_in_the_plugin_docs_works(process_host, tmp_path, monkeypatch, capsys):
    import importlib
    import re
    import sys
    from pathlib import Path

    from PIL import Image as PILImage

    docs = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text()
    block = re.search(r"```python\n(  # my_plugin/plugin\.py.*?)```", docs, re.S).group(1)
    code = "\n".join(line[2:] for line in block.splitlines())
    registration, thumbs = code.split("# my_plugin/thumbs.py")
    package = tmp_path / "site" / "my_plugin"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text(registration)
    (package / "thumbs.py").write_text(thumbs)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    for name in ("my_plugin", "my_plugin.plugin", "my_plugin.thumbs"):
        sys.modules.pop(name, None)
    use_host(process_host, importlib.import_module("my_plugin.plugin"))
    assert "my_plugin.thumbs" not in sys.modules  # registering imported nothing of the command
    (tmp_path / "photos").mkdir()
    PILImage.new("RGB", (16, 12), (200, 30, 30)).save(tmp_path / "photos" / "a.png")
    assert main(["thumbs", str(tmp_path / "photos"), "-o", str(tmp_path / "out")]) == 0
    with PILImage.open(tmp_path / "out" / "a.jpg") as thumb:
        assert thumb.size == (4, 3)


def test_remasters_commands_count_as_built_in_also_when_added_to_a_loaded_host(process_host, monkeypatch):
    host = use_host(process_host)
    host.ensure_loaded()  # loaded before the CLI asked: its commands are added late
    cli_host()
    upscale = host.commands.get("upscale")

    def broken(parser):
        raise RuntimeError("a bug in remaster's own arguments")

    from dataclasses import replace

    with pytest.raises(RuntimeError, match="a bug in remaster's own"):  # raised, not turned into a warning
        command_arguments(host, replace(upscale, arguments=broken), build_parser(host))
