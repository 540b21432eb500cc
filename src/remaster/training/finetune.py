"""``remaster finetune``: adapt a pretrained Real-ESRGAN-family network to the user's images.

One run lives in one folder (RUN_DIR):

- ``best.safetensors`` / ``last.safetensors``: the (EMA) generator with the best validation PSNR / the
  latest one; plain state dicts that ``remaster upscale --model`` and ``Remasterer([...])`` load like
  any model file; their safetensors metadata names the base model, freeze spec, step and config hash;
- ``state.safetensors``: everything ``--resume`` needs (weights, optimiser moments, every RNG state);
- ``config.json``: the options; ``log.jsonl``: one JSON object per logged step or validation;
  ``curves.png``: the loss and validation-PSNR curves.

Checkpoints are written atomically, so an interrupted run leaves the previous checkpoint intact.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from remaster.errors import UsageError
from remaster.training.data import PatchSampler, SkippedFile, TrainingImage, load_folder, load_pairs
from remaster.training.losses import (
    DEFAULT_LOSSES,
    UNetDiscriminatorSN,
    check_perceptual_weights,
    gan_loss,
    parse_losses,
    perceptual_loss,
)
from remaster.training.models import apply_freeze, load_generator

if TYPE_CHECKING:
    from remaster.plugin.host import PluginHost

__all__ = ["FinetuneOptions", "FinetuneResult", "finetune", "CHECKPOINT_KEYS"]

#: Metadata keys of the model checkpoints (``best``/``last.safetensors``).
CHECKPOINT_KEYS = ("remaster.base_model", "remaster.architecture", "remaster.scale", "remaster.freeze",
                   "remaster.step", "remaster.config_hash", "remaster.val_psnr", "remaster.val_ssim")
_STATE = "state.safetensors"
# Options that do not change what a step computes; they may differ between a run and its resumption.
_NOT_HASHED = ("steps", "resume", "output", "val_every", "log_every", "quiet")


@dataclass
class FinetuneOptions:
    """Everything a fine-tuning run depends on (the CLI options of ``remaster finetune``).

    Attributes:
        model: Stage name (``realesr-animevideov3``) or weights file to start from.
        data: Folder of high-resolution training images.
        output: RUN_DIR.
        val: Folder of validation images (HR); default: centre crops of the training images.
        freeze: Which parameters stay fixed (see :mod:`remaster.training.models`).
        steps: Total number of optimisation steps (a resumed run continues to this number).
        batch: Patches per step.
        patch: HR patch size in pixels (a multiple of 8 × the model's scale when the GAN loss is on).
        lr: Adam learning rate of the generator (and discriminator).
        losses: ``"l1=1,perceptual=1,gan=0.1"``.
        degradation: ``realesrgan``, ``simple`` (bicubic) or ``paired:LR_DIR``.
        ema: Decay of the generator's exponential moving average; 0 turns it off.
        resume: Continue the run in ``output``.
        device / precision: As everywhere (``auto``).
        config: JSON/TOML file with a ``degradation`` table overriding Real-ESRGAN's settings.
        seed: Seed of every random choice.
        val_every: Steps between validations (and checkpoints).
        val_size: Validation images are centre-cropped to at most this many HR pixels per side.
        log_every: Steps between log lines.
    """

    model: str
    data: str
    output: str
    val: str | None = None
    freeze: str = "auto"
    steps: int = 1000
    batch: int = 4
    patch: int = 128
    lr: float = 1e-4
    losses: str = DEFAULT_LOSSES
    degradation: str = "realesrgan"
    ema: float = 0.999
    resume: bool = False
    device: str = "auto"
    precision: str = "auto"
    config: str | None = None
    seed: int = 0
    val_every: int = 100
    val_size: int = 256
    log_every: int = 10
    quiet: bool = False

    def config_hash(self) -> str:
        values = {k: v for k, v in dataclasses.asdict(self).items() if k not in _NOT_HASHED}
        if self.config:
            try:
                values["config_text"] = Path(self.config).read_text(encoding="utf-8")
            except OSError:
                pass  # reported with its reason when the settings are loaded
        text = json.dumps(values, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class FinetuneResult:
    """What a run did: its folder, steps, validation before/after, speed."""

    run_dir: Path
    step: int
    best_step: int | None
    best_psnr: float | None
    initial: dict[str, float] | None
    final: dict[str, float] | None
    trainable: int
    frozen: int
    seconds: float
    steps_per_second: float
    history: list[dict[str, Any]] = field(default_factory=list)
    #: Training and validation files left out because they could not be read as images.
    skipped: list[SkippedFile] = field(default_factory=list)


# --------------------------------------------------------------------------- helpers


def _check_options(o: FinetuneOptions) -> None:
    for name in ("steps", "batch", "patch", "val_every", "val_size", "log_every"):
        if getattr(o, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(o, name)}")
    if not o.lr > 0:
        raise UsageError(f"--lr must be positive, not {o.lr}")
    if not 0.0 <= o.ema < 1.0:
        raise UsageError(f"--ema must be in [0, 1), not {o.ema}", hint="0 turns the EMA off; 0.999 is usual")


def _degradation_kind(text: str) -> tuple[str, Path | None]:
    if text in ("realesrgan", "simple"):
        return text, None
    if text.startswith("paired:") and text[len("paired:"):]:
        return "paired", Path(text[len("paired:"):]).expanduser()
    raise UsageError(f"unknown --degradation {text!r}", hint="use realesrgan, simple or paired:LR_DIR")


def _centre(pixels: torch.Tensor, size: int, multiple: int) -> torch.Tensor:
    h, w = pixels.shape[-2:]
    th, tw = min(h, size), min(w, size)
    th, tw = th - th % multiple, tw - tw % multiple
    top, left = (h - th) // 2, (w - tw) // 2
    return pixels[..., top:top + th, left:left + tw]


def _flatten_optimizer(prefix: str, optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]
                       ) -> dict[str, Any]:
    """Optimiser tensors into ``tensors``; the rest (hyper-parameters, scalars) as JSON."""
    state = optimizer.state_dict()
    scalars: dict[str, Any] = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    return {"param_groups": state["param_groups"], "scalars": scalars}


def _restore_optimizer(prefix: str, optimizer: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor],
                       meta: Mapping[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "."):
            index, name = key[len(prefix) + 1:].split(".", 1)
            state.setdefault(int(index), {})[name] = value
    for key, value in meta["scalars"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


class _Run:
    """One fine-tuning run: set-up, the training step, validation, checkpoints."""

    def __init__(self, options: FinetuneOptions, host: PluginHost | None = None):
        from remaster.pipeline.devices import resolve_device, resolve_precision
        from remaster.plugin.host import get_host
        from remaster.weights import get_manager

        self.o = options
        self.host = host = host.ensure_loaded() if host is not None else get_host()
        self.manager = get_manager(host)  # every weights file of the run (base model, VGG19) comes from here
        self.dir = Path(options.output)
        self.weights = parse_losses(options.losses)
        self.kind, self.lr_dir = _degradation_kind(options.degradation)
        self.device = resolve_device(options.device, torch_only="fine-tuning")
        self.dtype = resolve_precision(options.precision, self.device,
                                       (torch.float32, torch.bfloat16, torch.float16))
        self.hash = options.config_hash()
        self._check_run_dir()
        if self.weights["perceptual"] > 0:
            check_perceptual_weights(self.manager)  # before anything slow: the one missing-file error, with what to do

        self.generator = load_generator(options.model, host=host, weights_manager=self.manager)
        scale = self.generator.scale
        multiple = scale * (8 if self.weights["gan"] > 0 else 1)
        if options.patch % multiple:
            raise UsageError(f"--patch {options.patch} must be a multiple of {multiple}"
                             + (" (the model's scale x 8, for the discriminator)" if multiple > scale else
                                " (the model's scale)"))
        self.trainable, self.frozen = apply_freeze(self.generator, options.freeze)
        self.settings = None
        from remaster.stages.highorder import load_settings

        if self.kind == "realesrgan":
            self.settings = load_settings(options.config)
        elif options.config:
            load_settings(options.config)  # still checked, so a typo is not silently ignored

        # Data, all checked before the first step.
        self.skipped: list[SkippedFile] = []
        if self.kind == "paired":
            assert self.lr_dir is not None
            items: Any = load_pairs(options.data, self.lr_dir, scale=scale, lr_min_size=options.patch // scale,
                                    skipped=self.skipped)
            self.train_images = [hr for hr, _ in items]
        else:
            items = load_folder(options.data, min_size=options.patch, skipped=self.skipped)
            self.train_images = items
        self.data_rng = np.random.default_rng(options.seed)
        self.sampler = PatchSampler(items, patch=options.patch, scale=scale, rng=self.data_rng)
        self.degrade = self._make_degradation(seed=options.seed + 1)
        self.val_pairs = self._validation_pairs(items)

        torch.manual_seed(options.seed)
        g = self.generator.model.to(self.device)
        self.ema = copy.deepcopy(g).eval().requires_grad_(False) if options.ema > 0 else None
        self.opt_g = torch.optim.Adam([p for p in g.parameters() if p.requires_grad], lr=options.lr,
                                      betas=(0.9, 0.99))
        self.disc = self.opt_d = None
        if self.weights["gan"] > 0:
            self.disc = UNetDiscriminatorSN().to(self.device).train()
            self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=options.lr, betas=(0.9, 0.99))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dtype is torch.float16)
        self.step = 0
        self.best_psnr: float | None = None
        self.best_step: int | None = None
        self.initial: dict[str, float] | None = None
        self.last_val: dict[str, float] | None = None
        self._create_run_dir()  # only now: a run that cannot start leaves no folder behind

    # ------------------------------------------------------------------ set-up

    def _check_run_dir(self) -> None:
        state = self.dir / _STATE
        if self.o.resume:
            if not state.is_file():
                raise UsageError("there is no run to resume here (no state.safetensors)", path=self.dir,
                                 hint="start it without {opt:resume}")
        elif state.exists():
            raise UsageError("the folder already holds a fine-tuning run", path=self.dir,
                             hint="pass {opt:resume} to continue it, or choose another output folder")

    def _create_run_dir(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            from remaster.errors import OutputError

            raise OutputError(f"cannot create the run folder: {exc.strerror}", path=self.dir) from None

    def _make_degradation(self, seed: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
        scale = self.generator.scale
        if self.kind == "realesrgan":
            from remaster.stages.highorder import RealESRGANDegradation

            return RealESRGANDegradation(self.settings, scale=scale, seed=seed, device=self.device)
        if self.kind == "simple":
            from remaster.stages.interpolate import resize

            def bicubic(hr: torch.Tensor) -> torch.Tensor:
                size = (hr.shape[-2] // scale, hr.shape[-1] // scale)
                return (resize(hr, size, "bicubic").clamp(0, 1) * 255).round() / 255

            return bicubic
        return None  # paired: the LR images are given

    def _validation_pairs(self, train_items: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Fixed (lr, hr) pairs, degraded once with their own seed so every validation sees the same inputs."""
        scale = self.generator.scale
        if self.o.val is not None:
            if self.kind == "paired":
                raise UsageError("--val is not used with paired data", hint="validation uses centre crops of the pairs")
            sources: list[Any] = load_folder(self.o.val, min_size=8 * scale, what="validation", skipped=self.skipped)
        else:
            sources = list(train_items)
            if not self.o.quiet:
                print("remaster: no --val folder: validating on centre crops of the training images "
                      "(optimistic; give held-out images with --val)", file=sys.stderr)
        degrade = self._make_degradation(seed=self.o.seed + 2)
        pairs = []
        for item in sources:
            if isinstance(item, tuple):  # paired: crop both alike
                hr = _centre(item[0].pixels, self.o.val_size, scale)
                h, w = item[0].size
                top, left = (h - hr.shape[-2]) // 2 // scale, (w - hr.shape[-1]) // 2 // scale
                hr = item[0].pixels[:, top * scale:top * scale + hr.shape[-2], left * scale:left * scale + hr.shape[-1]]
                lr = item[1].pixels[:, top:top + hr.shape[-2] // scale, left:left + hr.shape[-1] // scale]
                pairs.append((lr[None], hr[None]))
            else:
                image: TrainingImage = item
                hr = _centre(image.pixels, self.o.val_size, scale)[None]
                assert degrade is not None
                pairs.append((degrade(hr.to(self.device)).cpu(), hr))
        return pairs

    # ------------------------------------------------------------------ training

    def train_step(self) -> dict[str, float]:
        from remaster.pipeline.devices import autocast_context

        hr, lr = self.sampler.batch(self.o.batch)
        hr = hr.to(self.device)
        if lr is None:
            with torch.no_grad():
                lr = self.degrade(hr)  # type: ignore[misc]  # no LR images: not paired, so degrade is set
        lr = lr.to(self.device)
        g, w = self.generator.model, self.weights
        logs: dict[str, float] = {}

        if self.disc is not None:
            self.disc.requires_grad_(False)
        with autocast_context(self.device, self.dtype):
            sr = g(lr)
        sr = sr.float()
        total = torch.zeros((), device=self.device)
        if w["l1"]:
            l1 = F.l1_loss(sr, hr)
            total = total + w["l1"] * l1
            logs["l1"] = float(l1.detach())
        if w["perceptual"]:
            perceptual = perceptual_loss(sr, hr, weights_manager=self.manager)
            total = total + w["perceptual"] * perceptual
            logs["perceptual"] = float(perceptual.detach())
        if self.disc is not None:
            with autocast_context(self.device, self.dtype):
                fake_logits = self.disc(sr)
            adversarial = gan_loss(fake_logits, True)
            total = total + w["gan"] * adversarial
            logs["gan"] = float(adversarial.detach())
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.opt_g)
        logs["loss"] = float(total.detach())

        if self.disc is not None and self.opt_d is not None:
            self.disc.requires_grad_(True)
            with autocast_context(self.device, self.dtype):
                real_logits = self.disc(hr)
                fake_logits = self.disc(sr.detach())
            d_loss = gan_loss(real_logits, True) + gan_loss(fake_logits, False)
            self.opt_d.zero_grad(set_to_none=True)
            self.scaler.scale(d_loss).backward()
            self.scaler.step(self.opt_d)
            logs["d_loss"] = float(d_loss.detach())
        self.scaler.update()
        self.step += 1
        self._update_ema()
        return logs

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.ema is None:
            return
        # Warm-up (as TensorFlow's ExponentialMovingAverage with num_updates): a short fine-tune is not
        # dominated by the starting weights.
        decay = min(self.o.ema, (1 + self.step) / (10 + self.step))
        for e, p in zip(self.ema.parameters(), self.generator.model.parameters()):
            if p.requires_grad:
                e.lerp_(p.detach(), 1.0 - decay)

    @property
    def result_model(self) -> torch.nn.Module:
        """The network that is saved and validated: the EMA one when there is one."""
        return self.ema if self.ema is not None else self.generator.model

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        from remaster.metrics import psnr, ssim
        from remaster.pipeline.devices import autocast_context

        model = self.result_model
        was_training = model.training
        model.eval()
        scale = self.generator.scale
        psnrs, ssims = [], []
        for lr, hr in self.val_pairs:
            with autocast_context(self.device, self.dtype):
                sr = model(lr.to(self.device)).float()
            sr = (sr.clamp(0, 1) * 255).round() / 255  # scored as the saved 8-bit image would be
            hr = hr.to(self.device)
            psnrs.append(float(psnr(sr, hr, data_range=1.0, crop_border=scale, reduction="mean")))
            ssims.append(float(ssim(sr, hr, data_range=1.0, crop_border=scale, reduction="mean")))
        model.train(was_training)
        return {"val_psnr": float(np.mean(psnrs)), "val_ssim": float(np.mean(ssims))}

    # ------------------------------------------------------------------ checkpoints

    def _metadata(self, extra: Mapping[str, Any]) -> dict[str, str]:
        return {"remaster.base_model": self.generator.base, "remaster.architecture": self.generator.architecture,
                "remaster.scale": str(self.generator.scale), "remaster.freeze": self.o.freeze,
                "remaster.step": str(self.step), "remaster.config_hash": self.hash,
                **{f"remaster.{k}": f"{v:.4f}" for k, v in extra.items()}}

    def save_model(self, name: str, scores: Mapping[str, float]) -> Path:
        from remaster.weights import save_state_dict

        return save_state_dict(self.result_model.state_dict(), self.dir / name, metadata=self._metadata(scores))

    def save_state(self) -> None:
        from remaster.weights import save_state_dict

        tensors: dict[str, torch.Tensor] = {}
        tensors.update({f"g.{k}": v for k, v in self.generator.model.state_dict().items()})
        if self.ema is not None:
            tensors.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()})
        meta: dict[str, Any] = {"step": self.step, "config_hash": self.hash, "best_psnr": self.best_psnr,
                                "best_step": self.best_step, "initial": self.initial, "last_val": self.last_val,
                                "data_rng": self.data_rng.bit_generator.state,
                                "opt_g": _flatten_optimizer("opt_g", self.opt_g, tensors),
                                "scaler": self.scaler.state_dict()}
        tensors["rng.torch"] = torch.get_rng_state()
        if hasattr(self.degrade, "state_dict"):
            degrade_state = self.degrade.state_dict()  # type: ignore[union-attr]  # hasattr, just above
            meta["degrade_rng"] = degrade_state["numpy"]
            tensors["rng.degrade"] = degrade_state["torch"]
        if self.disc is not None and self.opt_d is not None:
            tensors.update({f"d.{k}": v for k, v in self.disc.state_dict().items()})
            meta["opt_d"] = _flatten_optimizer("opt_d", self.opt_d, tensors)
        save_state_dict(tensors, self.dir / _STATE, metadata={"remaster.training": json.dumps(meta)})

    def load_state(self) -> None:
        from safetensors import safe_open

        from remaster.weights import load_state_dict

        path = self.dir / _STATE
        tensors = load_state_dict(path)
        with safe_open(str(path), framework="pt") as file:
            meta = json.loads((file.metadata() or {})["remaster.training"])
        if meta["config_hash"] != self.hash:
            saved = self.dir / "config.json"
            raise UsageError("the options differ from the run being resumed (only --steps, --val-every and "
                             "--log-every may change)", path=saved if saved.is_file() else self.dir,
                             hint="resume with the options in config.json, or start a new run in another folder")

        def part(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

        self.generator.model.load_state_dict(part("g."))
        if self.ema is not None:
            self.ema.load_state_dict(part("ema."))
        _restore_optimizer("opt_g", self.opt_g, tensors, meta["opt_g"])
        if self.disc is not None and self.opt_d is not None:
            self.disc.load_state_dict(part("d."))
            _restore_optimizer("opt_d", self.opt_d, tensors, meta["opt_d"])
        self.scaler.load_state_dict(meta["scaler"])
        self.data_rng.bit_generator.state = meta["data_rng"]
        if "degrade_rng" in meta and hasattr(self.degrade, "load_state_dict"):
            self.degrade.load_state_dict(  # type: ignore[union-attr]  # hasattr, just above
                {"numpy": meta["degrade_rng"], "torch": tensors["rng.degrade"]})
        torch.set_rng_state(tensors["rng.torch"])
        self.step, self.best_psnr, self.best_step = meta["step"], meta["best_psnr"], meta["best_step"]
        self.initial, self.last_val = meta["initial"], meta["last_val"]


# --------------------------------------------------------------------------- the loop


class _Log:
    """log.jsonl (appended; entries past the resumed step are dropped) and curves.png."""

    def __init__(self, path: Path, resume_step: int | None):
        self.path = path
        self.entries: list[dict[str, Any]] = []
        if resume_step is not None and path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    entry = json.loads(line)
                    if entry.get("step", 0) <= resume_step:
                        self.entries.append(entry)
        self._rewrite()

    def _rewrite(self) -> None:
        from remaster.io import write_atomic

        write_atomic(self.path, "".join(json.dumps(e) + "\n" for e in self.entries).encode())

    def add(self, entry: dict[str, Any]) -> None:
        self.entries.append(entry)
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(json.dumps(entry) + "\n")

    def plot(self, path: Path) -> None:
        from remaster.training.plot import plot_curves

        losses: dict[str, list[tuple[float, float]]] = {}
        for entry in self.entries:
            for key in ("loss", "l1", "perceptual", "gan"):
                if key in entry:
                    losses.setdefault(key, []).append((entry["step"], entry[key]))
        val = [(e["step"], e["val_psnr"]) for e in self.entries if "val_psnr" in e]
        plot_curves(path, losses, {"val PSNR (dB)": val})


def _checkpoint(run: _Run, log: _Log) -> None:
    run.save_model("last.safetensors", run.last_val or {})
    run.save_state()
    log.plot(run.dir / "curves.png")


class _Flag:
    def __init__(self) -> None:
        self.value = False

    def __bool__(self) -> bool:
        return self.value


@contextlib.contextmanager
def _deferred_interrupt() -> Iterator[_Flag]:
    """Ctrl-C ends the current step cleanly (so the saved state is exact) instead of stopping mid-update."""
    flag = _Flag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: Any) -> None:
        if flag.value:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        flag.value = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def finetune(options: FinetuneOptions, *, host: PluginHost | None = None) -> FinetuneResult:
    """Run (or resume) a fine-tuning as :class:`FinetuneOptions` describes; see the module docstring.

    ``host`` is the plugin host the base model's stage name is looked up in, and whose weights
    cache gives its file and VGG19's (default: the process-wide host).

    Raises:
        UsageError: bad options, data folders (one where no image can be read, say), or a run folder in the
            wrong state; before training starts. Files that cannot be read among readable ones are left
            out, reported on stderr (unless ``quiet``) and listed in :attr:`FinetuneResult.skipped`.
        WeightsNotFoundError: the base model or the VGG19 weights (perceptual loss) are missing.
    """
    from tqdm import tqdm

    from remaster.io import write_atomic
    from remaster.pipeline.devices import describe_device

    _check_options(options)
    run = _Run(options, host)
    if options.resume:
        run.load_state()
    else:
        write_atomic(run.dir / "config.json", (json.dumps({**dataclasses.asdict(options), "config_hash": run.hash,
                                                           "architecture": run.generator.architecture,
                                                           "scale": run.generator.scale}, indent=2) + "\n").encode())
    log = _Log(run.dir / "log.jsonl", run.step if options.resume else None)
    if not options.quiet:
        for item in run.skipped:
            print(f"remaster: warning: {item.path}: skipped: {item.reason}", file=sys.stderr)
        print(f"remaster: fine-tuning {run.generator.base} ({run.generator.architecture} x{run.generator.scale}) on "
              f"{describe_device(run.device)}, {str(run.dtype).removeprefix('torch.')}: "
              f"{run.trainable:,} trainable / {run.frozen:,} frozen parameters; "
              f"{len(run.train_images)} training image(s), {len(run.val_pairs)} validation image(s)",
              file=sys.stderr)
    if run.initial is None:
        run.initial = run.validate()
        run.last_val = run.initial
        log.add({"step": 0, **run.initial})
        run.best_psnr, run.best_step = run.initial["val_psnr"], 0
        run.save_model("best.safetensors", run.initial)

    bar = tqdm(total=options.steps, initial=min(run.step, options.steps), unit="step", file=sys.stderr,
               disable=options.quiet or None, dynamic_ncols=True)
    started, first_step = time.perf_counter(), run.step
    with _deferred_interrupt() as interrupted:
        try:
            while run.step < options.steps and not interrupted:
                logs = run.train_step()
                if run.step % options.log_every == 0 or run.step == options.steps:
                    log.add({"step": run.step, "time": round(time.perf_counter() - started, 3),
                             **{k: round(v, 6) for k, v in logs.items()}})
                if run.step % options.val_every == 0 or run.step == options.steps:
                    run.last_val = run.validate()
                    log.add({"step": run.step, **run.last_val})
                    if run.best_psnr is None or run.last_val["val_psnr"] > run.best_psnr:
                        run.best_psnr, run.best_step = run.last_val["val_psnr"], run.step
                        run.save_model("best.safetensors", run.last_val)
                    _checkpoint(run, log)
                psnr = run.last_val["val_psnr"] if run.last_val else float("nan")
                bar.set_postfix_str(f"loss {logs['loss']:.4f}, val PSNR {psnr:.2f} dB", refresh=False)
                bar.update(1)
        finally:
            bar.close()
        seconds = time.perf_counter() - started
        if interrupted or run.step == first_step:  # keep what was done (or leave the files of a finished run)
            _checkpoint(run, log)
        if interrupted:
            print(f"remaster: interrupted; checkpoint saved at step {run.step}, continue with --resume",
                  file=sys.stderr)
            raise KeyboardInterrupt
    done = run.step - first_step
    return FinetuneResult(run.dir, run.step, run.best_step, run.best_psnr, run.initial, run.last_val, run.trainable,
                          run.frozen, seconds, done / seconds if seconds > 0 and done else 0.0, log.entries,
                          skipped=list(run.skipped))
