"""The --face options the plugin adds to `remaster upscale`, the stage they build and the faces note.

No network is run.
"""

from __future__ import annotations

import argparse

import pytest

from remaster import StageCall
from remaster.cli import build_parser
from remaster.cli.hooks import item_notes
from remaster.plugin.host import get_host
from remaster_gfpgan.cli import remaster_item_note, remaster_upscale_pipeline


def upscale_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["upscale", "in.png", "-o", "out.png", *argv])


def test_the_face_options_come_from_the_plugin_with_their_help():
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    options = commands.choices["upscale"]._option_string_actions
    assert options["--face"].help.startswith("restore faces with GFPGAN too")
    assert options["--face-weight"].metavar == "W" and options["--face-model"].metavar == "NAME|PATH"
    assert not get_host().warnings


@pytest.mark.parametrize("argv, stage", [
    ((), None),
    (("--face",), "gfpgan(upscale=4.0, background='lanczos')"),
    (("--face-weight", "0.5"), "gfpgan(upscale=4.0, background='lanczos', weight=0.5)"),
    (("--face-model", "1.3"), "gfpgan(upscale=4.0, background='lanczos', version='1.3')"),
])
def test_face_options_build_the_gfpgan_stage(argv, stage):
    pipeline = remaster_upscale_pipeline(vars(upscale_args(*argv)), StageCall("lanczos"), 4)
    assert (pipeline and list(map(str, pipeline))) == (stage and [stage])


def test_a_face_model_file_is_a_checkpoint(tmp_path):
    model = tmp_path / "my faces.pth"
    model.write_bytes(b"")
    [call] = remaster_upscale_pipeline(vars(upscale_args("--face-model", str(model))), StageCall("x"), 2.0)
    assert call == StageCall("gfpgan", {"upscale": 2.0, "background": "x", "model": str(model)})


@pytest.mark.parametrize("extras, note", [
    ({}, None),
    ({"faces": 0, "faces_found": 0}, "no face found: unchanged by the face stage"),
    ({"faces": 1, "faces_found": 2, "face_detector": "haar"}, "1 of 2 face(s) restored (haar)"),
    ({"faces": 3}, "3 of 3 face(s) restored"),
])
def test_the_faces_note(extras, note):
    assert remaster_item_note(extras) == note
    assert item_notes(get_host(), extras) == ([note] if note else [])
