"""Real-ESRGAN stages against their reference implementations (run with `make bench`).

The same runners as ``compare_realesrgan.py`` (which also measures memory and
PSNR and writes ``docs/benchmarks.md``): ours fp32 (channels_last), the official
``RealESRGANer`` fp32 untiled, and the ncnn runtime fp32 with 2 threads, on the
same real-photo crop; grouped per model and size so pytest-benchmark compares
them side by side. The peers are optional: their rows skip when they are not
installed (``requirements-peers.txt``). Sizes stay small: x4plus costs ~1.1 s
per 64x64 image on two cores, so its cases run 3 rounds after one warm-up.

On a machine shared with other jobs wall time jumps by several times from one
round to the next; CPU time does not: ``make bench PYTEST_ARGS=--benchmark-timer=time.process_time``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

_spec = importlib.util.spec_from_file_location("compare_realesrgan", Path(__file__).with_name("compare_realesrgan.py"))
assert _spec is not None and _spec.loader is not None
compare = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("compare_realesrgan", compare)
_spec.loader.exec_module(compare)

pytest.importorskip("skimage", reason="scikit-image provides the benchmark photo")
pytest.importorskip("remaster_realesrgan", reason="the remaster-realesrgan plugin is not installed")

CASES = [
    # stage, input size, rounds (None: let pytest-benchmark calibrate)
    ("realesr-animevideov3", 128, None),
    ("realesrgan-x4plus", 64, 3),
]
METHODS = ("ours-fp32-tile0", "realesrganer-fp32", "ncnn-fp32")


@pytest.fixture(scope="module")
def pth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The weights our stages load, saved as the official releases are (``{'params_ema': ...}``)."""
    from remaster.weights import get_manager, load_state_dict

    folder = tmp_path_factory.mktemp("realesrgan-pth")
    for stage in compare.MODELS:
        state = load_state_dict(get_manager().ensure(compare._weights_name(stage)))
        torch.save({"params_ema": state}, folder / f"{stage}.pth")
    return folder


def _runner(method: str, stage: str, pth_dir: Path) -> Callable[[Any], Any]:
    if method.startswith("realesrganer"):
        compare._alias_functional_tensor()  # basicsr 1.4.2 imports a module torchvision removed
        pytest.importorskip("realesrgan", reason="realesrgan (test-only peer) not importable: requirements-peers.txt")
    if method.startswith("ncnn"):
        pytest.importorskip("ncnn", reason="ncnn (test-only peer) not installed")
    return compare._build_runner({"method": method, "stage": stage, "pth": str(pth_dir / f"{stage}.pth")})


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("stage", "size", "rounds"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_upscale(benchmark, method: str, stage: str, size: int, rounds: int | None, pth_dir: Path) -> None:
    benchmark.group = f"{stage} {size}x{size} -> x4"
    run = _runner(method, stage, pth_dir)
    image = compare._image(size, size)
    if rounds is None:
        run(image)  # warm-up: oneDNN/ncnn pick their kernels on the first call
        out = benchmark(run, image)
    else:
        out = benchmark.pedantic(run, args=(image,), rounds=rounds, warmup_rounds=1, iterations=1)
    assert out.shape == (4 * size, 4 * size, 3)


@pytest.mark.parametrize("stage", ["realesrgan-x4plus", "realesr-animevideov3"])
def test_model_load_from_cache(benchmark, stage: str) -> None:
    """ensure (sha256) + load_state_dict + spandrel build, as the stage's prepare does; spandrel already imported."""
    import spandrel  # noqa: F401  # its first import (~2 s: torchvision, torch._dynamo) is not what this measures

    from remaster import Remasterer

    benchmark.group = "model load from the cache"

    def load() -> Any:
        remasterer = Remasterer([stage], device="cpu", precision="fp32", tile=0)
        return remasterer.stages[0].instance(torch.device("cpu"), torch.float32)

    load()  # produce the converted weights on a cold cache, outside the timings
    benchmark.pedantic(load, rounds=5, warmup_rounds=1, iterations=1)
