"""The command line: commands, outputs, exit codes and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from remaster.cli import main
from remaster.errors import UsageError
from remaster.runs.plan import plan_outputs


def write_png(path: Path, width=12, height=10, mode="RGB", seed=0) -> Path:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    array = rng.integers(0, 256, (height, width, channels), dtype=np.uint8).squeeze()
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(array, mode).save(path)
    return path


def test_upscale_one_file_with_a_model_and_scale(tmp_path, capsys):
    source = write_png(tmp_path / "in.png")
    assert main(["upscale", str(source), "-o", str(tmp_path / "out.png"), "--model", "bicubic", "--scale", "2"]) == 0
    assert PILImage.open(tmp_path / "out.png").size == (24, 20)
    assert "1 of 1 image(s) written" in capsys.readouterr().err


def test_upscale_default_is_x4(tmp_path):
    source = write_png(tmp_path / "in.png")
    assert main(["upscale", str(source), "-o", str(tmp_path / "out.png"), "-q"]) == 0
    assert PILImage.open(tmp_path / "out.png").size == (48, 40)


def test_folder_run_goes_on_past_a_bad_file_and_reports_it(tmp_path, capsys):
    photos = tmp_path / "photos"
    write_png(photos / "a.png")
    write_png(photos / "sub" / "b.png", mode="RGBA")
    (photos / "broken.jpg").write_bytes(b"not a jpeg at all")
    (photos / "notes.txt").write_text("ignored: not an image suffix")
    report = tmp_path / "report.json"
    code = main(["run", "nearest(scale=2)", str(photos), "-o", str(tmp_path / "out"), "--json",
                 "--report", str(report)])
    assert code == 1
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["ok"] == 2 and summary["failed"] == 1
    assert json.loads(report.read_text()) == summary
    failed = next(i for i in summary["items"] if not i["ok"])
    assert "broken.jpg" in failed["error"]
    assert PILImage.open(tmp_path / "out" / "sub" / "b.png").mode == "RGBA"
    assert "broken.jpg" in captured.err and "Traceback" not in captured.err


def test_same_stem_in_a_folder_does_not_collide(tmp_path):
    photos = tmp_path / "photos"
    write_png(photos / "a.png")
    PILImage.fromarray(np.zeros((5, 5, 3), np.uint8)).save(photos / "a.bmp")
    assert main(["run", "nearest(scale=1)", str(photos), "-o", str(tmp_path / "out"), "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "a_png.png"]


def test_degrade_is_reproducible_with_a_seed(tmp_path):
    source = write_png(tmp_path / "in.png", 40, 40)
    for name in ("one", "two"):
        assert main(["degrade", str(source), "-o", str(tmp_path / f"{name}.png"), "--downsample", "0.5",
                     "--noise", "8", "--jpeg", "40", "--blur", "1", "--seed", "3", "-q"]) == 0
    one, two = (np.asarray(PILImage.open(tmp_path / f"{n}.png")) for n in ("one", "two"))
    assert one.shape == (20, 20, 3)
    np.testing.assert_array_equal(one, two)


def test_existing_output_is_kept_without_overwrite(tmp_path, capsys):
    source = write_png(tmp_path / "in.png")
    target = tmp_path / "out.png"
    target.write_bytes(b"precious")
    assert main(["upscale", str(source), "-o", str(target), "--model", "nearest"]) == 1
    assert target.read_bytes() == b"precious"
    assert "--overwrite" in capsys.readouterr().err
    assert main(["upscale", str(source), "-o", str(target), "--model", "nearest", "--overwrite", "-q"]) == 0
    assert PILImage.open(target).size == (48, 40)


@pytest.mark.parametrize("argv, message", [
    (["upscale", "missing.png", "-o", "out.png"], "no such file"),
    (["run", "bicubik", "x.png", "-o", "o.png"], "did you mean"),
    (["upscale", "x.png"], "-o/--output"),
    (["upscale", "x.png", "-o", "o.png", "--tile", "big"], "--tile"),
    (["degrade", "x.png", "-o", "o.png"], "nothing to do"),
])
def test_usage_errors_exit_2_with_one_line(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    write_png(tmp_path / "x.png")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("remaster: error:")


def test_unwritable_output_folder_fails_before_work(tmp_path, capsys, monkeypatch):
    source = write_png(tmp_path / "in.png")
    (tmp_path / "plain-file").write_text("a file where a folder should be")
    built = []
    monkeypatch.setattr("remaster.pipeline.ConfiguredStage.instance", lambda *a: built.append(a))
    assert main(["upscale", str(source), "-o", str(tmp_path / "plain-file" / "x.png")]) == 1
    assert "cannot create the output folder" in capsys.readouterr().err
    assert not built  # no stage was built or run


def test_stages_lists_kinds_parameters_and_defaults(capsys):
    assert main(["stages"]) == 0
    out = capsys.readouterr().out
    for text in ("upscalers:", "degraders:", "bicubic", "degrade.jpeg", "quality: int = 50",
                 "[remaster.stages.builtin]"):
        assert text in out
    assert main(["stages", "--json"]) == 0
    listed = {s["name"]: s for s in json.loads(capsys.readouterr().out)}
    assert listed["lanczos"]["params"][0]["name"] == "scale"


def test_console_script_exit_codes(tmp_path):
    remaster = Path(sys.executable).with_name("remaster")
    ok = subprocess.run([remaster, "--version"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("remaster ")
    bad = subprocess.run([remaster, "upscale", str(tmp_path / "nope.png"), "-o", str(tmp_path / "o.png")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_same_names_from_two_folders_never_share_an_output(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    write_png(first / "a.png", seed=1)
    write_png(first / "a_png.png", seed=2)  # the name a colliding a.png is given
    write_png(second / "a.png", seed=3)
    assert main(["run", "nearest(scale=1)", str(first), str(second), "-o", str(tmp_path / "out"), "-q"]) == 0
    outputs = {p.name: np.asarray(PILImage.open(p)) for p in (tmp_path / "out").iterdir()}
    assert sorted(outputs) == ["a.png", "a_png.png", "a_png_2.png"]
    np.testing.assert_array_equal(outputs["a_png_2.png"], np.asarray(PILImage.open(second / "a.png")))


def test_model_file_is_not_read_when_the_output_cannot_be_written(tmp_path, capsys, monkeypatch):
    source = write_png(tmp_path / "in.png")
    (tmp_path / "plain-file").write_text("a file where a folder should be")
    opened = []
    monkeypatch.setattr("remaster.plugin.host.PluginHost.stage_from_file", lambda self, path: opened.append(path))
    assert main(["upscale", str(source), "--model", str(tmp_path / "m.pth"), "-o",
                 str(tmp_path / "plain-file" / "x.png")]) == 1
    assert "cannot create the output folder" in capsys.readouterr().err
    assert opened == []


def test_any_failure_of_one_file_is_that_files_error_line(tmp_path, capsys, monkeypatch):
    photos = tmp_path / "photos"
    write_png(photos / "a.png")
    write_png(photos / "b.png")
    real_load = __import__("remaster.io", fromlist=["load"]).load

    def load(source, **kwargs):
        if Path(source).name == "a.png":
            raise TypeError("a bug in a decoder")
        return real_load(source, **kwargs)

    monkeypatch.setattr("remaster.io.load", load)
    assert main(["run", "nearest(scale=1)", str(photos), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert f"remaster: error: {photos / 'a.png'}: TypeError: a bug in a decoder" in err
    assert (tmp_path / "out" / "b.png").exists()  # the run went on


def test_a_usage_error_found_late_leaves_no_empty_output_folder(tmp_path):
    source = write_png(tmp_path / "in.png")
    assert main(["run", "bicubik(scale=2)", str(source), "-o", str(tmp_path / "new" / "out")]) == 2
    assert not (tmp_path / "new").exists()


def test_a_closed_stdout_pipe_ends_the_command_quietly():
    """``remaster stages | head -1``: no traceback, no error line, not even at interpreter exit."""
    # The child prints a line and waits, so every line of 'stages' is written after the reader has gone.
    code = ("import sys\nfrom remaster.cli import main\nprint('ready', flush=True)\nsys.stdin.readline()\n"
            "sys.exit(main(['stages']))")
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
        child.stdout.close()  # what head does after its first line
        child.stdin.write("go\n")
        child.stdin.close()
        stderr = child.stderr.read()
        returncode = child.wait(timeout=120)
    finally:
        child.kill()
        child.wait()
    assert stderr == ""
    assert returncode == 141  # 128 + SIGPIPE, as a shell reports for the standard tools


def test_alpha_into_jpeg_is_one_warning_line_and_quiet_hides_it(tmp_path, capsys):
    source = write_png(tmp_path / "in.png", mode="RGBA")
    assert main(["run", "nearest(scale=1)", str(source), "-o", str(tmp_path / "out.jpg")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line.lower()]
    assert warnings == [f"remaster: warning: {tmp_path / 'out.jpg'}: JPEG cannot store transparency, alpha dropped "
                        "(composited onto white); use .png/.webp/.tif to keep it"]
    assert main(["run", "nearest(scale=1)", str(source), "-o", str(tmp_path / "quiet.jpg"), "-q"]) == 0
    assert capsys.readouterr().err == ""
    assert PILImage.open(tmp_path / "quiet.jpg").mode == "RGB"


@pytest.mark.parametrize("name", ["out.bmp", "out.gif", "out.JFIF"])
def test_an_output_file_remaster_cannot_write_is_refused_before_work(tmp_path, monkeypatch, capsys, name):
    source = write_png(tmp_path / "in.png")
    built = []
    monkeypatch.setattr("remaster.pipeline.Remasterer.__init__", lambda *a, **k: built.append(a))
    assert main(["run", "nearest(scale=2)", str(source), "-o", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"remaster: error: {tmp_path / name}: remaster cannot write")
    assert ".png" in err and ".webp" in err and ".tif" in err
    assert not (tmp_path / name).exists() and not built


@pytest.mark.parametrize("output, written", [
    ("out/", "out/in.png"), ("results", "results/in.png"), ("out.bmp/", "out.bmp/in.png"),
])
def test_folder_outputs_still_work(tmp_path, output, written):
    source = write_png(tmp_path / "in.png")
    assert main(["run", "nearest(scale=1)", str(source), "-o", str(tmp_path) + "/" + output, "-q"]) == 0
    assert (tmp_path / written).is_file()


def test_suffix_and_name_template_name_the_outputs(tmp_path):
    photos = tmp_path / "photos"
    write_png(photos / "a.png")
    write_png(photos / "sub" / "b.jpg")
    assert main(["run", "nearest(scale=1)", str(photos), "-o", str(tmp_path / "s"), "--suffix", "_x4", "-q"]) == 0
    assert sorted(p.relative_to(tmp_path / "s").as_posix() for p in (tmp_path / "s").rglob("*.*")) == [
        "a_x4.png", "sub/b_x4.jpg"]
    assert main(["run", "nearest(scale=1)", str(photos), "-o", str(tmp_path / "t"), "--format", "webp",
                 "--name-template", "up-{stem}.{ext}", "-q"]) == 0
    assert sorted(p.relative_to(tmp_path / "t").as_posix() for p in (tmp_path / "t").rglob("*.*")) == [
        "sub/up-b.webp", "up-a.webp"]


def test_a_name_template_keeps_colliding_outputs_apart():
    sources = [(Path("in/a.png"), Path("a.png")), (Path("in/a.bmp"), Path("a.bmp")), (Path("two/a.png"), Path("a.png"))]
    for template, suffix, expected in [
        ("{stem}_x4.{ext}", "", ["a_x4.png", "a_x4_bmp.png", "a_x4_png.png"]),
        ("{stem}{suffix}.{ext}", "-big", ["a-big.png", "a-big_bmp.png", "a-big_png.png"]),
        ("same.png", "", ["same.png", "same_bmp.png", "same_png.png"]),
    ]:
        items = plan_outputs(sources, Path("out"), None, name_template=template, suffix=suffix)
        assert [item.target for item in items] == [Path("out") / name for name in expected]
        assert [item.source for item in items] == [source for source, _ in sources]
    # The default plan is what it always was.
    assert [i.target.name for i in plan_outputs(sources, Path("out"), None)] == ["a.png", "a_bmp.png", "a_png.png"]


@pytest.mark.parametrize("options, message", [
    (["--name-template", "../{stem}.{ext}"], "could write outside the output folder"),
    (["--name-template", "sub/{stem}.{ext}"], "could write outside the output folder"),
    (["--name-template", "sub\\{stem}.{ext}"], "could write outside the output folder"),
    (["--name-template", "C:{stem}.{ext}"], "absolute path"),
    (["--suffix", "/x"], "could write outside the output folder"),
    (["--name-template", "{stem}_{scale}.{ext}"], "unknown field {scale}"),
    (["--name-template", "{stem!r}.{ext}"], "unknown field {stem!r}"),
    (["--name-template", "{stem:>9}.{ext}"], "unknown field {stem:>9}"),
    (["--name-template", "{stem}}.{ext}"], "Single '}' encountered"),
    (["--name-template", "{stem}_x4"], "does not end in an image extension"),
    (["--name-template", "{stem}.bmp"], "does not end in an image extension"),
    (["--name-template", "{stem}.png", "--format", "jpg"], "names .png files, but --format asks for jpg"),
    (["--name-template", "{stem}.{ext}", "--suffix", "_x4"], "has no {suffix}"),
    (["--resume", "--overwrite"], "not allowed with"),
])
def test_bad_naming_options_are_usage_errors(tmp_path, capsys, options, message):
    source = write_png(tmp_path / "in.png")
    assert main(["run", "nearest(scale=1)", str(source), str(source), "-o", str(tmp_path / "out"), *options]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("remaster: error:")
    assert not (tmp_path / "out").exists()


def test_naming_options_with_a_one_file_output_are_refused(tmp_path, capsys):
    source = write_png(tmp_path / "in.png")
    assert main(["run", "nearest(scale=1)", str(source), "-o", str(tmp_path / "o.png"), "--suffix", "_x4"]) == 2
    assert "one output file" in capsys.readouterr().err


def test_half_weights_and_compile_reach_the_pipeline_and_its_report(tmp_path, capsys):
    # bf16 on a tiny image (emulated, so slow, on AVX2-only CPUs); compile in fp32 on one large enough to compile:
    # tile 16 with realesr-animevideov3's overlap of 24 makes 88 px windows, and smaller images run uncompiled.
    small = write_png(tmp_path / "small.png", width=20, height=18)
    assert main(["upscale", str(small), "-o", str(tmp_path / "half.png"), "--model", "realesr-animevideov3",
                 "--device", "cpu", "--precision", "bf16", "--half-weights", "--json"]) == 0
    ran = json.loads(capsys.readouterr().out)["items"][0]["stages"][0]
    assert ran["precision"] == "bf16" and ran["weights"] == "bf16"
    assert PILImage.open(tmp_path / "half.png").size == (80, 72)

    large = write_png(tmp_path / "large.png", width=96, height=90)
    assert main(["upscale", str(large), "-o", str(tmp_path / "compiled.png"), "--model", "realesr-animevideov3",
                 "--device", "cpu", "--precision", "fp32", "--tile", "16", "--compile", "on",
                 "--compile-backend", "aot_eager", "--json"]) == 0
    ran = json.loads(capsys.readouterr().out)["items"][0]["stages"][0]
    assert ran["compiled"] == "aot_eager" and ran["compile_seconds"] > 0
    assert PILImage.open(tmp_path / "compiled.png").size == (384, 360)


def test_the_per_image_line_says_how_long_compiling_took(tmp_path, capsys):
    from remaster.cli.folder import _precision_note

    extras = {"stages": [{"precision": "fp16", "compiled": "inductor", "compile_seconds": 12.34}]}
    assert _precision_note(extras, ["fp16"]) == ", compiling took 12.3 s"
    assert _precision_note({"stages": [{"precision": "fp32"}]}, ["fp16"]) == ", ran in fp32"


def test_gpu_options_reach_the_ray_workers_run_spec():
    from remaster.pipeline import PipelineOptions
    from remaster.runs.ray.driver import make_spec

    options = PipelineOptions(precision="bf16", tile=64, half_weights=True, compile="on", compile_backend="aot_eager")
    spec = make_spec(["nearest(scale=2)"], options, overwrite=False, quality=None, cpus_per_worker=1,
                     gpus_per_worker=0)
    built = spec.build()  # what each worker does, once
    assert (built.half_weights, built.compile, built.compile_backend) == (True, "on", "aot_eager")
    with pytest.raises(UsageError, match="fixed size"):  # checked before any cluster starts
        PipelineOptions(tile=0, compile="on")


def test_compile_with_tile_0_is_a_usage_error(tmp_path, capsys):
    source = write_png(tmp_path / "in.png")
    assert main(["upscale", str(source), "-o", str(tmp_path / "out.png"), "--model", "nearest", "--compile",
                 "on", "--tile", "0"]) == 2
    assert "compiling needs tiles of one fixed size" in capsys.readouterr().err


def _program(tmp_path, prelude: str, *argv: str) -> subprocess.CompletedProcess:
    code = (prelude + "\nimport atexit, sys\natexit.register(lambda: print('orderly exit', file=sys.stderr))\n"
            "from remaster.cli import program\nsys.argv = ['remaster', *sys.argv[1:]]\nprogram()\n")
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)


def test_the_program_flushes_everything_then_exits_at_once_with_mains_code(tmp_path):
    listed = _program(tmp_path, "", "stages", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout)  # the whole JSON made it out
    assert "orderly exit" not in listed.stderr  # the interpreter's teardown was skipped
    failed = _program(tmp_path, "", "upscale", "missing.png", "-o", "out.png")
    assert failed.returncode == 2 and "remaster: error: missing.png" in failed.stderr


def test_the_program_exits_in_order_while_another_thread_still_runs(tmp_path):
    # Long enough to outlast the command even on a loaded machine: the program must wait for it.
    prelude = "import threading, time\nthreading.Thread(target=time.sleep, args=(3.0,)).start()"
    listed = _program(tmp_path, prelude, "stages", "-q")
    assert listed.returncode == 0 and "orderly exit" in listed.stderr
