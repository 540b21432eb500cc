"""Compare our Real-ESRGAN stages with the reference implementations, in one run.

    REMASTER_CACHE=... .venv/bin/python benchmarks/compare_realesrgan.py [--repeats 3] [--budget 570] [--x4plus-256]

On the same machine and the same real-photo crops (``skimage.data.astronaut``)
it measures, for ``realesrgan-x4plus`` and ``realesr-animevideov3``:

* ours, fp32 (channels_last), ``tile=0`` and ``tile="auto"``;
* ours, bf16 -- only where ``remaster.pipeline.devices.cpu_supports_fast_bf16()`` (AMX or
  AVX512-BF16); elsewhere PyTorch emulates bf16 and it is many times slower;
* the official ``realesrgan.RealESRGANer``, fp32, ``tile=0``, ``pre_pad=0`` (as
  ``inference_realesrgan.py --fp32`` runs on a CPU), with the same weights;
* the ncnn runtime, fp32, the packaged ``.param``/``.bin``, 2 threads;

wall and CPU time (median of ``--repeats`` or more after one warm-up run, all in
one process), peak memory, and the PSNR of each output against ours fp32
untiled. Every measurement runs in a fresh subprocess, which also times a fixed
multi-threaded workload before and after, so that rows measured while another
job held a core (a shared machine) show up as such. It also breaks down the time to load
x4plus from the cache and checks that peak memory of a large tiled run is a
small multiple of the output buffer.

Writes the Markdown report to ``docs/benchmarks.md`` (``--output``) and prints it.
Needs the test-only peers (``requirements-peers.txt``) for the RealESRGANer rows
and ``ncnn`` for the ncnn rows; missing ones are reported as skipped.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODELS = {  # stage -> (ncnn model id, official network)
    "realesr-animevideov3": ("animevideov3-x4", "compact"),
    "realesrgan-x4plus": ("x4plus", "rrdbnet23"),
}
SIZES = (64, 128, 256)
METHODS = ("ours-fp32-tile0", "ours-fp32-tileauto", "ours-bf16-tile0", "realesrganer-fp32", "ncnn-fp32")
METHOD_LABELS = {
    "ours-fp32-tile0": "ours fp32, tile=0",
    "ours-fp32-tileauto": "ours fp32, tile=auto",
    "ours-bf16-tile0": "ours bf16, tile=0",
    "realesrganer-fp32": "RealESRGANer fp32, tile=0",
    "ncnn-fp32": "ncnn fp32, 2 threads",
}
REFERENCE = "ours-fp32-tile0"
#: What follows this line in docs/benchmarks.md was written by other scripts and survives a regeneration.
KEEP_MARKER = "<!-- sections below are written by other scripts; compare_realesrgan.py keeps them -->"


# --------------------------------------------------------------------------- shared helpers


def _image(height: int, width: int) -> Any:
    """A real-photo crop, uint8 HWC RGB, centred on astronaut's face; mirrored past the 512x512 photo."""
    import numpy as np
    from skimage import data

    photo = data.astronaut()
    if height > photo.shape[0] or width > photo.shape[1]:
        extra_h, extra_w = max(0, height - photo.shape[0]), max(0, width - photo.shape[1])
        photo = np.pad(photo, ((extra_h // 2, extra_h - extra_h // 2), (extra_w // 2, extra_w - extra_w // 2), (0, 0)),
                       mode="symmetric")
    rows, cols = photo.shape[:2]
    top = min(max(0, rows * 200 // 512 - height // 2), rows - height)
    left = min(max(0, cols // 2 - width // 2), cols - width)
    return np.ascontiguousarray(photo[top : top + height, left : left + width])


def _status_kib() -> dict[str, int]:
    values = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


def _reset_peak() -> bool:
    """Reset VmHWM (the kernel's peak-RSS mark) to the current RSS; False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


def _calibrate() -> float:
    """Seconds for a fixed small workload on all of torch's threads (best of 5): how fast the machine is now.

    Another job on one of the cores slows every multi-threaded kernel down (a thread that waits
    at each barrier for a descheduled partner), by ten times and more on two cores, and CPU time
    stretches with it. Comparing this number between the rows of one run tells which rows ran
    on a machine that was not all ours.
    """
    import torch

    a, b = torch.rand(256, 256), torch.rand(256, 256)
    torch.mm(a, b)
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(40):
            torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return best


def _psnr(a: Any, b: Any) -> float:
    import numpy as np

    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def _weights_name(stage: str) -> str:
    """The weights our stage loads: the first cached choice, else the last producible one (as the stage does)."""
    from remaster.weights import get_manager
    from remaster_realesrgan.catalogue import MODELS as KNOWN

    model = next(m for m in KNOWN if m.stage == stage)
    manager = get_manager()
    for name in model.weights:
        if manager.path(name).is_file():
            return name
    return model.weights[-1]


# --------------------------------------------------------------------------- worker side


def _alias_functional_tensor() -> None:
    """basicsr 1.4.2 imports this removed module; the same test-only alias as the plugin's tests/conftest.py."""
    import torchvision.transforms.functional as functional

    sys.modules.setdefault("torchvision.transforms.functional_tensor", functional)


def _official_network(kind: str) -> Any:
    _alias_functional_tensor()
    if kind == "compact":
        from realesrgan.archs.srvgg_arch import SRVGGNetCompact

        return SRVGGNetCompact(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4, act_type="prelu")
    from basicsr.archs.rrdbnet_arch import RRDBNet

    return RRDBNet(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23, num_grow_ch=32, scale=4)


def _build_runner(spec: dict[str, Any]) -> Any:
    """Import, load the model, and return a function image -> uint8 HWC RGB."""
    method, stage = spec["method"], spec["stage"]
    if method.startswith("ours"):
        import torch

        from remaster import Remasterer

        precision = "bf16" if "bf16" in method else "fp32"
        tile: int | str = "auto" if method.endswith("tileauto") else int(spec.get("tile", 0))
        remasterer = Remasterer([stage], device="cpu", precision=precision, tile=tile)
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        remasterer.stages[0].instance(torch.device("cpu"), dtype)  # load the network now, outside the timings
        return remasterer.run
    if method.startswith("realesrganer"):
        import numpy as np
        import torch

        _alias_functional_tensor()
        from realesrgan import RealESRGANer

        upsampler = RealESRGANer(scale=4, model_path=spec["pth"], model=_official_network(MODELS[stage][1]),
                                 tile=0, pre_pad=0, half=False, device=torch.device("cpu"))

        def run_realesrganer(rgb: Any) -> Any:
            out, _mode = upsampler.enhance(np.ascontiguousarray(rgb[..., ::-1]), outscale=4)
            return np.ascontiguousarray(out[..., ::-1])

        return run_realesrganer
    if method.startswith("ncnn"):
        import ncnn
        import numpy as np

        from remaster_realesrgan.ncnn import packaged_models

        param, weights = packaged_models()[MODELS[stage][0]]
        net = ncnn.Net()
        opt = net.opt
        opt.use_fp16_packed = opt.use_fp16_storage = opt.use_fp16_arithmetic = False
        opt.use_bf16_storage = opt.use_bf16_packed = False
        opt.use_vulkan_compute = False
        opt.num_threads = 2
        if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
            raise RuntimeError(f"ncnn could not load {param}")

        def run_ncnn(rgb: Any) -> Any:
            planar = np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)
            mat = ncnn.Mat(planar)  # borrows planar's buffer: keep planar alive until extract returns
            extractor = net.create_extractor()
            extractor.input("data", mat)
            ret, out = extractor.extract("output")
            if ret != 0:
                raise RuntimeError(f"ncnn extract failed ({ret})")
            result = np.array(out, dtype=np.float32, copy=True)
            del extractor, mat, planar
            return np.ascontiguousarray((np.clip(result, 0.0, 1.0) * 255.0).round().astype(np.uint8).transpose(1, 2, 0))

        run_ncnn.net = net  # type: ignore[attr-defined]  # the closure keeps the net alive
        return run_ncnn
    raise ValueError(f"unknown method {method!r}")


def _worker_bench(spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    height, width = spec["height"], spec["width"]
    image = _image(height, width)
    runner = _build_runner(spec)
    calibration = [_calibrate()]
    baseline = _status_kib()["VmRSS"]
    reset = _reset_peak()
    start = time.perf_counter()
    out = runner(image)  # warm-up: oneDNN and ncnn pick their kernels on the first call
    warmup = time.perf_counter() - start
    first_peak = _status_kib()["VmHWM"] if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    steady_base = _status_kib()["VmRSS"]
    reset = reset and _reset_peak()
    # At least `repeats` runs; cheap cases get more (up to ~3 s of runs, 15 at most) to tame noise.
    repeats = max(spec["repeats"], min(15, int(3.0 / max(warmup, 1e-3))))
    times, cpu_times = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        out = runner(image)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)  # all threads of the process: user + system
    assert out is not None and out.shape == (4 * height, 4 * width, 3) and out.dtype == np.uint8, out.shape
    calibration.append(_calibrate())
    peak_total = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    steady_peak = _status_kib()["VmHWM"] if reset else peak_total
    np.save(spec["out"], out)
    return {
        "times": times, "cpu_times": cpu_times, "warmup": warmup, "calibration": calibration,
        # Peak RSS of the whole process (interpreter, libraries, model, every run): ru_maxrss, in KiB.
        "peak_total_kib": max(peak_total, first_peak, steady_peak),
        # Rise of the peak over the RSS after imports and model load, first run included (what a one-shot CLI pays).
        "inference_kib": max(first_peak, steady_peak) - baseline,
        # Rise of the peak during the timed runs only, over the RSS just before them (steady state).
        "steady_kib": steady_peak - steady_base if reset else None,
    }


def _worker_load(_spec: dict[str, Any]) -> dict[str, Any]:
    """Time each step of loading x4plus from the cache, in a fresh interpreter."""
    marks: dict[str, float] = {}
    start = time.perf_counter()
    import torch

    marks["import torch"] = time.perf_counter() - start
    t = time.perf_counter()
    import remaster
    from remaster.weights import get_manager, load_state_dict, sha256_file

    marks["import remaster"] = time.perf_counter() - t
    t = time.perf_counter()
    manager = get_manager()
    marks["plugin host + weights manager"] = time.perf_counter() - t
    t = time.perf_counter()
    path = manager.ensure("realesrgan-x4plus")
    marks["ensure (path, size, sha256)"] = time.perf_counter() - t
    t = time.perf_counter()
    sha256_file(path)
    marks["  of which sha256 of the file"] = time.perf_counter() - t
    t = time.perf_counter()
    import spandrel

    marks["import spandrel (first use)"] = time.perf_counter() - t
    t = time.perf_counter()
    state = load_state_dict(path)
    marks["load_state_dict (safetensors)"] = time.perf_counter() - t
    t = time.perf_counter()
    descriptor = spandrel.ModelLoader().load_from_state_dict(state)
    marks["spandrel detect + build + load"] = time.perf_counter() - t
    t = time.perf_counter()
    descriptor.model.eval().requires_grad_(False).to(memory_format=torch.channels_last)
    marks["eval + channels_last"] = time.perf_counter() - t

    # Where spandrel's time goes: build the same network alone, with and without random init.
    from spandrel.architectures.ESRGAN import ESRGAN

    def build() -> Any:
        return ESRGAN(in_nc=3, out_nc=3, num_filters=64, num_blocks=23, scale=4)

    t = time.perf_counter()
    net = build()
    marks["  build RRDBNet (random init)"] = time.perf_counter() - t
    conv_init = torch.nn.Conv2d.reset_parameters
    torch.nn.Conv2d.reset_parameters = lambda self: None  # type: ignore[method-assign]
    try:
        t = time.perf_counter()
        build()
        marks["  build RRDBNet (init skipped)"] = time.perf_counter() - t
        t = time.perf_counter()
        spandrel.ModelLoader().load_from_state_dict(state)
        marks["  spandrel detect + build + load, init skipped"] = time.perf_counter() - t
    finally:
        torch.nn.Conv2d.reset_parameters = conv_init  # type: ignore[method-assign]
    t = time.perf_counter()
    net.load_state_dict(descriptor.model.state_dict())
    marks["  load_state_dict into the module (copy)"] = time.perf_counter() - t

    # What a user pays: the stage's own prepare (spandrel already imported, file in the page cache).
    from remaster import Remasterer

    remasterer = Remasterer(["realesrgan-x4plus"], device="cpu", precision="fp32", tile=0)
    t = time.perf_counter()
    remasterer.stages[0].instance(torch.device("cpu"), torch.float32)
    marks["stage prepare (ensure + load + spandrel + to)"] = time.perf_counter() - t
    assert remaster.__version__
    return {"marks": marks}


def worker(spec: dict[str, Any]) -> None:
    result = _worker_load(spec) if spec["kind"] == "load" else _worker_bench(spec)
    print("RESULT " + json.dumps(result))


# --------------------------------------------------------------------------- orchestration


class Runner:
    def __init__(self, budget: float, repeats: int, tmp: Path):
        self.start = time.monotonic()
        self.budget = budget
        self.repeats = repeats
        self.tmp = tmp
        self.count = 0

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.budget - self.elapsed()

    def spawn(self, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
        self.count += 1
        spec = {"repeats": self.repeats, **spec, "out": str(self.tmp / f"out{self.count}.npy")}
        t = time.monotonic()
        proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True,
                              text=True, timeout=max(timeout, 30), cwd=ROOT, check=False)
        wall = time.monotonic() - t
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"worker {spec['kind']}/{spec.get('method')} failed: {' | '.join(tail)}")
        result = json.loads(lines[-1][len("RESULT ") :])
        result["process_s"] = wall
        result["out"] = spec["out"]
        return result


def _available(module: str) -> str | None:
    """None when importable in a subprocess like the workers, else why not."""
    code = ("import sys, torchvision.transforms.functional as f; "
            f"sys.modules.setdefault('torchvision.transforms.functional_tensor', f); import {module}")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if proc.returncode == 0:
        return None
    return (proc.stderr.strip().splitlines() or ["import failed"])[-1]


def _machine() -> dict[str, str]:
    import torch

    from remaster.pipeline import devices

    cpu = "unknown"
    details = []
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        for line in info.splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and cpu == "unknown":
                cpu = value.strip()
            elif key in ("cpu family", "model") and len(details) < 2:
                details.append(f"{key} {value.strip()}")
        flags = next((line.partition(":")[2].split() for line in info.splitlines() if line.startswith("flags")), [])
        isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "f16c", "sha_ni") if f in flags]
    except OSError:
        isa = []
    mem_kib = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                    if line.startswith("MemTotal")), 0)
    try:
        import ncnn

        ncnn_version = getattr(ncnn, "__version__", "?")
    except ImportError:
        ncnn_version = "not installed"
    return {
        "cpu": f"{cpu} ({', '.join(details)}; flags: {' '.join(isa)})",
        "cores": f"{os.cpu_count()} logical CPUs, torch uses {torch.get_num_threads()} threads",
        "ram": f"{mem_kib / 2**20:.1f} GiB",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "ncnn": ncnn_version,
        "device": devices.describe_device(torch.device("cpu")),
        "fast_bf16": str(devices.cpu_supports_fast_bf16()),
        "load": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


def _bench_size(runner: Runner, rows: list[dict[str, Any]], stage: str, size: int, pths: dict[str, Path],
                fast_bf16: bool, peers: str | None, ncnn_missing: str | None, per_run_128: dict[str, float],
                args: argparse.Namespace) -> None:
    """Measure every method on one model and input size; fill in PSNR against ours fp32 untiled."""
    import numpy as np
    import torch

    from remaster.pipeline import tiling
    from remaster_realesrgan.plugin import TILE_OVERLAP

    outputs: dict[str, Any] = {}
    auto_tile = tiling.auto_tile_size((1, 3, size, size), device=torch.device("cpu"), scale=4, overlap=TILE_OVERLAP)
    measured = []
    for method in METHODS:
        row: dict[str, Any] = {"stage": stage, "size": size, "method": method, "note": ""}
        rows.append(row)
        if method == "ours-bf16-tile0" and not fast_bf16:
            row["skipped"] = "skipped: CPU lacks AVX512-BF16/AMX"
            continue
        if method.startswith("realesrganer") and peers:
            row["skipped"] = f"skipped: realesrgan not importable ({peers})"
            continue
        if method.startswith("ncnn") and ncnn_missing:
            row["skipped"] = f"skipped: ncnn not importable ({ncnn_missing})"
            continue
        if method == "ours-fp32-tileauto":
            row["note"] = f"auto chose {'no tiling' if auto_tile == 0 else f'tile={auto_tile}'}"
            if auto_tile == 0 and (stage == "realesrgan-x4plus" or size != SIZES[0]):
                row["skipped"] = "auto chose no tiling: the code path of tile=0, not re-measured (time)"
                continue
        if stage == "realesrgan-x4plus" and size == 256 and not args.x4plus_256:
            row["skipped"] = ("opt-in (--x4plus-256): ~20 s per image here, 4-5 minutes for the three "
                              "methods, past the 10-minute run")
            continue
        if stage == "realesrgan-x4plus" and size == 256:
            estimate = 4 * per_run_128.get(method, 20.0) * (args.repeats + 1) + 15
            if estimate > runner.left():
                row["skipped"] = (f"skipped: ~{estimate:.0f} s would not fit the time budget "
                                  f"({runner.left():.0f} s left of {args.budget:.0f})")
                print(f"[{runner.elapsed():.0f}s] {stage} {size} {method}: {row['skipped']}", flush=True)
                continue
        spec = {"kind": "bench", "stage": stage, "method": method, "height": size, "width": size,
                "pth": str(pths[stage])}
        try:
            result = runner.spawn(spec, timeout=max(60.0, runner.left() + 60))
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            row["skipped"] = f"failed: {exc}"
            print(f"[{runner.elapsed():.0f}s] {stage} {size} {method}: {row['skipped']}", flush=True)
            continue
        row.update(result)
        outputs[method] = np.load(result["out"])
        measured.append(row)
        if stage == "realesrgan-x4plus" and size == 128:
            per_run_128[method] = min(result["times"])
        print(f"[{runner.elapsed():.0f}s] {stage} {size} {method}: median {statistics.median(result['times']):.3f} s "
              f"(min {min(result['times']):.3f}, n={len(result['times'])}), "
              f"CPU {statistics.median(result['cpu_times']):.3f} s, "
              f"calibration {1000 * max(result['calibration']):.0f} ms, peak {_mib(result['peak_total_kib'])} MiB",
              flush=True)
    reference = outputs.get(REFERENCE)
    if reference is not None:
        for row in measured:
            row["psnr"] = _psnr(outputs[row["method"]], reference)


def _mib(kib: float) -> str:
    return f"{kib / 1024:.0f}"


def _fmt_psnr(value: float | None) -> str:
    if value is None:
        return ""
    return "identical" if math.isinf(value) else f"{value:.1f} dB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after the warm-up (default 3)")
    parser.add_argument("--budget", type=float, default=570.0,
                        help="seconds for the whole run; costly cases that would not fit are skipped (default 570)")
    parser.add_argument("--x4plus-256", action="store_true",
                        help="also run x4plus at 256x256 (~20 s per image on two cores, 4-5 more minutes; "
                             "still only as far as the budget allows)")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    if args.repeats < 3:
        parser.error("--repeats must be at least 3")

    import torch

    from remaster.pipeline import devices
    from remaster.weights import get_manager, load_state_dict

    command = " ".join(["python", "benchmarks/compare_realesrgan.py", *map(shlex.quote, argv or sys.argv[1:])])
    when = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    machine = _machine()
    print(f"machine: {machine}", flush=True)
    peers = _available("realesrgan")
    ncnn_missing = _available("ncnn")
    fast_bf16 = devices.cpu_supports_fast_bf16()

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="rbench-") as tmpdir:
        tmp = Path(tmpdir)
        runner = Runner(args.budget, args.repeats, tmp)
        pths = {}
        for stage in MODELS:
            name = _weights_name(stage)
            pths[stage] = tmp / f"{stage}.pth"
            torch.save({"params_ema": load_state_dict(get_manager().ensure(name))}, pths[stage])

        # -- load time first: it is cheap and the headline for x4plus
        loads = [runner.spawn({"kind": "load"}, timeout=120)["marks"] for _ in range(3)]
        load_marks = {key: statistics.median(m[key] for m in loads) for key in loads[0]}
        print(f"[{runner.elapsed():.0f}s] load: {json.dumps({k: round(v, 3) for k, v in load_marks.items()})}",
              flush=True)

        # -- the speed table; x4plus at 256 runs last (after the memory check), only what fits the budget
        per_run_128: dict[str, float] = {}  # x4plus method -> fastest run at 128, to extrapolate to 256
        plan = [(stage, size) for stage in MODELS for size in SIZES]
        x4plus_256 = ("realesrgan-x4plus", 256)
        plan.remove(x4plus_256)
        for stage, size in plan:
            _bench_size(runner, rows, stage, size, pths, fast_bf16, peers, ncnn_missing, per_run_128, args)

        # -- peak memory of large tiled runs against the output buffer
        memory_rows = []
        for height, width, tile in ((192, 256, 128), (384, 512, 128), (576, 768, 128), (384, 512, 0)):
            if runner.left() < 60:
                memory_rows.append({"height": height, "width": width, "tile": tile, "skipped": "time budget"})
                continue
            # Memory is the point here: one timed run after the warm-up (more when they are cheap).
            spec = {"kind": "bench", "stage": "realesr-animevideov3", "method": "ours-fp32-tile0", "tile": tile,
                    "height": height, "width": width, "repeats": 1}
            result = runner.spawn(spec, timeout=300)
            result.update(height=height, width=width, tile=tile)
            memory_rows.append(result)
            print(f"[{runner.elapsed():.0f}s] memory {width}x{height} tile={tile}: peak "
                  f"{_mib(result['peak_total_kib'])} MiB, inference +{_mib(result['inference_kib'])} MiB, "
                  f"steady +{_mib(result['steady_kib'] or 0)} MiB", flush=True)

        _bench_size(runner, rows, *x4plus_256, pths, fast_bf16, peers, ncnn_missing, per_run_128, args)
        total = runner.elapsed()

    machine["load_end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    report = _report(command, when, machine, rows, load_marks, memory_rows, args, total)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    # Other scripts' sections (benchmarks/startup.py) follow the marker; regenerating this page keeps them.
    previous = args.output.read_text(encoding="utf-8") if args.output.is_file() else ""
    kept = previous[previous.index(KEEP_MARKER):] if KEEP_MARKER in previous else ""
    args.output.write_text(report.rstrip("\n") + "\n\n" + kept if kept else report, encoding="utf-8")
    print(report)
    print(f"written to {args.output} in {total:.0f} s", flush=True)
    return 0


def _report(command: str, when: str, machine: dict[str, str], rows: list[dict[str, Any]],
            load_marks: dict[str, float], memory_rows: list[dict[str, Any]], args: argparse.Namespace,
            total: float) -> str:
    lines = [
        "# Real-ESRGAN benchmarks",
        "",
        "Generated by `benchmarks/compare_realesrgan.py`: rerun it to refresh this page (the "
        "RealESRGANer rows need the test-only peers of `requirements-peers.txt`). "
        "`benchmarks/test_bench_realesrgan.py` has pytest-benchmark versions of the main cases (`make bench`).",
        "",
        f"- Command: `REMASTER_CACHE=... {command}` (took {total:.0f} s)",
        f"- Date: {when}",
        f"- CPU: {machine['cpu']}",
        f"- Cores: {machine['cores']}; RAM: {machine['ram']}",
        f"- Load average (1/5/15 min) at start: {machine['load']}; at the end: {machine.get('load_end', '?')}. "
        "A shared machine: other jobs slow some runs down, so compare the minimum as well as the median.",
        f"- Python {machine['python']}, torch {machine['torch']}, ncnn {machine['ncnn']}",
        f"- `remaster.pipeline.devices.describe_device`: {machine['device']}; "
        f"`cpu_supports_fast_bf16()`: {machine['fast_bf16']}",
        "",
        "## Speed, memory and agreement",
        "",
        "Input: a crop of `skimage.data.astronaut`, RGB uint8, upscaled x4 to uint8. "
        f"**Wall s**: median (min) of n >= {args.repeats} runs after one warm-up run in the same process "
        "(cheap cases get more runs, up to 15); the whole call, uint8 in and out, model already loaded. "
        "**Peak RSS**: `ru_maxrss` of the measuring process at the end: interpreter, torch, libraries "
        "and model included. **Inference**: how far the peak rose over the RSS after imports and model "
        "load, first run included (`VmHWM`, reset through `/proc/self/clear_refs`). "
        "**CPU s**: median CPU time (user + system, all threads) of a run: unlike wall time it "
        "hardly moves when other jobs share the cores. **Cores busy**: CPU time / wall time; about 2 "
        "when both cores were ours, near 1 when another job held one. **Speed vs ours**: CPU s of ours "
        "fp32 tile=0 divided by this row's (above 1: less work than ours). "
        "**PSNR**: 8-bit, against ours fp32 tile=0 on the same input. **Slowdown**: a fixed "
        "multi-threaded torch workload timed before and after the row's runs, the slower of the two, "
        "over its fastest time in this whole run: about 1 means both cores were ours; well above 1 "
        "(or cores busy near 1) means another job held a core at that moment, which slows "
        "multi-threaded kernels down many times over, CPU time included: do not trust that row. "
        "Every row is a fresh process.",
        "",
        "| model | input | method | wall s | n | CPU s | cores busy | speed vs ours | slowdown | peak RSS MiB "
        "| inference MiB | PSNR vs ours fp32 | note |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    best_calibration = min((c for r in [*rows, *memory_rows] for c in r.get("calibration", ())), default=math.nan)
    ours_cpu = {(r["stage"], r["size"]): statistics.median(r["cpu_times"]) for r in rows
                if r["method"] == REFERENCE and "skipped" not in r}
    for row in rows:
        label = METHOD_LABELS[row["method"]]
        size = f"{row['size']}x{row['size']}"
        if "skipped" in row:
            lines.append(f"| {row['stage']} | {size} | {label} |{' - |' * 9} {row['skipped']} |")
            continue
        times, cpu = row["times"], statistics.median(row["cpu_times"])
        busy = statistics.median(c / w for c, w in zip(row["cpu_times"], times))
        ours = ours_cpu.get((row["stage"], row["size"]))
        speed = f"{ours / cpu:.2f}" if ours else ""
        lines.append(
            f"| {row['stage']} | {size} | {label} | {statistics.median(times):.3f} ({min(times):.3f}) | "
            f"{len(times)} | {cpu:.3f} | {busy:.1f} | {speed} | {max(row['calibration']) / best_calibration:.1f} | "
            f"{_mib(row['peak_total_kib'])} | {_mib(row['inference_kib'])} | "
            f"{_fmt_psnr(row.get('psnr'))} | {row['note']} |")

    lines += [
        "",
        "## Loading realesrgan-x4plus from the cache",
        "",
        "Median of 3 fresh processes, the weights file in the page cache. Indented lines are "
        "parts of the line above, or experiments that show where its time goes. The last line is "
        "what the stage's `prepare` costs once spandrel is imported.",
        "",
        "| step | seconds |",
        "| --- | --- |",
    ]
    for key, value in load_marks.items():
        indent = "&nbsp;&nbsp;&nbsp;&nbsp;" if key.startswith("  ") else ""
        lines.append(f"| {indent}{key.strip()} | {value:.3f} |")

    lines += [
        "",
        "## Peak memory of large runs",
        "",
        "realesr-animevideov3, ours fp32; time: median of n runs after a warm-up. "
        "*Buffer*: the float32 RGB output, 4H x 4W x 3 x 4 bytes "
        "(the uint8 result is a quarter of it). *Inference*: rise of the peak RSS over the RSS after "
        "load, first run included; *steady*: the same over the timed runs only.",
        "",
        "| input | output | tile | time s | n | slowdown | peak RSS MiB | inference MiB | steady MiB | buffer MiB "
        "| steady / buffer |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in memory_rows:
        size = f"{row['width']}x{row['height']}"
        out = f"{4 * row['width']}x{4 * row['height']}"
        if "skipped" in row:
            lines.append(f"| {size} | {out} | {row['tile']} |{' - |' * 7} skipped: {row['skipped']} |")
            continue
        buffer_kib = 16 * row["width"] * row["height"] * 3 * 4 / 1024
        steady = row["steady_kib"]
        lines.append(
            f"| {size} | {out} | {row['tile'] or 'none'} | {statistics.median(row['times']):.3f} | "
            f"{len(row['times'])} | {max(row['calibration']) / best_calibration:.1f} | "
            f"{_mib(row['peak_total_kib'])} | {_mib(row['inference_kib'])} | "
            f"{'?' if steady is None else _mib(steady)} | {_mib(buffer_kib)} | "
            f"{'?' if steady is None else f'{steady / buffer_kib:.1f}'} |")
    tiled = [r for r in memory_rows if "skipped" not in r and r["tile"] and r.get("steady_kib") is not None]
    if len(tiled) >= 2:
        small, large = tiled[0], tiled[-1]
        slope = (large["steady_kib"] - small["steady_kib"]) / (
            16 * 3 * 4 / 1024 * (large["width"] * large["height"] - small["width"] * small["height"]))
        lines += ["", f"Tiled (tile={large['tile']}): each extra MiB of output buffer raised the steady peak "
                      f"by {slope:.1f} MiB ({small['width']}x{small['height']} -> {large['width']}x{large['height']})."]
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
