"""``finetune``: transfer learning on a folder of the user's images (docs/finetuning.md)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from remaster.cli.console import warn_plugin_errors

if TYPE_CHECKING:
    from remaster.plugin.host import PluginHost


def finetune_arguments(tune: argparse.ArgumentParser) -> None:
    """The ``finetune`` command's arguments: transfer learning on a folder of the user's images (docs/finetuning.md)."""
    tune.add_argument("--model", required=True, metavar="NAME|PATH",
                      help="stage name (e.g. realesr-animevideov3, realesrgan-x4plus) or model file to start from")
    tune.add_argument("--data", required=True, metavar="HR_DIR", help="folder of high-resolution training images")
    tune.add_argument("--val", metavar="DIR", help="folder of held-out HR images for validation "
                                                   "(default: centre crops of the training images)")
    tune.add_argument("-o", "--output", required=True, metavar="RUN_DIR", help="folder for checkpoints and logs")
    tune.add_argument("--freeze", default="auto", metavar="SPEC",
                      help="layers kept fixed: auto, none, N (first N blocks/convolutions) or name patterns")
    tune.add_argument("--steps", type=int, default=1000, help="total optimisation steps (default 1000)")
    tune.add_argument("--batch", type=int, default=4, help="patches per step (default 4)")
    tune.add_argument("--patch", type=int, default=128, help="HR patch size in pixels (default 128)")
    tune.add_argument("--lr", type=float, default=1e-4, help="learning rate (default 1e-4)")
    tune.add_argument("--losses", default="l1=1,perceptual=1,gan=0.1", metavar="SPEC",
                      help="loss weights; perceptual needs the torchvision-vgg19 weights, gan=0 turns the GAN off "
                           "(default: \"l1=1,perceptual=1,gan=0.1\")")
    tune.add_argument("--degradation", default="realesrgan", metavar="KIND",
                      help="how LR inputs are made: realesrgan (default), simple (bicubic) or paired:LR_DIR")
    tune.add_argument("--ema", type=float, default=0.999, help="EMA decay of the saved generator; 0: off")
    tune.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR exactly where it stopped")
    tune.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    tune.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                      help="training precision (auto: fp16 on CUDA, bf16 on AMX CPUs, else fp32)")
    tune.add_argument("--config", metavar="FILE", help="JSON/TOML file whose 'degradation' table overrides "
                                                       "Real-ESRGAN's probabilities and ranges")
    tune.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    tune.add_argument("--val-every", type=int, default=100, metavar="K",
                      help="validate and save a checkpoint every K steps (default 100)")
    tune.add_argument("--val-size", type=int, default=256, metavar="PX",
                      help="validation images are centre-cropped to at most PX pixels (default 256)")
    tune.add_argument("--log-every", type=int, default=10, metavar="K",
                      help="write the losses to RUN_DIR/log.jsonl every K steps (default 10)")


def finetune(args: argparse.Namespace, host: PluginHost) -> int:
    """``remaster finetune``: the training run, with this host's stages and weights."""
    from remaster.training import FinetuneOptions
    from remaster.training import finetune as run_finetune

    warn_plugin_errors(args, host)
    options = FinetuneOptions(
        model=args.model, data=args.data, val=args.val, output=args.output, freeze=args.freeze, steps=args.steps,
        batch=args.batch, patch=args.patch, lr=args.lr, losses=args.losses, degradation=args.degradation,
        ema=args.ema, resume=args.resume, device=args.device, precision=args.precision, config=args.config,
        seed=args.seed, val_every=args.val_every, val_size=args.val_size, log_every=args.log_every,
        quiet=args.quiet or args.json)
    result = run_finetune(options, host=host)
    summary = {"run_dir": str(result.run_dir), "step": result.step, "best_step": result.best_step,
               "best_val_psnr": result.best_psnr, "initial": result.initial, "final": result.final,
               "trainable_parameters": result.trainable, "frozen_parameters": result.frozen,
               "seconds": round(result.seconds, 1), "steps_per_second": round(result.steps_per_second, 3),
               "skipped": [{"path": str(item.path), "reason": item.reason} for item in result.skipped]}
    if args.json:
        print(json.dumps(summary, indent=2))
    elif not args.quiet:
        before, after = result.initial or {}, result.final or {}
        print(f"validation PSNR {before.get('val_psnr', float('nan')):.2f} -> {after.get('val_psnr', float('nan')):.2f}"
              f" dB, SSIM {before.get('val_ssim', float('nan')):.4f} -> {after.get('val_ssim', float('nan')):.4f}; "
              f"best at step {result.best_step}: {result.run_dir / 'best.safetensors'} "
              f"({result.steps_per_second:.2f} steps/s)"
              + (f"; {len(result.skipped)} unreadable file(s) left out" if result.skipped else ""), file=sys.stderr)
    return 0
