"""Issue 21, "what a new user hit": each message says what a new user needs, where they are."""

from __future__ import annotations

import numpy as np
import pytest

from remaster.cli import build_parser, main
from remaster.errors import WeightsNotFoundError
from remaster.plugin.host import PluginHost
from remaster.weights import WeightsManager


def subcommand_help(name: str) -> str:
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    return commands.choices[name].format_help()


def test_upscale_help_names_the_default_model():
    assert "default: realesrgan-x4plus" in " ".join(subcommand_help("upscale").split())


def test_lpips_names_both_of_its_missing_weights_files(tmp_path):
    from remaster.metrics import lpips

    host = PluginHost(load_entry_points=False).ensure_loaded()
    manager = WeightsManager(host.weights, root=tmp_path / "cache")
    image = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(WeightsNotFoundError) as caught:
        lpips(image, image, data_range=255, weights_manager=manager)
    message = str(caught.value)
    assert "'torchvision-alexnet' and 'lpips-alex-v0.1'" in message
    assert "remaster weights fetch torchvision-alexnet" in message
    assert "remaster weights fetch lpips-alex-v0.1" in message


def test_weights_list_says_a_packaged_file_is_made_offline(capsys, tmp_path, monkeypatch):
    pytest.importorskip("remaster_realesrgan")
    monkeypatch.setenv("REMASTER_CACHE", str(tmp_path / "cache"))
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    block = out[out.index("realesrgan-x4plus  ["):].split("\n\n")[0].split("\n")[:6]
    assert any("made offline from an installed package" in line for line in block), block
    assert not any("none: import" in line for line in block)
