"""remaster finetune on tiny random networks and 48-pixel photo crops: a few steps each, on the CPU."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from remaster import Remasterer
from remaster.cli import main
from remaster.errors import UsageError, WeightsNotFoundError
from remaster.training import CHECKPOINT_KEYS, FinetuneOptions, finetune
from remaster.training.data import SkippedFile, load_pairs
from remaster.training.finetune import _Run
from remaster.training.losses import UNetDiscriminatorSN, parse_losses
from remaster.training.models import apply_freeze, frozen_names, load_generator
from remaster.weights import load_state_dict
from weights_support import ManagerUsed, RefusingManager  # tests/weights_support.py


def options(model: Path, data: Path, out: Path, **changes) -> FinetuneOptions:
    base = FinetuneOptions(model=str(model), data=str(data), output=str(out), steps=4, batch=2, patch=16,
                           losses="l1=1,perceptual=0,gan=0", degradation="simple", val_every=2, val_size=32,
                           log_every=1, quiet=True, lr=1e-3)
    return dataclasses.replace(base, **changes)


def test_a_few_steps_on_one_batch_decrease_the_loss(compact_file, photos, tmp_path):
    run = _Run(options(compact_file, photos, tmp_path / "run", freeze="none"))
    batch = run.sampler.batch(2)
    run.sampler.batch = lambda size: batch  # the same patches every step: the loss must go down
    losses = [run.train_step()["l1"] for _ in range(12)]
    assert losses[-1] < 0.8 * losses[0], losses


def test_frozen_parameters_stay_bit_identical_and_the_others_change(rrdb_file, photos, tmp_path):
    result = finetune(options(rrdb_file, photos, tmp_path / "run", freeze="2", ema=0))
    before = load_state_dict(rrdb_file)
    after = load_state_dict(result.run_dir / "last.safetensors")
    frozen = [k for k in before if k.startswith(("model.0.", "model.1.sub.0.", "model.1.sub.1."))]
    trainable = [k for k in before if k not in frozen]
    assert frozen and trainable
    assert all(torch.equal(before[k], after[k]) for k in frozen)
    assert all(not torch.equal(before[k], after[k]) for k in trainable if k.endswith("weight"))
    assert result.frozen == sum(before[k].numel() for k in frozen)
    assert result.trainable == sum(before[k].numel() for k in trainable)


def test_frozen_layers_build_no_autograd_graph(compact_file, photos, tmp_path):
    run = _Run(options(compact_file, photos, tmp_path / "run", freeze="2"))
    run.train_step()
    frozen = [p for p in run.generator.model.parameters() if not p.requires_grad]
    assert frozen and all(p.grad is None for p in frozen)


def test_freeze_specs(compact_file, rrdb_file):
    compact = load_generator(str(compact_file))
    # body: conv, prelu, (conv, prelu) x 4, conv: 6 convolutions; auto freezes the first 3 with their PReLUs
    assert frozen_names(compact, "auto") == {f"body.{i}.{p}" for i in range(0, 6, 2) for p in ("weight", "bias")} | {
        f"body.{i}.weight" for i in range(1, 6, 2)}
    assert frozen_names(compact, "none") == set()
    assert frozen_names(compact, "body.0.*") == {"body.0.weight", "body.0.bias"}
    rrdb = load_generator(str(rrdb_file))
    assert {n.split(".RDB")[0] for n in frozen_names(rrdb, "auto")} == {"model.0.weight", "model.0.bias",
                                                                       "model.1.sub.0", "model.1.sub.1"}
    with pytest.raises(UsageError, match="only 3 RRDB blocks"):
        frozen_names(rrdb, "4")
    with pytest.raises(UsageError, match="matches no parameter"):
        frozen_names(rrdb, "conv_first.*")
    with pytest.raises(UsageError, match="nothing would be trained"):
        apply_freeze(compact, "*")


def test_checkpoint_loads_back_as_the_same_network_and_as_a_model_file(compact_file, photos, tmp_path):
    run = _Run(options(compact_file, photos, tmp_path / "run"))
    for _ in range(3):
        run.train_step()
    path = run.save_model("best.safetensors", {"val_psnr": 20.0})
    lr = torch.rand(1, 3, 12, 14)
    expected = run.result_model.eval()(lr)
    reloaded = load_generator(str(path)).model.eval()
    assert torch.equal(reloaded(lr), expected)
    with safe_open(str(path), framework="pt") as file:
        meta = file.metadata()
    assert set(CHECKPOINT_KEYS) - {"remaster.val_ssim"} <= set(meta)
    assert meta["remaster.step"] == "3" and meta["remaster.freeze"] == "auto"
    assert meta["remaster.base_model"] == str(compact_file)
    image = (np.random.default_rng(0).random((12, 14, 3)) * 255).astype(np.uint8)
    assert Remasterer([str(path)]).run(image).shape == (24, 28, 3)


@pytest.mark.slow
def test_resume_reaches_the_weights_of_an_uninterrupted_run(compact_file, photos, tmp_path):
    common = dict(losses="l1=1,perceptual=0,gan=0.1", degradation="realesrgan", patch=32, freeze="1", steps=4)
    straight = finetune(options(compact_file, photos, tmp_path / "straight", **common))
    finetune(options(compact_file, photos, tmp_path / "resumed", **{**common, "steps": 2}))
    resumed = finetune(options(compact_file, photos, tmp_path / "resumed", **common, resume=True))
    assert straight.step == resumed.step == 4
    a = load_state_dict(straight.run_dir / "state.safetensors")
    b = load_state_dict(resumed.run_dir / "state.safetensors")
    assert a.keys() == b.keys() and any(k.startswith("d.") for k in a)
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different
    log = [json.loads(line) for line in (resumed.run_dir / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if "val_psnr" in e] == [0, 2, 4]
    assert (resumed.run_dir / "curves.png").stat().st_size > 1000


def test_resume_refuses_changed_options_and_a_new_run_refuses_an_old_folder(compact_file, photos, tmp_path):
    finetune(options(compact_file, photos, tmp_path / "run", steps=2))
    with pytest.raises(UsageError, match="already holds a fine-tuning run"):
        finetune(options(compact_file, photos, tmp_path / "run", steps=2))
    with pytest.raises(UsageError, match="options differ"):
        finetune(options(compact_file, photos, tmp_path / "run", steps=4, lr=5e-4, resume=True))
    with pytest.raises(UsageError, match="no run to resume"):
        finetune(options(compact_file, photos, tmp_path / "other", resume=True))


def test_best_checkpoint_is_the_best_validation_psnr(compact_file, photos, tmp_path):
    result = finetune(options(compact_file, photos, tmp_path / "run", steps=6))
    log = [json.loads(line) for line in (result.run_dir / "log.jsonl").read_text().splitlines()]
    vals = {e["step"]: e["val_psnr"] for e in log if "val_psnr" in e}
    assert set(vals) == {0, 2, 4, 6}
    assert result.best_step == max(vals, key=vals.get)
    with safe_open(str(result.run_dir / "best.safetensors"), framework="pt") as file:
        assert file.metadata()["remaster.step"] == str(result.best_step)


def _bad(tmp_path: Path, kind: str) -> Path:
    folder = tmp_path / kind
    folder.mkdir()
    if kind == "text":
        (folder / "notes.txt").write_text("not an image")
    elif kind == "broken":
        (folder / "fake.png").write_bytes(b"this is not a PNG")
    elif kind == "small":
        Image.new("RGB", (10, 12)).save(folder / "tiny.png")
    return folder


@pytest.mark.parametrize("kind, error, fragment", [
    ("empty", UsageError, "no images in the training folder (it is empty)"),
    ("text", UsageError, "holds 1 other file(s), e.g. notes.txt"),
    ("broken", UsageError, "no image in the training folder could be read (fake.png: not an image"),
    ("small", UsageError, "smaller than 16x16 pixels: tiny.png (10x12)"),
])
def test_bad_data_folders_fail_before_training(kind, error, fragment, compact_file, tmp_path):
    with pytest.raises(error) as info:
        finetune(options(compact_file, _bad(tmp_path, kind), tmp_path / "run"))
    assert fragment in str(info.value)
    assert not (tmp_path / "run").exists()  # nothing started, nothing left behind


def test_unreadable_files_among_good_ones_are_skipped_and_reported(compact_file, photos, tmp_path, capsys):
    (photos / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n but the rest is garbage")
    (photos / "empty.jpg").write_bytes(b"")
    val = tmp_path / "val"
    val.mkdir()
    for path in sorted(photos.glob("[ac]*.png"))[:2]:  # astronaut, chelsea: two real images
        (val / path.name).write_bytes(path.read_bytes())
    (val / "broken.webp").write_bytes(b"RIFF....WEBPVP8 cut short")
    code = main(["finetune", "--model", str(compact_file), "--data", str(photos), "--val", str(val),
                 "-o", str(tmp_path / "run"), "--steps", "1", "--batch", "1", "--patch", "16",
                 "--losses", "l1=1,gan=0", "--degradation", "simple", "--val-size", "16", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["step"] == 1
    skipped = {Path(item["path"]).name: item["reason"] for item in summary["skipped"]}
    assert sorted(skipped) == ["broken.webp", "corrupt.png", "empty.jpg"]
    assert "empty" in skipped["empty.jpg"]
    # Without --json (or -q) each skipped file is one warning line before training starts.
    run = finetune(options(compact_file, photos, tmp_path / "run2", steps=1, quiet=False))
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("remaster: warning:")]
    assert sorted(lines) == sorted(f"remaster: warning: {item.path}: skipped: {item.reason}" for item in run.skipped)
    assert [item.path.name for item in run.skipped] == ["corrupt.png", "empty.jpg"]


def test_paired_data_leaves_out_the_hr_image_of_an_unreadable_lr_file(photos, tmp_path):
    lr_folder = tmp_path / "lr"
    lr_folder.mkdir()
    for path in photos.iterdir():
        image = Image.open(path)
        image.resize((image.width // 2, image.height // 2), Image.BICUBIC).save(lr_folder / path.name)
    (lr_folder / "coffee.png").write_bytes(b"not a PNG any more")
    skipped: list[SkippedFile] = []
    pairs = load_pairs(photos, lr_folder, scale=2, lr_min_size=8, skipped=skipped)
    assert sorted(hr.path.name for hr, _ in pairs) == ["astronaut.png", "chelsea.png"]
    assert [(item.path, item.reason.split(" (")[0]) for item in skipped] == [
        (lr_folder / "coffee.png", "not an image"),
        (photos / "coffee.png", "its LR image coffee.png could not be read")]


def test_missing_data_folder_is_a_usage_error(compact_file, tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        finetune(options(compact_file, tmp_path / "nowhere", tmp_path / "run"))


def test_perceptual_loss_without_vgg19_weights_says_what_to_do(compact_file, photos, tmp_path, monkeypatch):
    monkeypatch.setenv("REMASTER_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(WeightsNotFoundError) as info:
        finetune(options(compact_file, photos, tmp_path / "run", losses="l1=1,perceptual=1"))
    message = str(info.value)
    assert "torchvision-vgg19" in message and "remaster weights fetch torchvision-vgg19" in message
    assert "perceptual=0" in message


@pytest.mark.slow
def test_perceptual_loss_trains_with_imported_vgg19_weights(compact_file, photos, tmp_path, monkeypatch):
    """Random VGG19 features imported through the weights manager (pinned on first use)."""
    import torchvision

    from remaster.metrics import perceptual
    from remaster.weights import get_manager

    monkeypatch.setenv("REMASTER_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    features = torchvision.models.vgg19(weights=None).features.state_dict()
    source = tmp_path / "vgg19.pth"  # the cache keeps torchvision's file name, a (tensors-only) pickle
    torch.save({f"features.{k}": v for k, v in features.items()}, source)
    get_manager().import_file(source, name="torchvision-vgg19")
    perceptual.clear_cache()
    try:
        result = finetune(options(compact_file, photos, tmp_path / "run", losses="l1=1,perceptual=1", steps=2))
    finally:
        perceptual.clear_cache()
    steps = [json.loads(line) for line in (result.run_dir / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(e["perceptual"]) and e["perceptual"] > 0 for e in steps if "loss" in e)


def test_paired_mode_trains_on_given_low_resolution_images(compact_file, photos, tmp_path):
    lr_folder = tmp_path / "lr"
    lr_folder.mkdir()
    for path in photos.iterdir():
        image = Image.open(path)
        image.resize((image.width // 2, image.height // 2), Image.BICUBIC).save(lr_folder / path.name)
    result = finetune(options(compact_file, photos, tmp_path / "run", degradation=f"paired:{lr_folder}"))
    assert result.step == 4 and (result.run_dir / "best.safetensors").is_file()
    Image.new("RGB", (20, 20)).save(lr_folder / "coffee.png")  # big enough, but not half of 48
    with pytest.raises(UsageError, match="needs 24x24"):
        finetune(options(compact_file, photos, tmp_path / "run2", degradation=f"paired:{lr_folder}"))


def test_loss_spec_parsing():
    assert parse_losses("l1=1,perceptual=1,gan=0.1") == {"l1": 1.0, "perceptual": 1.0, "gan": 0.1}
    assert parse_losses("l1=1") == {"l1": 1.0, "perceptual": 0.0, "gan": 0.0}
    with pytest.raises(UsageError, match="unknown loss 'ssim'"):
        parse_losses("l1=1,ssim=1")
    with pytest.raises(UsageError, match="non-negative"):
        parse_losses("l1=-1")
    with pytest.raises(UsageError, match="l1 or perceptual"):
        parse_losses("gan=1")


def test_discriminator_gives_one_logit_per_pixel_and_is_spectrally_normalised():
    disc = UNetDiscriminatorSN(features=8)
    assert disc(torch.rand(2, 3, 32, 40)).shape == (2, 1, 32, 40)
    weight = disc.down[0].weight.detach().flatten(1)
    for _ in range(20):  # power iterations converge in training mode
        disc(torch.rand(1, 3, 16, 16))
    assert torch.linalg.matrix_norm(disc.down[0].weight.detach().flatten(1), ord=2) == pytest.approx(1.0, abs=0.05)
    assert weight.shape[0] == 16


def test_cli_finetune_then_upscale_with_the_result(compact_file, photos, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main(["finetune", "--model", str(compact_file), "--data", str(photos), "-o", str(run_dir),
                 "--steps", "2", "--batch", "2", "--patch", "16", "--losses", "l1=1,gan=0",
                 "--degradation", "simple", "--val-every", "1", "--val-size", "32", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["step"] == 2 and summary["initial"]["val_psnr"] > 0
    out = tmp_path / "up.png"
    assert main(["upscale", "--model", str(run_dir / "best.safetensors"), str(photos / "coffee.png"),
                 "-o", str(out), "-q"]) == 0
    assert Image.open(out).size == (96, 96)
    assert main(["finetune", "--model", str(compact_file), "--data", str(tmp_path / "nowhere"), "-o",
                 str(tmp_path / "r2"), "--losses", "l1=1"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_stage_name_is_fine_tuned_from_the_file_the_runs_manager_gives(tmp_path):
    with pytest.raises(ManagerUsed, match="animevideov3"):
        load_generator("realesr-animevideov3", weights_manager=RefusingManager(tmp_path))


def test_a_stage_that_is_no_network_cannot_be_fine_tuned(tmp_path):
    with pytest.raises(UsageError, match="not a network with weights"):
        load_generator("bicubic", weights_manager=RefusingManager(tmp_path))


def test_the_perceptual_loss_reads_vgg19_from_the_runs_manager(tmp_path):
    from remaster.training.losses import check_perceptual_weights, perceptual_loss

    x = torch.zeros(1, 3, 8, 8)
    with pytest.raises(ManagerUsed, match="torchvision-vgg19"):
        perceptual_loss(x, x, weights_manager=RefusingManager(tmp_path))
    with pytest.raises(ManagerUsed, match="torchvision-vgg19"):
        check_perceptual_weights(RefusingManager(tmp_path))
