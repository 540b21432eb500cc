"""Folder runs: go on past failures, report every file, stop cleanly on Ctrl-C, hold up over 200 files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage

from reliability_support import (
    CORPUS,
    FAULT_PLUGIN,
    check_invariants,
    decodes_completely,
    install_fault_plugin,
    run_cli,
    snapshot,
    stage_input,
    tally,
    temp_files,
    upscaled,
)
from remaster.cli import main

#: Corpus files remaster refuses, cycled through to make bad files for the soak test.
BAD_FILES = ["empty.png", "text-file.png", "random-bytes.jpg", "truncated.jpg", "bad-crc-idat.png",
             "bomb-30000x30000.png", "animated.gif", "multipage.tif", "float32-nan-inf.tif"]


def test_report_has_every_field_and_what_stages_counted(tmp_path, capsys, fault_host):
    folder = stage_input(tmp_path, "good.png", "1x37.png", "truncated.jpg")
    inputs, out, report = snapshot(folder), tmp_path / "out", tmp_path / "reports" / "run.json"
    code, errors = run_cli(capsys, "run", "fault.faces(faces=3) | nearest(scale=2)", folder, "-o", out,
                           "--report", report)
    assert code == 1 and len(errors) == 1
    summary = json.loads(report.read_text())
    assert (summary["ok"], summary["failed"], summary["not_done"], summary["interrupted"]) == (2, 1, 0, False)
    entries = {Path(e["input"]).name: e for e in summary["items"]}
    for name in ("good.png", "1x37.png"):
        entry = entries[name]
        assert entry["ok"] is True and entry["error"] is None and entry["output"] == str(out / name)
        assert entry["faces"] == 3  # a numpy integer from the stage, written as a JSON number
        assert isinstance(entry["seconds"], float) and entry["seconds"] >= 0
    bad = entries["truncated.jpg"]
    assert bad["ok"] is False and bad["output"] is None and "faces" not in bad
    assert str(folder / "truncated.jpg") in bad["error"] and "truncated" in bad["error"]
    check_invariants("bad input", "folder run past a bad file, with --report", inputs, folder, out,
                     expected_outputs=[out / "good.png", out / "1x37.png", report])


def test_ctrl_c_while_a_file_is_written(tmp_path, capsys, monkeypatch):
    """Ctrl-C lands inside the atomic write of the second output: its temp file goes, the first stays."""
    folder = stage_input(tmp_path, "good.png", "1x37.png", "37x1.png")
    inputs, out, report = snapshot(folder), tmp_path / "out", tmp_path / "report.json"
    real_fsync, calls = os.fsync, []

    def fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 2:  # the second output's temp file is written and open
            assert [p.name for p in out.iterdir() if p.name.startswith(".")], "no temp file in flight"
            raise KeyboardInterrupt
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    code = run_cli(capsys, "run", "nearest(scale=2)", folder, "-o", out, "--report", report)[0]
    assert code == 130
    assert sorted(p.name for p in out.iterdir()) == ["1x37.png"]  # finished, complete; the temp file is gone
    summary = json.loads(report.read_text())
    assert summary["interrupted"] is True and (summary["ok"], summary["failed"], summary["not_done"]) == (1, 0, 2)
    check_invariants("fault", "Ctrl-C during a write", inputs, folder, out, expected_outputs=[out / "1x37.png"])


def _remaster_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a real ``remaster`` process that finds the fault plugin through its entry point."""
    site = install_fault_plugin(tmp_path / "site")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(FAULT_PLUGIN), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_a_real_process_keeps_finished_outputs_and_writes_the_report(tmp_path, how):
    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(8):
        shutil.copyfile(CORPUS / "good.png", folder / f"photo{index}.png")
    inputs, out, report = snapshot(folder), tmp_path / "out", tmp_path / "report.json"
    remaster = Path(sys.executable).with_name("remaster")
    process = subprocess.Popen([remaster, "run", "fault.slow(seconds=0.5)", folder, "-o", out, "--report", report],
                               env=_remaster_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out.exists() and [p for p in out.iterdir() if not p.name.startswith(".")]):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.02)
    process.send_signal(how)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    summary = json.loads(report.read_text())
    assert summary["interrupted"] is True and summary["ok"] >= 1 and summary["not_done"] >= 1
    written = sorted(p.name for p in out.iterdir())
    reported = sorted(Path(e["output"]).name for e in summary["items"] if e["ok"])
    # Every output the report lists exists; at most the one renamed in the instant the signal came is not listed.
    assert set(reported) <= set(written) and len(written) - len(reported) <= 1
    check_invariants("fault", f"{how.name} to a real process", inputs, folder, out,
                     expected_outputs=[out / name for name in written])


# --------------------------------------------------------------------------- soak


def _soak_folder(folder: Path, count: int) -> tuple[dict[str, np.ndarray], list[str]]:
    """``count`` files, one in four bad; returns the expected x2 pixels of each good one and the bad names."""
    rng = np.random.default_rng(count)
    expected, bad = {}, []
    folder.mkdir(parents=True)
    for index in range(count):
        if index % 4 == 3:
            source = BAD_FILES[index // 4 % len(BAD_FILES)]
            name = f"{index:03d}-{source}"
            shutil.copyfile(CORPUS / source, folder / name)
            bad.append(name)
            continue
        height, width = int(rng.integers(1, 64)), int(rng.integers(1, 64))
        kind = index % 4
        if kind == 0:  # 8-bit RGB PNG
            array = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            name = f"{index:03d}.png"
            PILImage.fromarray(array).save(folder / name)
        elif kind == 1:  # RGBA PNG
            array = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
            name = f"{index:03d}-rgba.png"
            PILImage.fromarray(array, "RGBA").save(folder / name)
        else:  # 16-bit gray PNG
            array = rng.integers(0, 65536, (height, width), dtype=np.uint16)
            name = f"{index:03d}-gray16.png"
            cv2.imwrite(str(folder / name), array)
        expected[name] = upscaled(array)
    return expected, bad


def _run_measured(tmp_path: Path, folder: Path, out: Path, report: Path) -> tuple[int, int, str]:
    """Run ``remaster`` in a fresh process; returns its exit code, its peak RSS in KiB and its stderr."""
    code = ("import resource, sys\nfrom remaster.cli import main\ncode = main(sys.argv[1:])\n"
            "print('peak_rss_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
            "sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code, "run", "nearest(scale=2)", str(folder), "-o", str(out),
                           "--report", str(report), "-q"], capture_output=True, text=True, timeout=600)
    peak = int(done.stderr.rsplit("peak_rss_kib", 1)[1].split()[0])
    return done.returncode, peak, done.stderr


@pytest.mark.slow
def test_soak_200_mixed_files_in_one_run(tmp_path):
    results = {}
    for count in (20, 200):
        folder, out, report = tmp_path / f"in{count}", tmp_path / f"out{count}", tmp_path / f"report{count}.json"
        expected, bad = _soak_folder(folder, count)
        inputs = snapshot(folder)
        started = time.perf_counter()
        code, peak, stderr = _run_measured(tmp_path, folder, out, report)
        seconds = time.perf_counter() - started
        assert code == 1, stderr
        summary = json.loads(report.read_text())
        assert (summary["ok"], summary["failed"]) == (len(expected), len(bad))
        errors = [line for line in stderr.splitlines() if line.startswith("remaster: error:")]
        assert len(errors) == len(bad) and all(any(name in line for line in errors) for name in bad)
        for name, pixels in expected.items():  # every good output is right, not merely present
            output = cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED)
            if output.ndim == 3:
                output = cv2.cvtColor(output, cv2.COLOR_BGR2RGB if output.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
            np.testing.assert_array_equal(output, pixels, err_msg=name)
        check_invariants("soak", f"soak of {count} files", inputs, folder, out,
                         expected_outputs=[out / name for name in expected])
        results[count] = peak
        print(f"soak: {count} files ({len(bad)} bad) in {seconds:.1f} s, peak RSS {peak / 1024:.0f} MiB")
        tally("soak figures", f"{count} files", files=count, bad=len(bad), seconds=round(seconds, 1),
              peak_rss_mib=round(peak / 1024))
    # Memory is bounded: ten times the files may not cost more than a little (no per-file leak).
    assert results[200] - results[20] < 64 * 1024, results


def test_decodes_completely_catches_a_cut_file(tmp_path):
    """The invariant checker itself: a half-written PNG does not pass as an output."""
    whole = tmp_path / "whole.png"
    shutil.copyfile(CORPUS / "good.png", whole)
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole.read_bytes()[:-30])
    assert decodes_completely(whole) and not decodes_completely(cut)
    (tmp_path / ".cut.png.1234.tmp").write_bytes(b"")
    assert temp_files(tmp_path)


@pytest.mark.parametrize("step", ["__init__", "prepare"])
def test_ctrl_c_while_the_pipeline_is_built_still_writes_the_report(tmp_path, capsys, monkeypatch, step):
    """Models are read before the first image (a --model file, every stage's weights); Ctrl-C then leaves a report."""
    folder = stage_input(tmp_path, "good.png", "1x37.png")
    inputs, out, report = snapshot(folder), tmp_path / "out", tmp_path / "report.json"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(f"remaster.pipeline.Remasterer.{step}", interrupted)
    assert run_cli(capsys, "run", "nearest(scale=2)", folder, "-o", out, "--report", report)[0] == 130
    summary = json.loads(report.read_text())
    assert summary == {"ok": 0, "skipped": 0, "failed": 0, "not_done": 2, "interrupted": True, "items": []}
    check_invariants("fault", f"Ctrl-C in Remasterer.{step}", inputs, folder, out, expected_outputs=[report])


# --------------------------------------------------------------------------- --resume


def test_skip_existing_resumes_an_interrupted_folder_run(tmp_path, capsys):
    folder = stage_input(tmp_path, "good.png", "1x37.png", "37x1.png")
    out, report = tmp_path / "out", tmp_path / "report.json"
    assert run_cli(capsys, "run", "nearest(scale=2)", folder, "-o", out)[0] == 0
    (out / "37x1.png").unlink()  # as if the first run had been stopped before its last image
    kept = {name: ((out / name).read_bytes(), (out / name).stat().st_mtime_ns) for name in ("good.png", "1x37.png")}
    code = main(["run", "nearest(scale=2)", str(folder), "-o", str(out), "--resume", "--report", str(report)])
    assert code == 0
    err = capsys.readouterr().err
    for name in kept:
        assert f"{folder / name} -> {out / name} (skipped: already exists)" in err
    assert "1 of 3 image(s) written" in err and "2 skipped" in err
    assert {name: ((out / name).read_bytes(), (out / name).stat().st_mtime_ns) for name in kept} == kept
    np.testing.assert_array_equal(cv2.imread(str(out / "37x1.png"), cv2.IMREAD_UNCHANGED),
                                  upscaled(cv2.imread(str(folder / "37x1.png"), cv2.IMREAD_UNCHANGED)))
    summary = json.loads(report.read_text())
    assert (summary["ok"], summary["skipped"], summary["failed"], summary["not_done"]) == (1, 2, 0, 0)
    entries = {Path(e["input"]).name: e for e in summary["items"]}
    assert entries["good.png"]["skipped"] is True and entries["good.png"]["ok"] is False
    assert entries["good.png"]["output"] == str(out / "good.png") and entries["good.png"]["error"] is None
    assert entries["37x1.png"]["skipped"] is False and entries["37x1.png"]["ok"] is True


def test_skip_existing_loads_no_model_when_every_output_is_there(tmp_path, capsys, monkeypatch):
    folder = stage_input(tmp_path, "good.png", "1x37.png")
    out = tmp_path / "out"
    assert run_cli(capsys, "run", "nearest(scale=2)", folder, "-o", out)[0] == 0
    built = []
    monkeypatch.setattr("remaster.pipeline.Remasterer.__init__", lambda *a, **k: built.append(a))
    assert main(["run", "nearest(scale=2)", str(folder), "-o", str(out), "--resume", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["ok"], summary["skipped"], summary["failed"]) == (0, 2, 0) and not built


def test_an_existing_output_is_still_an_error_without_skip_existing(tmp_path, capsys):
    folder = stage_input(tmp_path, "good.png", "1x37.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "good.png").write_bytes(b"earlier result")
    code, errors = run_cli(capsys, "run", "nearest(scale=2)", folder, "-o", out)
    assert code == 1 and len(errors) == 1 and "already exists" in errors[0]
    assert (out / "good.png").read_bytes() == b"earlier result" and (out / "1x37.png").is_file()
