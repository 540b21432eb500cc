"""Throughput of ``--engine ray`` against the in-process loop on this machine (docs/distributed.md's table).

    python benchmarks/distributed.py [--images 20] [--size 64] [--model realesr-animevideov3]

Times only the items: the pipeline is built first in every case (the local Remasterer, each Ray worker), and the
cluster's start and the workers' start are reported apart. The per-item overhead is the same measurement with a
stage that costs nothing (``nearest``): what Ray adds to each item (a call, a result, a file read and write).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def make_images(folder: Path, count: int, size: int) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{index:03d}.png")
    return folder


def local_seconds(source: Path, out: Path, stages: list[str]) -> float:
    import remaster

    pipeline = remaster.Remasterer(stages, device="cpu", precision="fp32").prepare()
    files = sorted(source.glob("*.png"))
    started = time.perf_counter()
    for path in files:
        pipeline.run_file(path, out / path.name)
    return time.perf_counter() - started


def ray_seconds(ray: Any, source: Path, out: Path, stages: list[str], workers: int) -> tuple[float, float]:
    """(seconds until the first worker is ready, seconds from then until every item is done)."""
    from remaster.pipeline import PipelineOptions
    from remaster.runs.ray import execute, make_spec, plan_run

    plan = plan_run([str(source)], str(out))
    spec = make_spec(stages, PipelineOptions(device="cpu", precision="fp32"), overwrite=False, quality=None,
                     cpus_per_worker=1, gpus_per_worker=0)
    ready: list[float] = []
    started = time.perf_counter()
    execute(plan, spec, ray, workers=workers, on_start=lambda _: ready.append(time.perf_counter()))
    finished = time.perf_counter()
    assert all(item.ok for item in plan.items), [item.error for item in plan.items if item.error]
    return ready[0] - started, finished - ready[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--model", default="realesr-animevideov3")
    args = parser.parse_args()
    os.environ.setdefault("REMASTER_CPU_ISA", "AVX2")  # fp32 everywhere, as the test suite: comparable machines
    os.environ.setdefault("REMASTER_CACHE", tempfile.mkdtemp(prefix="remaster-bench-cache-"))
    root = Path(tempfile.mkdtemp(prefix="remaster-bench-"))
    try:
        source = make_images(root / "in", args.images, args.size)
        from remaster.runs.ray.cluster import connected

        rows = []
        for stages in ([args.model], ["nearest"]):
            rows.append((stages[0], "in-process loop", None, local_seconds(source, root / f"local-{stages[0]}", stages)))
        started = time.perf_counter()
        with connected(None, num_cpus=2) as ray:
            cluster_start = time.perf_counter() - started
            for stages in ([args.model], ["nearest"]):
                for workers in (1, 2):
                    startup, seconds = ray_seconds(ray, source, root / f"ray{workers}-{stages[0]}", stages, workers)
                    rows.append((stages[0], f"Ray, {workers} worker(s)", startup, seconds))
        print(f"{args.images} images of {args.size}x{args.size}, fp32 on the CPU; local cluster start: "
              f"{cluster_start:.1f} s\n")
        print("| stage | engine | first worker ready after | items took | images/s | per item |")
        print("|---|---|---|---|---|---|")
        for stage, engine, startup, seconds in rows:
            ready = "—" if startup is None else f"{startup:.1f} s"
            print(f"| {stage} | {engine} | {ready} | {seconds:.2f} s | {args.images / seconds:.1f} | "
                  f"{1000 * seconds / args.images:.0f} ms |")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
