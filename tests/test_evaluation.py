"""remaster.evaluation and the `eval` / `compare` commands: degrade, upscale, score, report, sheets."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from skimage import data

import remaster.evaluation.defaults
from remaster import PipelineOptions, Remasterer, UsageError
from remaster.cli import main
from remaster.errors import UnknownStageError, WeightsNotFoundError
from remaster.evaluation import (
    DEFAULT_DEGRADE,
    candidate_pipeline,
    compare_images,
    evaluate,
    format_value,
    parse_metrics,
    sheet_width,
    split_list,
)
from remaster.metrics import UnknownMetricError, niqe, psnr, ssim
from weights_support import ManagerUsed, RefusingManager  # tests/weights_support.py

INTERPOLATORS = ["nearest", "bicubic", "lanczos"]


@pytest.fixture(scope="module")
def hr_folder(tmp_path_factory) -> Path:
    """Two small colour crops of scikit-image photos; the second is not a multiple of 4 (50x46)."""
    folder = tmp_path_factory.mktemp("hr")
    PILImage.fromarray(data.astronaut()[180:244, 200:264]).save(folder / "astronaut.png")
    PILImage.fromarray(data.coffee()[100:146, 300:350]).save(folder / "coffee.png")
    return folder


@pytest.fixture(scope="module")
def run(hr_folder, tmp_path_factory):
    """One evaluation of the interpolators, PSNR/SSIM on Y with a border of 4, written to a folder."""
    out = tmp_path_factory.mktemp("report")
    calls = []
    report = evaluate(sorted(hr_folder.iterdir()), candidates=INTERPOLATORS, metrics=["psnr", "ssim"],
                      crop_border=4, y_channel=True, out_dir=out, progress=lambda *a: calls.append(a))
    return report, out, calls


def test_report_files_exist_and_agree(run):
    report, out, _ = run
    for name in ("report.md", "report.csv", "report.json"):
        assert (out / name).is_file()
    doc = json.loads((out / "report.json").read_text())
    rows = list(csv.DictReader((out / "report.csv").read_text().splitlines()))
    markdown = (out / "report.md").read_text()
    assert [c["name"] for c in doc["candidates"]] == INTERPOLATORS
    assert [i["name"] for i in doc["images"]] == ["astronaut.png", "coffee.png"]
    for image in ("astronaut.png", "coffee.png"):
        for candidate in INTERPOLATORS:
            row = next(r for r in rows if r["image"] == image and r["candidate"] == candidate)
            for metric in ("psnr", "ssim"):
                value = report.scores[candidate][image][metric]
                assert float(row[metric]) == value
                assert doc["per_image"][image][candidate][metric] == value
            assert float(row["seconds"]) == doc["per_image"][image][candidate]["seconds"] > 0
    for candidate in INTERPOLATORS:
        row = next(r for r in rows if r["image"] == "(mean)" and r["candidate"] == candidate)
        cells = [format_value(m, doc["mean"][candidate][m]) for m in ("psnr", "ssim")]
        assert [format_value(m, float(row[m])) for m in ("psnr", "ssim")] == cells
        line = next(text for text in markdown.splitlines()  # the mean table comes first
                    if text.startswith(f"| {candidate} |"))
        assert [c.strip("* ") for c in line.split("|")[2:4]] == cells


def test_scores_equal_direct_metric_calls(run, hr_folder):
    report, _, _ = run
    hr = np.asarray(PILImage.open(hr_folder / "coffee.png"))[:44, :48]  # cropped to multiples of 4 (bottom/right)
    assert report.images[1].hr_size == (48, 44) and report.images[1].lr_size == (12, 11)
    lr = Remasterer(DEFAULT_DEGRADE).run(hr)  # uint8 in, uint8 out: rounded as if saved as PNG
    for candidate in INTERPOLATORS:
        out = Remasterer(f"{candidate}(scale=4)").run(lr)
        assert report.scores[candidate]["coffee.png"]["psnr"] == pytest.approx(
            psnr(out, hr, data_range=255, crop_border=4, y_channel=True), abs=1e-12)
        assert report.scores[candidate]["coffee.png"]["ssim"] == pytest.approx(
            ssim(out, hr, data_range=255, crop_border=4, y_channel=True), abs=1e-12)


def test_per_image_rows_and_means(run):
    report, _, calls = run
    for candidate in INTERPOLATORS:
        values = [report.scores[candidate][i.name]["psnr"] for i in report.images]
        assert report.mean(candidate, "psnr") == pytest.approx(sum(values) / 2)
    assert report.mean("lanczos", "psnr") > report.mean("nearest", "psnr")
    assert [c[0] for c in calls] == list(range(7)) and calls[-1][:2] == (6, 6)  # over image x candidate


def test_sheet_has_one_panel_per_candidate_plus_input_and_original(run):
    report, out, _ = run
    sheets = sorted((out / "sheets").glob("*.png"))
    assert [p.name for p in sheets] == ["astronaut.png", "coffee.png"]
    assert PILImage.open(sheets[0]).width == sheet_width(len(INTERPOLATORS) + 2)
    assert "![astronaut.png" in (out / "report.md").read_text()


def test_niqe_and_originals_row(tmp_path):
    hr = data.chelsea()[:200, :200]  # NIQE needs two 96x96 blocks
    report = evaluate([("chelsea", hr)], candidates=["bicubic"], out_dir=tmp_path)
    assert report.metric_labels == ["psnr", "ssim", "niqe"]
    out = Remasterer("bicubic(scale=4)").run(Remasterer(DEFAULT_DEGRADE).run(hr))
    assert report.scores["bicubic"]["chelsea"]["niqe"] == pytest.approx(niqe(out, data_range=255), abs=1e-12)
    assert report.originals["chelsea"]["niqe"] == pytest.approx(niqe(hr, data_range=255), abs=1e-12)
    rows = list(csv.DictReader((tmp_path / "report.csv").read_text().splitlines()))
    original = next(r for r in rows if r["image"] == "chelsea" and r["candidate"] == "original")
    assert original["psnr"] == "" and float(original["niqe"]) == report.originals["chelsea"]["niqe"]
    assert "*original (HR)*" in (tmp_path / "report.md").read_text()


def test_a_metric_that_cannot_be_measured_is_blank_with_a_warning(tmp_path):
    report = evaluate([("tiny", data.astronaut()[:32, :32])], candidates=["bicubic"], out_dir=tmp_path)
    assert math.isnan(report.scores["bicubic"]["tiny"]["niqe"])  # too small for NIQE
    assert report.warnings and report.warnings[0].startswith("niqe was not measured on tiny")
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["per_image"]["tiny"]["bicubic"]["niqe"] is None
    assert "| bicubic |" in (tmp_path / "report.md").read_text()


def test_grey_images_and_y_channel(tmp_path):
    grey = (data.camera()[200:248, 200:248]).copy()
    report = evaluate([("camera", grey)], candidates=["bicubic"], metrics="psnr,ssim", y_channel=True)
    assert 15 < report.scores["bicubic"]["camera"]["psnr"] < 40


def test_candidate_pipeline_gets_the_inverse_scale():
    def text(candidate: str, factor: int) -> list[str]:
        return [str(call) for call in candidate_pipeline(candidate, factor)]

    assert text("bicubic", 4) == ["bicubic(scale=4.0)"]
    assert text("lanczos(scale=4)", 4) == ["lanczos(scale=4)"]
    assert text("degrade.blur(sigma=1) | lanczos", 2) == ["degrade.blur(sigma=1)", "lanczos(scale=2.0)"]
    assert text("realesr-animevideov3", 2) == ["realesr-animevideov3(scale=2.0)"]
    assert split_list("psnr, lpips(net=vgg, x=1),ssim") == ["psnr", "lpips(net=vgg, x=1)", "ssim"]


def test_realesrgan_candidate_on_a_32x32_input(tmp_path):
    hr = data.astronaut()[100:228, 180:308]  # 128x128 -> 32x32
    report = evaluate([("face", hr)], candidates=["bicubic", "realesr-animevideov3"], metrics="psnr,ssim",
                      crop_border=4, y_channel=True, degrade="degrade.downsample(scale=0.25)")
    assert report.images[0].lr_size == (32, 32)
    assert report.candidates["realesr-animevideov3"] == "realesr-animevideov3"  # scale=4 is its default
    assert 15 < report.scores["realesr-animevideov3"]["face"]["psnr"] < 40
    assert report.seconds["realesr-animevideov3"]["face"] > 0


# The degradation stages compute in fp32 only: under bf16 they stay in fp32 and the network candidate runs in bf16.
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_network_candidate_at_each_precision_forced(precision):
    """fp32 and bf16 explicitly, never the host's auto choice; tiny, as bf16 is emulated (slow) on many CPUs."""
    hr = data.astronaut()[100:164, 180:244]  # 64x64 -> 16x16 -> x4
    request = dict(candidates=["realesr-animevideov3"], metrics="psnr,ssim", crop_border=4,
                   degrade="degrade.downsample(scale=0.25)")
    report = evaluate([("face", hr)], options=PipelineOptions(precision=precision, tile=0), **request)
    assert report.precision_of("realesr-animevideov3") == f"realesr-animevideov3 [{precision}]"
    scores = report.scores["realesr-animevideov3"]["face"]
    assert 15 < scores["psnr"] < 40 and 0 < scores["ssim"] <= 1
    if precision != "fp32":
        reference = evaluate([("face", hr)], options=PipelineOptions(precision="fp32", tile=0),
                             **request).scores["realesr-animevideov3"]["face"]
        # bf16 moves the 8-bit output by a level here and there (0.004 at most on [0, 1], measured in
        # plugins/remaster-realesrgan/tests/test_precision_matrix.py): hundredths of a dB
        assert scores["psnr"] == pytest.approx(reference["psnr"], abs=0.5) and scores["psnr"] != reference["psnr"]
        assert scores["ssim"] == pytest.approx(reference["ssim"], abs=0.02)


def test_library_errors_come_before_any_work(hr_folder, tmp_path):
    files = sorted(hr_folder.iterdir())
    calls = []
    with pytest.raises(UnknownStageError):
        evaluate(files, candidates=["bicubic", "bicubix"], out_dir=tmp_path / "a", progress=calls.append)
    with pytest.raises(UnknownMetricError):
        evaluate(files, candidates=["bicubic"], metrics="psnr,psrn", out_dir=tmp_path / "b")
    with pytest.raises(UsageError, match="enlarges x2"):
        evaluate(files, candidates=["bicubic(scale=2)"], out_dir=tmp_path / "c")
    with pytest.raises(UsageError, match="shrink by 1/F"):
        evaluate(files, candidates=["bicubic"], degrade="degrade.downsample(scale=0.3)")
    with pytest.raises(UsageError, match="no option"):
        evaluate(files, candidates=["bicubic"], metrics="ssim(window=3)")
    with pytest.raises(UsageError, match="set for every metric"):
        evaluate(files, candidates=["bicubic"], metrics="psnr(crop_border=2)")
    assert not calls and not list(tmp_path.iterdir())


def test_metric_options_are_checked_by_their_declarations_before_work(hr_folder, tmp_path):
    files = sorted(hr_folder.iterdir())
    with pytest.raises(UsageError, match="net='squeeze' is not one of alex, vgg"):  # was only found while scoring
        evaluate(files, candidates=["bicubic"], metrics="psnr,lpips(net=squeeze)", out_dir=tmp_path / "a")
    with pytest.raises(UsageError, match="win_size=2.5 is not a valid int"):
        evaluate(files, candidates=["bicubic"], metrics="ssim(win_size=2.5)", out_dir=tmp_path / "b")
    assert not list(tmp_path.iterdir())
    choice, = parse_metrics("ms_ssim(weights=[0.5, 0.5], k1=0)")
    assert choice.options == {"weights": (0.5, 0.5), "k1": 0.0} and choice.accepts("y_channel")


def test_parse_metrics_imports_no_metric_module():
    from remaster.plugin import MetricSpec, Param, hookimpl
    from remaster.plugin.host import PluginHost

    class HeadsPlugin:
        @hookimpl
        def remaster_register_metrics(self, register):
            register(MetricSpec("heads", "no_such_module_anywhere:f", higher_is_better=True, needs_reference=True,
                                weights=("heads-base", "heads-a", "heads-b"),
                                options=(Param("head", str, "a", choices=("a", "b")), Param("gain", float, 1.0)),
                                weights_by_option={"head": {"a": ("heads-a",), "b": ("heads-b",)}}))

    host = PluginHost(load_entry_points=False, extra_plugins=[HeadsPlugin()]).ensure_loaded()
    choice, = parse_metrics("heads(head=b, gain=2)", host=host)  # its module does not exist
    assert choice.options == {"head": "b", "gain": 2.0} and not choice.accepts("y_channel")
    assert choice.spec.weights_for(choice.options) == ("heads-base", "heads-b")


def test_missing_perceptual_weights_fail_before_work(hr_folder, tmp_path):
    with pytest.raises(WeightsNotFoundError, match="remaster weights fetch torchvision-alexnet"):
        evaluate(sorted(hr_folder.iterdir()), candidates=["bicubic"], metrics="psnr,lpips", out_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_eval_writes_the_report_and_prints_the_means(hr_folder, tmp_path, capsys):
    out = tmp_path / "report"
    code = main(["eval", "--hr", str(hr_folder), "--candidates", "nearest,bicubic", "-o", str(out),
                 "--metrics", "psnr,ssim", "--crop-border", "4", "--y-channel"])
    assert code == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0].split() == ["candidate", "psnr", "ssim", "s/image"]
    assert "report written to" in captured.err
    assert (out / "report.md").is_file() and len(list((out / "sheets").glob("*.png"))) == 2


def test_cli_eval_json(hr_folder, tmp_path, capsys):
    code = main(["eval", "--hr", str(hr_folder / "astronaut.png"), "--candidates", "bicubic", "-o",
                 str(tmp_path / "r"), "--metrics", "psnr", "--json", "--no-sheets"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["mean"]["bicubic"]) == {"psnr", "seconds"}
    assert not (tmp_path / "r" / "sheets").exists()


@pytest.mark.parametrize("option, value, message", [
    ("--candidates", "nearest,bicubix", "no stage named 'bicubix'"),
    ("--metrics", "psnr,ssmi", "no metric named 'ssmi'"),
])
def test_cli_eval_unknown_names_exit_2_before_work(hr_folder, tmp_path, capsys, option, value, message):
    args = {"--candidates": "nearest", "--metrics": "psnr", option: value}
    out = tmp_path / "r"
    code = main(["eval", "--hr", str(hr_folder), "-o", str(out), "--candidates", args["--candidates"],
                 "--metrics", args["--metrics"]])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and err.startswith("remaster: error:")
    assert not out.exists()


def test_cli_eval_missing_weights_is_one_line_before_work(hr_folder, tmp_path, capsys):
    out = tmp_path / "r"
    code = main(["eval", "--hr", str(hr_folder), "-o", str(out), "--candidates", "bicubic",
                 "--metrics", "psnr,vgg"])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "remaster weights fetch torchvision-vgg19" in err
    assert not out.exists()


def test_cli_compare_identical_images(hr_folder, capsys):
    image = str(hr_folder / "astronaut.png")
    assert main(["compare", image, image]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["psnr", "inf"] and lines[2].split() == ["ssim", "1.0000"]
    assert main(["compare", image, image, "--json", "--crop-border", "4", "--y-channel"]) == 0
    scores = json.loads(capsys.readouterr().out)["scores"]
    assert scores == {"psnr": "inf", "ssim": 1.0}


def test_cli_compare_scores_and_errors(hr_folder, tmp_path, capsys):
    a = hr_folder / "astronaut.png"
    noisy = np.clip(np.asarray(PILImage.open(a)).astype(int) + 8, 0, 255).astype(np.uint8)
    PILImage.fromarray(noisy).save(tmp_path / "b.png")
    scores = compare_images(a, tmp_path / "b.png", metrics="psnr")
    assert scores["psnr"] == pytest.approx(psnr(np.asarray(PILImage.open(a)), noisy, data_range=255))
    assert main(["compare", str(a), str(hr_folder / "coffee.png")]) == 2  # different sizes
    err = capsys.readouterr().err
    assert "different sizes" in err and len(err.strip().splitlines()) == 1
    assert main(["compare", str(a), str(tmp_path / "missing.png")]) == 2


def test_the_report_says_what_precision_each_candidate_ran_in(hr_folder, tmp_path):
    """Issue 12, item 4: the eval report said "auto", not what ran."""
    report = evaluate(sorted(hr_folder.iterdir()), candidates=["bicubic"], metrics=["psnr"], out_dir=tmp_path,
                      options=PipelineOptions(precision="bf16", device="cpu"), sheets=False)
    assert report.precision_of("bicubic") == "bicubic [fp32]"  # a plain filter stays fp32 under bf16
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["candidates"][0]["precision"] == "bicubic [fp32]"
    assert set(doc["candidates"][0]["precision_per_image"]) == {"astronaut.png", "coffee.png"}
    assert "ran as `bicubic [fp32]`" in (tmp_path / "report.md").read_text()


# ----------------------------------------------------------------------------------------- torch-free defaults

#: What a fresh interpreter loads to read the defaults the way the CLI's parser does.
_READ_DEFAULTS = """
import json, sys
import remaster.evaluation.defaults
from remaster.evaluation import COMPARE_METRICS, DEFAULT_DEGRADE, DEFAULT_METRICS
print(json.dumps({"modules": sorted(m for m in sys.modules if m.startswith("remaster.evaluation")),
                  "heavy": sorted({"torch", "numpy"} & set(sys.modules))}))
"""


@pytest.fixture(scope="module")
def defaults_read() -> dict:
    """The modules a fresh interpreter holds after reading the evaluation defaults (one run for both tests)."""
    done = subprocess.run([sys.executable, "-c", _READ_DEFAULTS], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_defaults_module_itself_imports_nothing_heavy():
    """Loaded on its own (not through the remaster package), defaults.py pulls in neither torch nor numpy."""
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('defaults', {remaster.evaluation.defaults.__file__!r})\n"
            "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
            "print(sorted({'torch', 'numpy'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_reading_the_defaults_loads_no_other_evaluation_module(defaults_read):
    """The package re-exports lazily: the CLI's parser reading DEFAULT_* does not import the run or the report."""
    assert defaults_read["modules"] == ["remaster.evaluation", "remaster.evaluation.defaults"]


def test_reading_the_defaults_imports_no_torch(defaults_read):
    """`remaster --help` shows these defaults and must not pay for importing torch."""
    assert defaults_read["heavy"] == []


def test_metrics_take_their_weights_from_the_runs_manager(tmp_path):
    from remaster.evaluation.scoring import score_metric

    lpips_choice, psnr_choice = parse_metrics("lpips,psnr")
    a = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ManagerUsed, match="torchvision-alexnet"):
        score_metric(lpips_choice, a, a, crop_border=0, y_channel=False, weights_manager=RefusingManager(tmp_path))
    # A metric without a weights_manager parameter is called as before.
    assert score_metric(psnr_choice, a, a, crop_border=0, y_channel=False,
                  weights_manager=RefusingManager(tmp_path)) == math.inf
