"""The input corpus (tests/corpus/, made by scripts/make_corpus.py) and the faults of docs/reliability.md.

Every case goes through the ``remaster`` command (in-process, so the fault plugin's misbehaving
stages can be installed) and is held to the invariants of reliability_support.py: input bytes
unchanged, no temporary file left, outputs only complete, a one-line error naming file and reason.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from PIL import ImageOps

import remaster
from reliability_support import (
    CORPUS,
    HERE,
    check_invariants,
    mounted_tmpfs,
    run_cli,
    snapshot,
    stage_input,
    tally,
    upscaled,
)
from remaster.errors import ImageTooLargeError, InputError, RemasterError, UnsupportedImageError


def make_corpus_module():
    spec = importlib.util.spec_from_file_location("make_corpus", HERE.parent / "scripts" / "make_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- the corpus itself


def test_corpus_is_what_the_script_makes():
    module = make_corpus_module()
    assert module.main(["--check"]) == 0, "run: python scripts/make_corpus.py"
    assert sorted(module.FILES) == sorted(list(BAD_INPUTS) + list(GOOD_INPUTS))


# --------------------------------------------------------------------------- bad inputs: refused, one clear line

#: corpus file -> (error class the library raises, what the one-line message must say)
BAD_INPUTS: dict[str, tuple[type[RemasterError], str]] = {
    "empty.png": (InputError, "file is empty (0 bytes)"),
    "text-file.png": (UnsupportedImageError, "not an image"),
    "random-bytes.jpg": (UnsupportedImageError, "not an image"),
    "truncated.jpg": (InputError, "truncated"),
    "bad-crc-idat.png": (InputError, "chunk 'IDAT' at byte 33 has a wrong checksum"),
    "bad-crc-ihdr.png": (InputError, "chunk 'IHDR' at byte 8 has a wrong checksum"),
    "bomb-30000x30000.png": (ImageTooLargeError, "30000x30000 = 900.0 MP, over the limit"),
    "animated.gif": (UnsupportedImageError, "has 3 frames"),
    "multipage.tif": (UnsupportedImageError, "has 2 frames"),
    "float32-nan-inf.tif": (InputError, "NaN/Inf"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_refused_with_one_clear_line(tmp_path, capsys, name):
    error, reason = BAD_INPUTS[name]
    folder = stage_input(tmp_path, name, "good.png")  # a good neighbour: the folder run must go on
    inputs = snapshot(folder)
    out, report = tmp_path / "out", tmp_path / "report.json"

    with pytest.raises(error) as info:  # the library: the right class, carrying the path
        remaster.io.load(folder / name)
    assert info.value.path == str(folder / name) and reason in str(info.value)

    code, errors = run_cli(capsys, "run", "nearest(scale=2)", folder, "-o", out, "--report", report)
    assert code == 1
    assert len(errors) == 1 and str(folder / name) in errors[0] and reason in errors[0]
    entries = {Path(e["input"]).name: e for e in json.loads(report.read_text())["items"]}
    assert entries[name]["ok"] is False and reason in entries[name]["error"]
    assert entries["good.png"]["ok"] is True
    assert sorted(p.name for p in out.iterdir()) == ["good.png"]
    check_invariants("bad input", name, inputs, folder, out, expected_outputs=[out / "good.png"])


# --------------------------------------------------------------------------- good but unusual inputs: processed right


def _pixels(path: Path) -> np.ndarray:
    """Decoded samples at their stored depth, RGB(A) order, independent of remaster's reader."""
    array = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_BGR2RGB if array.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    return array


def _same_pixels_doubled(source: Path, output: Path) -> None:
    expected, got = _pixels(source), _pixels(output)
    assert got.dtype == expected.dtype  # bit depth kept
    np.testing.assert_array_equal(got, upscaled(expected))


def _rgba_kept(source: Path, output: Path) -> None:
    expected, got = np.asarray(PILImage.open(source)), np.asarray(PILImage.open(output))
    assert PILImage.open(output).mode == "RGBA"
    np.testing.assert_array_equal(got[..., 3], upscaled(expected[..., 3]))  # every alpha level kept
    visible = upscaled(expected[..., 3]) > 0
    np.testing.assert_array_equal(got[visible], upscaled(expected)[visible])


def _palette_transparency_kept(source: Path, output: Path) -> None:
    indices = np.asarray(PILImage.open(source))
    got = PILImage.open(output)
    assert got.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(got)[..., 3], upscaled(np.where(indices == 2, 0, 255)))


def _cmyk_as_rgb(source: Path, output: Path) -> None:
    got = PILImage.open(output)
    assert got.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(got), upscaled(np.asarray(PILImage.open(source).convert("RGB"))))


def _orientation_applied(source: Path, output: Path) -> None:
    upright = ImageOps.exif_transpose(PILImage.open(source))
    got = PILImage.open(output)
    assert got.size == (upright.width * 2, upright.height * 2) == (32, 48)
    assert got.getexif().get(0x0112, 1) == 1  # not rotated a second time by viewers
    np.testing.assert_array_equal(np.asarray(got), upscaled(np.asarray(upright)))


def _icc_kept(source: Path, output: Path) -> None:
    assert PILImage.open(output).info["icc_profile"] == PILImage.open(source).info["icc_profile"]
    _same_pixels_doubled(source, output)


def _float_kept(source: Path, output: Path) -> None:
    expected, got = np.asarray(PILImage.open(source)), np.asarray(PILImage.open(output))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, upscaled(expected))


#: corpus file -> (output format, check of the x2 nearest-neighbour result)
GOOD_INPUTS = {
    "good.png": ("png", _same_pixels_doubled),
    "1x1.png": ("png", _same_pixels_doubled),
    "1x37.png": ("png", _same_pixels_doubled),
    "37x1.png": ("png", _same_pixels_doubled),
    "gray16.png": ("png", _same_pixels_doubled),
    "gray16-dark.png": ("png", _same_pixels_doubled),
    "rgb16.png": ("png", _same_pixels_doubled),
    "rgba-garbage-under-alpha.png": ("png", _rgba_kept),
    "palette-transparency.png": ("png", _palette_transparency_kept),
    "cmyk.jpg": ("png", _cmyk_as_rgb),
    "exif-orientation-6.jpg": ("png", _orientation_applied),
    "icc-srgb.png": ("png", _icc_kept),
    "float32.tif": ("tif", _float_kept),
    "naïve café 写真.png": ("png", _same_pixels_doubled),
}


@pytest.mark.parametrize("name", list(GOOD_INPUTS))
def test_unusual_good_input_is_processed_right(tmp_path, capsys, name):
    fmt, check = GOOD_INPUTS[name]
    folder = stage_input(tmp_path, name)
    inputs = snapshot(folder)
    out = tmp_path / "out put"  # a space in the output folder too
    code, errors = run_cli(capsys, "run", "nearest(scale=2)", folder / name, "-o", out, "--format", fmt)
    assert (code, errors) == (0, [])
    output = out / Path(name).with_suffix(f".{fmt}")
    check(folder / name, output)
    check_invariants("good input", name, inputs, folder, out, expected_outputs=[output])


def test_dark_16bit_image_is_still_16bit(tmp_path):
    image = remaster.io.load(CORPUS / "gray16-dark.png")
    assert image.meta.bit_depth == 16 and float(image.pixels.max()) < 256 / 65535
    saved = remaster.io.save(image, tmp_path / "dark.png")
    assert _pixels(saved).dtype == np.uint16 and _pixels(saved).max() == 199


# --------------------------------------------------------------------------- cases that need a setting


def test_output_size_guard_refuses_before_inference(tmp_path, capsys, fault_host):
    folder = stage_input(tmp_path, "good.png")
    inputs, out = snapshot(folder), tmp_path / "out"
    code, errors = run_cli(capsys, "run", "fault.slow(seconds=30) | nearest(scale=64)", folder, "-o", out,
                           "--max-output-pixels", "1000000")
    assert code == 1  # fault.slow would take 30 s: it never ran
    assert len(errors) == 1 and "good.png" in errors[0]
    assert ("the output would be 1536x1024 = 1.6 MP after stage 'nearest', over the limit of 1,000,000 pixels "
            "(1.0 MP)") in errors[0]
    check_invariants("bad input", "output over --max-output-pixels", inputs, folder, out)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_or_inf_array_given_to_the_api_is_refused(bad):
    array = np.full((6, 5, 3), 0.5, np.float32)
    array[2, 3, 1] = bad
    with pytest.raises(InputError, match="contains NaN/Inf"):
        remaster.Remasterer("nearest(scale=2)").run(array)
    tally("bad input", f"{bad} in a float array given to the API")


def test_output_path_equal_to_input_path(tmp_path, capsys):
    folder = stage_input(tmp_path, "good.png")
    inputs = snapshot(folder)
    source = folder / "good.png"
    code, errors = run_cli(capsys, "run", "nearest(scale=2)", source, "-o", source)
    assert code == 1 and len(errors) == 1
    assert str(source) in errors[0] and "would overwrite the input" in errors[0] and "--overwrite" in errors[0]
    check_invariants("bad input", "output path equal to input path", inputs, folder)
    # A folder run into its own folder: every item refused the same way, nothing replaced.
    code, errors = run_cli(capsys, "run", "nearest(scale=2)", folder, "-o", folder)
    assert code == 1 and "would overwrite the input" in errors[0]
    check_invariants("bad input", "output folder equal to input folder", inputs, folder)


@pytest.fixture
def read_only_folder(tmp_path):
    """An output folder nobody can write to: a read-only tmpfs as root, permissions otherwise."""
    if os.geteuid() == 0:  # root ignores permission bits: only a read-only file system stops it
        with mounted_tmpfs(tmp_path / "read-only", "ro,size=64k") as folder:
            yield folder
        return
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o555)
    yield folder
    folder.chmod(0o755)


def test_read_only_output_folder_is_found_before_models_load(tmp_path, capsys, monkeypatch, read_only_folder):
    folder = stage_input(tmp_path, "good.png")
    inputs = snapshot(folder)
    model = tmp_path / "model.pth"
    torch.save({"conv.weight": torch.zeros(1)}, model)
    loaded = []
    monkeypatch.setattr("remaster.plugin.host.PluginHost.stage_from_file", lambda self, path: loaded.append(path))
    code, errors = run_cli(capsys, "upscale", folder, "--model", model, "-o", read_only_folder)
    assert code == 1 and len(errors) == 1
    assert str(read_only_folder) in errors[0] and "the output folder is not writable" in errors[0]
    assert loaded == []  # the model file was never opened
    check_invariants("bad input", "read-only output folder", inputs, folder, read_only_folder)


def test_name_collisions_in_a_folder_run(tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    shutil.copyfile(CORPUS / "cmyk.jpg", first / "a.jpg")  # a.jpg and a.png both want out/a.png
    shutil.copyfile(CORPUS / "good.png", first / "a.png")
    shutil.copyfile(CORPUS / "1x37.png", first / "a_png.png")  # the name the second a.png would get
    shutil.copyfile(CORPUS / "37x1.png", second / "a.png")  # a second folder with the same names
    inputs = snapshot(first, second)
    out = tmp_path / "out"
    code, errors = run_cli(capsys, "run", "nearest(scale=2)", first, second, "-o", out, "--format", "png")
    assert (code, errors) == (0, [])
    written = {"a.png": first / "a.jpg", "a_png.png": first / "a.png", "a_png_png.png": first / "a_png.png",
               "a_png_2.png": second / "a.png"}
    assert sorted(p.name for p in out.iterdir()) == sorted(written)
    for name, source in written.items():  # each output came from its own source: nothing replaced
        expected = np.asarray(PILImage.open(source).convert("RGB"))
        np.testing.assert_array_equal(np.asarray(PILImage.open(out / name)), upscaled(expected))
    check_invariants("bad input", "name collisions in a folder run", inputs, first, second, out,
                     expected_outputs=[out / n for n in written])


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs: room for a small image, not for a large one."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    with mounted_tmpfs(tmp_path / "tiny-disk", "size=64k") as folder:
        yield folder


def test_disk_full_during_save_leaves_no_partial_file(tmp_path, capsys, tiny_disk):
    folder = stage_input(tmp_path, "good.png")
    noise = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)  # ~230 KB as x2 PNG
    PILImage.fromarray(noise).save(folder / "noise.png")
    inputs = snapshot(folder)
    report = tmp_path / "report.json"
    code, errors = run_cli(capsys, "run", "nearest(scale=2)", folder, "-o", tiny_disk, "--report", report)
    assert code == 1 and len(errors) == 1
    assert str(folder / "noise.png") in errors[0] and "no space left on device" in errors[0]
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["good.png"]  # the one that fitted, complete
    check_invariants("fault", "disk full during save", inputs, folder, tiny_disk,
                     expected_outputs=[tiny_disk / "good.png"])


# --------------------------------------------------------------------------- plugins that misbehave

#: stage -> what the error line must say (besides the file and the stage name)
PLUGIN_FAULTS = {
    "fault.raise": "failed: RuntimeError: simulated failure inside a plugin",
    "fault.shape": "returned shape (1, 3, 15, 24), expected (1, C, 16, 24)",
    "fault.dtype": "returned torch.uint8 pixels instead of a float tensor",
    "fault.range": "returned values in [",
    "fault.inf": "produced NaN or Inf values",
}


@pytest.mark.parametrize("stage", list(PLUGIN_FAULTS))
def test_misbehaving_plugin_stage_is_one_files_error(tmp_path, capsys, fault_host, stage):
    folder = stage_input(tmp_path, "good.png", "1x37.png")
    inputs, out = snapshot(folder), tmp_path / "out"
    code, errors = run_cli(capsys, "run", stage, folder, "-o", out)
    assert code == 1 and len(errors) == 2  # both files tried, both reported
    good_line = next(e for e in errors if "good.png" in e)
    assert str(folder / "good.png") in good_line and stage in good_line and PLUGIN_FAULTS[stage] in good_line
    assert "Traceback" not in capsys.readouterr().err
    assert not out.exists() or not list(out.iterdir())  # never a black, white or partial image
    check_invariants("fault", f"plugin stage {stage}", inputs, folder, out)


def test_misbehaving_plugin_stage_through_the_api_is_a_stage_error(fault_host):
    from remaster.errors import StageContractError, StageError

    with pytest.raises(StageError, match="simulated failure") as info:
        remaster.Remasterer("fault.raise").run(np.zeros((4, 4, 3), np.uint8))
    assert info.value.path == "fault.raise" and isinstance(info.value.__cause__, RuntimeError)
    with pytest.raises(StageContractError, match=r"returned values in \[20, 255\], expected \[0, 1\]"):
        remaster.Remasterer("fault.range").run(np.arange(48, dtype=np.uint8).reshape(4, 4, 3) * 5 + 20)


def test_nan_in_reduced_precision_is_retried_in_fp32(tmp_path, capsys, fault_host, caplog):
    folder = stage_input(tmp_path, "good.png")
    inputs, out = snapshot(folder), tmp_path / "out"
    code, errors = run_cli(capsys, "run", "fault.nan-low-precision", folder, "-o", out, "--precision", "bf16")
    assert (code, errors) == (0, [])
    assert "gave NaN/Inf in torch.bfloat16; running it again in fp32" in caplog.text
    np.testing.assert_array_equal(_pixels(out / "good.png"), _pixels(folder / "good.png"))  # not black
    check_invariants("fault", "NaN in bf16, retried in fp32", inputs, folder, out, expected_outputs=[out / "good.png"])


def test_model_file_with_a_malicious_pickle_is_refused(tmp_path, capsys):
    folder = stage_input(tmp_path, "good.png")
    inputs, out = snapshot(folder), tmp_path / "out"
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil model.pth"
    # The pickle of this .pth calls os.system when unpickled with weights_only=False.
    evil.write_bytes(_pickle_calling("os", "system", f"touch '{marker}'"))
    code, errors = run_cli(capsys, "upscale", folder / "good.png", "--model", evil, "-o", out)
    assert code == 1 and len(errors) == 1
    assert str(evil) in errors[0] and "would run code" in errors[0]
    assert not marker.exists()
    check_invariants("fault", "model file with a malicious pickle", inputs, folder, out)


def _pickle_calling(module: str, function: str, argument: str) -> bytes:
    """A protocol-2 pickle of ``{"w": module.function(argument)}``, written by hand (no live object needed)."""
    def text(value: str) -> bytes:
        raw = value.encode()
        return b"X" + struct.pack("<I", len(raw)) + raw

    return (b"\x80\x02}" + text("w") + b"c" + f"{module}\n{function}\n".encode() + text(argument)
            + b"\x85R" + b"s.")


def test_the_malicious_pickle_is_live(tmp_path):
    """The refusal above means something: unpickled the unsafe way, this payload does run."""
    import pickle

    marker = tmp_path / "ran"
    pickle.loads(_pickle_calling("os", "system", f"touch '{marker}'"))
    assert marker.exists()


def test_garbage_under_alpha_does_not_reach_visible_pixels(tmp_path, capsys):
    """Through a resampling stage, the visible result is the same whatever hides under alpha = 0."""
    folder = stage_input(tmp_path, "rgba-garbage-under-alpha.png")
    rgba = np.asarray(PILImage.open(folder / "rgba-garbage-under-alpha.png")).copy()
    rgba[rgba[..., 3] == 0, :3] = 0
    PILImage.fromarray(rgba, "RGBA").save(folder / "clean.png")
    inputs, out = snapshot(folder), tmp_path / "out"
    code, errors = run_cli(capsys, "run", "bicubic(scale=3)", folder, "-o", out)
    assert (code, errors) == (0, [])
    garbage, clean = (np.asarray(PILImage.open(out / n)) for n in ("rgba-garbage-under-alpha.png", "clean.png"))
    np.testing.assert_array_equal(garbage[..., 3], clean[..., 3])
    visible = garbage[..., 3] > 0
    np.testing.assert_array_equal(garbage[visible], clean[visible])
    check_invariants("good input", "garbage colour under alpha 0, resampled", inputs, folder, out,
                     expected_outputs=[out / "clean.png", out / "rgba-garbage-under-alpha.png"])


def test_read_only_report_folder_is_found_before_any_work(tmp_path, capsys, read_only_folder):
    folder = stage_input(tmp_path, "good.png")
    inputs, out = snapshot(folder), tmp_path / "out"
    code, errors = run_cli(capsys, "run", "nearest(scale=2)", folder, "-o", out,
                           "--report", read_only_folder / "report.json")
    assert code == 1 and len(errors) == 1 and "the output folder is not writable" in errors[0]
    assert not out.exists() or not list(out.iterdir())  # nothing processed only to lose the report at the end
    check_invariants("bad input", "read-only folder for --report", inputs, folder, out)
