"""Issue 21: files whose headers lie, refused from the header or their short data; malformed commands exit 2.

Each case here was reproduced against the code before the fix: header bombs grew the process by gigabytes before
the output-size refusal, short data was written out as a full-size picture with exit 0, and a 300-character stage
name was an internal error.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

sys.path.insert(0, str(Path(__file__).parent))

from hostile_files import jpeg_claiming, jpeg_cut, png_with_rows  # noqa: E402
from reliability_support import run_cli, tally  # noqa: E402
from remaster import InputError, Remasterer, io  # noqa: E402
from remaster.errors import ImageTooLargeError  # noqa: E402


@pytest.mark.parametrize("name, data", [pytest.param(name, data, id=name) for name, data in (
    ("rows.png", png_with_rows(4000, 3000, 10)),
    ("rows16.png", png_with_rows(400, 300, 10, depth=16)),
    ("rgba-rows.png", png_with_rows(64, 64, 3, colour=6)),
    ("sof.jpg", jpeg_claiming(2000, 2000)),
    ("cut.jpg", jpeg_cut()),
)])
def test_data_shorter_than_its_header_is_an_error_and_no_output(tmp_path, capsys, name, data):
    source = tmp_path / name
    source.write_bytes(data)
    with pytest.raises(InputError, match="truncated or corrupt"):
        io.load(source)
    code, errors = run_cli(capsys, "upscale", source, "-o", tmp_path / "out.png", "--model", "nearest", "--scale", "2")
    assert code == 1 and len(errors) == 1 and name in errors[0] and "truncated or corrupt" in errors[0]
    assert not (tmp_path / "out.png").exists()
    tally("bad input", f"data shorter than its header: {name}")


def test_complete_files_still_load(tmp_path):
    rng = np.random.default_rng(0)
    for suffix, options in ((".png", {}), (".jpg", {"quality": 90}), (".jpg", {"progressive": True})):
        path = tmp_path / f"ok{suffix}"
        PILImage.fromarray(rng.integers(0, 256, (37, 53, 3), np.uint8)).save(path, **options)
        assert io.load(path).pixels.shape == (1, 3, 37, 53)
    interlaced = tmp_path / "interlaced.png"
    PILImage.fromarray(rng.integers(0, 256, (19, 23, 4), np.uint8)).save(interlaced, interlace=1)
    assert io.load(interlaced).alpha is not None


@pytest.mark.parametrize("name, data", [pytest.param("bomb.png", png_with_rows(13000, 13000, 1), id="png"),
                                        pytest.param("bomb.jpg", jpeg_claiming(13000, 13000), id="jpeg")])
def test_the_header_is_enough_to_refuse_a_too_large_output(tmp_path, name, data):
    source = tmp_path / name
    source.write_bytes(data)
    with pytest.raises(ImageTooLargeError, match="the output would be 52000x52000") as caught:
        Remasterer("nearest(scale=4)", device="cpu").run_file(source, tmp_path / "out.png")
    assert name in str(caught.value)
    header = io.read_header(source)
    assert (header.width, header.height, header.channels) == (13000, 13000, 3)
    tally("bad input", f"header bomb, output over the limit: {name}")


def test_a_header_bomb_is_refused_without_decoding(tmp_path):
    """Memory grows by what reading the header costs, not by the 507 MP the header claims (4.8 GB before)."""
    (tmp_path / "bomb.png").write_bytes(png_with_rows(13000, 13000, 1))
    (tmp_path / "bomb.jpg").write_bytes(jpeg_claiming(13000, 13000))
    (tmp_path / "bomb16.png").write_bytes(png_with_rows(13000, 13000, 1, depth=16))
    code = textwrap.dedent(f"""
        import resource, numpy as np
        from remaster import Remasterer, ImageTooLargeError
        folder = {str(tmp_path)!r}
        remasterer = Remasterer("nearest(scale=4)", device="cpu")
        remasterer.run(np.zeros((16, 16, 3), np.uint8))  # everything the first image loads, loaded
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for name in ("bomb.png", "bomb.jpg", "bomb16.png"):
            try:
                remasterer.run_file(folder + "/" + name, folder + "/out.png")
            except ImageTooLargeError:
                pass
            else:
                raise SystemExit("not refused: " + name)
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.split()[-1]) < 32  # MiB over the process's peak before the bombs


def test_a_stage_name_too_long_for_the_filesystem_is_a_usage_error(tmp_path, capsys):
    source = tmp_path / "a.png"
    PILImage.new("RGB", (4, 4)).save(source)
    code, errors = run_cli(capsys, "run", "x" * 300, source, "-o", tmp_path / "b.png")
    assert code == 2 and "no stage named" in errors[0]
    code, errors = run_cli(capsys, "run", "x" * 300 + ".pth", source, "-o", tmp_path / "b.png")
    assert code == 1 and "no such model file" in errors[0]
    tally("bad input", "a stage name too long for the file system")


def test_a_missing_face_model_file_is_said_to_be_missing(tmp_path):
    pytest.importorskip("remaster_gfpgan")
    from remaster import StageCall
    from remaster_gfpgan.cli import face_pipeline

    call = face_pipeline(StageCall("lanczos"), 2.0, model="./nope.pth")
    assert call.params["model"] == "./nope.pth" and "version" not in call.params
    assert face_pipeline(StageCall("lanczos"), 2.0, model="1.3").params["version"] == "1.3"


def test_a_library_that_warns_thousands_of_times_is_a_few_lines(tmp_path, capsys):
    """Pillow warns once per bad TIFF tag (4,002 lines for one file before); its logger is not remaster's voice."""
    import logging
    import warnings

    from remaster.cli.console import REPEATS_SHOWN, console_for
    from remaster.runs.reading import reading

    class Args:
        quiet, debug = False, False

    with console_for(Args()), reading("scans/a.tif"):  # as the folder run's reader thread says
        for number in range(500):
            warnings.warn_explicit(f"Metadata Warning, tag {number} had too many entries", UserWarning,
                                   "TiffImagePlugin.py", 42)
        logging.getLogger("PIL.TiffImagePlugin").error("tag 700 is broken")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == REPEATS_SHOWN + 2, lines  # two warnings shown, Pillow's record, one count
    assert all("scans/a.tif: " in line for line in lines)  # each names the file
    assert lines[-1].startswith("remaster: warning: scans/a.tif: 498 more warning(s)")
    assert "PIL.TiffImagePlugin says (error): scans/a.tif: tag 700 is broken" in lines[-2]
    assert not any(line.startswith("remaster: error:") for line in lines)

    class Quiet:
        quiet, debug = True, False

    with console_for(Quiet()):
        warnings.warn_explicit("tag 1 had too many entries", UserWarning, "TiffImagePlugin.py", 42)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("kind", ["half-float", "five-samples"])
def test_a_layout_remaster_does_not_keep_whole_is_unsupported_not_corrupt(tmp_path, capsys, kind):
    tifffile = pytest.importorskip("tifffile")
    rng = np.random.default_rng(0)
    source = tmp_path / f"{kind}.tif"
    if kind == "half-float":
        tifffile.imwrite(source, rng.random((20, 30, 3)).astype(np.float16), photometric="rgb")
    else:
        tifffile.imwrite(source, rng.integers(0, 255, (20, 30, 5), np.uint8), photometric="rgb",
                         extrasamples=[0, 0])
    from remaster.errors import UnsupportedImageError

    with pytest.raises(UnsupportedImageError, match="not supported"):
        io.load(source)
    code, errors = run_cli(capsys, "upscale", source, "-o", tmp_path / "out.png", "--model", "nearest")
    assert code == 1 and len(errors) == 1 and "not supported" in errors[0] and "corrupt" not in errors[0]
    tally("bad input", f"a TIFF layout remaster does not keep whole: {kind}")


def test_a_planar_tiff_still_loads(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    source = tmp_path / "planar.tif"
    planes = np.random.default_rng(1).integers(0, 255, (3, 20, 30), np.uint8)
    tifffile.imwrite(source, planes, planarconfig="separate", photometric="rgb")
    image = io.load(source)
    assert np.array_equal(image.to_numpy(), planes.transpose(1, 2, 0))
