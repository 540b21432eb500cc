"""Video throughput: remaster's video path, the model alone, and Real-ESRGAN's video script, side by side (issue 22).

    .venv/bin/python benchmarks/video_throughput.py [--case animevideov3 x4plus] [--frames N] [--size WxH]
        [--precision auto|fp32|bf16|fp16] [--device cpu|cuda] [--psnr-frames K] [--no-official]
        [--out out/video_throughput.json] [--docs docs/video.md]

For each case, on a clip it makes with PyAV (``skimage.data`` pictures panned and zoomed smoothly: H.264, CRF 10,
25 fps, tagged BT.601 limited range, no audio; never downloaded), in one process on one machine:

1. **remaster**: ``remaster.video.remaster_video(clip, out.mkv, Remasterer(model, device=..., precision=...))``
   end to end: decoding, the network, encoding (libx264, CRF 18, preset medium: remaster's defaults) and muxing;
2. **model alone**: the same ``Remasterer``'s ``run_image(..., quantise=True)`` on the same frames, decoded
   beforehand as remaster decodes them (the source's matrix and range, accurate swscale) and not timed;
3. **Real-ESRGAN's video script**: the loop of ``inference_realesrgan_video.py`` (xinntao/Real-ESRGAN) as it works:
   ``ffprobe`` for the stream's size and rate, an ``ffmpeg`` process decoding to rawvideo ``bgr24`` on a pipe,
   ``RealESRGANer.enhance`` per frame (``tile=0``, ``tile_pad=10``, ``pre_pad=0``; ``half=True`` on CUDA unless
   ``--precision fp32``, fp32 on the CPU, as the script's ``--fp32`` runs there), an ``ffmpeg`` process encoding
   from a rawvideo ``bgr24`` pipe with libx264 into ``yuv420p`` MP4 (with ``-crf 18 -preset medium`` added, so that
   both encoders do the same work; the script itself leaves libx264 at its default CRF 23). Its network weights
   are those remaster loads (the same safetensors file, saved as the official ``.pth`` with ``params_ema``).

Each is timed from its first frame read to its output file closed, the model loaded and warmed up beforehand (one
frame each); frames per second are the clip's frames over that wall time. CPU time (all threads, and for (3) the
two ffmpeg processes too) is given beside it: it moves less than wall time on a shared machine. The figure of merit
is (1) / (2) (target >= 90%). Agreement, on ``--psnr-frames`` frames spread over the clip, compared before
encoding: (3)'s ``enhance`` outputs against remaster fp32 (``run_image``) on the very frames ffmpeg gave (3)
(target >= 45 dB), and (2)'s outputs at the measured precision against fp32 on remaster's decoded frames.

Needs the ``ffmpeg`` and ``ffprobe`` binaries (Debian: ``apt-get install ffmpeg``; without them it says so in one
line and exits 2, unless ``--no-official``) and, for (3), the test-only peers of ``requirements-peers.txt``
(without them the row says it was skipped). Writes ``--out`` (JSON, after each case) and prints the Markdown; with
``--docs docs/video.md`` it replaces each case's marked section there (after each case). Time on 2 AVX512-BF16
cores (extrapolated from docs/benchmarks.md's per-image times): about 17 minutes for ``animevideov3`` (854x480, 100
frames; the official fp32 loop is most of it) and 8-10 for ``x4plus`` (426x240, 8 frames). Measure on a quiet machine:
the load average before and after each path is recorded.
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
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import compare_realesrgan as compare  # noqa: E402  (official networks, weights names, PSNR, peer check)
from doc_sections import write_section  # noqa: E402
from startup import cpu, load  # noqa: E402  (the machine line and load average, as the other tables give them)


@dataclass(frozen=True)
class Case:
    """One measured model: its stage, and the clip it runs on by default."""

    model: str
    width: int
    height: int
    frames: int
    psnr_frames: int


CASES = {
    "animevideov3": Case("realesr-animevideov3", 854, 480, 100, 4),
    "x4plus": Case("realesrgan-x4plus", 426, 240, 8, 2),
}
FPS = 25
SCALE = 4
CRF, PRESET = 18, "medium"  # remaster's defaults (src/remaster/video/colour.py), given to the official encoder too
MATRIX, RANGE = 6, 1  # the clip's tags: BT.601 (smpte170m), limited range


def markers(case: str) -> tuple[str, str]:
    return f"<!-- video-throughput-{case}:begin -->", f"<!-- video-throughput-{case}:end -->"


def parse_size(text: str) -> tuple[int, int]:
    """``"854x480"`` -> ``(854, 480)`` (width, height); both even (4:2:0)."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a size is WIDTHxHEIGHT, e.g. 854x480, not {text!r}") from None
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise argparse.ArgumentTypeError(f"a size must be even and at least 16x16 (4:2:0 video), not {text!r}")
    return width, height


# --------------------------------------------------------------------------- the clip


def make_clip(path: Path, width: int, height: int, frames: int) -> None:
    """``frames`` frames of a strip of skimage pictures, panned left to right and slowly zoomed (H.264, CRF 10)."""
    import av
    import numpy as np
    from PIL import Image
    from skimage import data

    strip_height = max(512, round(height * 1.25))
    pictures = []
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        picture = Image.fromarray(getattr(data, name)()).convert("RGB")
        pictures.append(picture.resize((round(picture.width * strip_height / picture.height), strip_height),
                                       Image.Resampling.LANCZOS))
    strip = Image.new("RGB", (sum(p.width for p in pictures), strip_height))
    left = 0
    for picture in pictures:
        strip.paste(picture, (left, 0))
        left += picture.width
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS, options={"crf": "10", "preset": "fast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.colorspace, stream.codec_context.color_range = MATRIX, RANGE
        for index in range(frames):
            t = index / max(1, frames - 1)
            zoom = 1.0 + 0.2 * math.sin(math.pi * t)  # in and out again over the clip
            crop_h = strip_height / 1.25 / zoom
            crop_w = crop_h * width / height
            x0 = t * (strip.width - crop_w)
            y0 = (strip_height - crop_h) / 2 + 0.1 * strip_height * math.sin(2 * math.pi * t)
            box = (x0, y0, x0 + crop_w, y0 + crop_h)
            rgb = np.asarray(strip.resize((width, height), Image.Resampling.BICUBIC, box=box))
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                format="yuv420p", dst_colorspace=MATRIX, dst_color_range=RANGE)
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def decode_as_remaster(path: Path) -> list[Any]:
    """Every frame as remaster's video path reads it (``encode._remastered``): RGB uint8, accurate swscale."""
    import av

    from remaster.video.colour import source_colour
    from remaster.video.encode import _accurate

    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.video[0]):
            colour = source_colour(frame)
            frames.append(frame.to_ndarray(format="rgb24", src_colorspace=colour.matrix,
                                           src_color_range=colour.range, dst_color_range=2,
                                           interpolation=_accurate(av)))
    return frames


# --------------------------------------------------------------------------- timing


class Clock:
    """Wall and CPU time of one path (this process's threads, and children waited for inside it)."""

    def __enter__(self) -> Clock:
        self.load_before = load()
        self.children = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu = time.process_time()
        self.wall = time.perf_counter()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.seconds = time.perf_counter() - self.wall
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu_seconds = (time.process_time() - self.cpu + children.ru_utime + children.ru_stime
                            - self.children.ru_utime - self.children.ru_stime)
        self.load_after = load()

    def result(self, frames: int) -> dict[str, Any]:
        return {"frames": frames, "seconds": self.seconds, "fps": frames / self.seconds,
                "cpu_seconds": self.cpu_seconds, "load_before": self.load_before, "load_after": self.load_after}


def sampled(frames: int, count: int) -> list[int]:
    """``count`` frame numbers spread evenly over ``frames`` (first and last included)."""
    count = max(0, min(count, frames))
    if count <= 1:
        return [0] * count
    return sorted({round(i * (frames - 1) / (count - 1)) for i in range(count)})


def run_model(remasterer: Any, frames: list[Any], keep: list[int]) -> tuple[Clock, dict[int, Any]]:
    """(2): ``run_image`` on every decoded frame, as one frame sequence; the outputs of ``keep`` kept."""
    import numpy as np

    from remaster import io

    view = remasterer.for_sequence()
    kept = {}
    with Clock() as clock:
        for index, pixels in enumerate(frames):
            out = io.to_numpy(view.run_image(io.load(pixels), quantise=True))
            if index in keep:
                kept[index] = np.array(out, copy=True)
    return clock, kept


def probe(clip: Path) -> dict[str, Any]:
    """What the official script's ``get_video_meta_info`` reads (``ffmpeg.probe``: ``ffprobe`` as JSON)."""
    done = subprocess.run(["ffprobe", "-show_format", "-show_streams", "-of", "json", str(clip)],
                          capture_output=True, text=True, check=True)
    video = next(s for s in json.loads(done.stdout)["streams"] if s["codec_type"] == "video")
    numerator, denominator = (int(part) for part in video["avg_frame_rate"].split("/"))
    return {"width": video["width"], "height": video["height"], "fps": Fraction(numerator, denominator),
            "nb_frames": int(video["nb_frames"])}


def run_official(upsampler: Any, clip: Path, target: Path, keep: list[int], device: str,
                 logs: Path) -> tuple[Clock, int, dict[int, tuple[Any, Any]]]:
    """(3): the loop of ``inference_realesrgan_video.py``: (its clock, frames written, the inputs and outputs of
    ``keep`` as RGB)."""
    import numpy as np
    import torch

    kept: dict[int, tuple[Any, Any]] = {}
    with Clock() as clock, open(logs / "reader.log", "w+b") as reader_log, \
            open(logs / "writer.log", "w+b") as writer_log:
        meta = probe(clip)
        width, height = meta["width"], meta["height"]
        # Reader: ffmpeg.input(path).output('pipe:', format='rawvideo', pix_fmt='bgr24', loglevel='error')
        reader = subprocess.Popen(["ffmpeg", "-i", str(clip), "-f", "rawvideo", "-pix_fmt", "bgr24",
                                   "-loglevel", "error", "pipe:"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=reader_log)
        # Writer: ffmpeg.input('pipe:', format='rawvideo', pix_fmt='bgr24', s=..., framerate=fps)
        #   .output(path, pix_fmt='yuv420p', vcodec='libx264', loglevel='error'), plus remaster's CRF and preset.
        writer = subprocess.Popen(["ffmpeg", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s",
                                   f"{width * SCALE}x{height * SCALE}", "-framerate", str(meta["fps"]),
                                   "-i", "pipe:", "-pix_fmt", "yuv420p", "-vcodec", "libx264", "-crf", str(CRF),
                                   "-preset", PRESET, "-loglevel", "error", "-y", str(target)],
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=writer_log)
        assert reader.stdout is not None and reader.stdin is not None and writer.stdin is not None
        index = 0
        try:
            while True:
                img_bytes = reader.stdout.read(width * height * 3)
                if not img_bytes:
                    break
                img = np.frombuffer(img_bytes, np.uint8).reshape([height, width, 3])
                output, _ = upsampler.enhance(img, outscale=SCALE)
                writer.stdin.write(output.astype(np.uint8).tobytes())
                if device == "cuda":
                    torch.cuda.synchronize()
                if index in keep:
                    kept[index] = (np.ascontiguousarray(img[..., ::-1]), np.ascontiguousarray(output[..., ::-1]))
                index += 1
        finally:
            reader.stdin.close()
            reader.wait()
            writer.stdin.close()
            writer.wait()
        if reader.returncode or writer.returncode:
            reader_log.seek(0)
            writer_log.seek(0)
            raise RuntimeError(f"ffmpeg failed: {(reader_log.read() + writer_log.read()).decode(errors='replace')}")
    return clock, index, kept


# --------------------------------------------------------------------------- one case


def measure(name: str, case: Case, args: argparse.Namespace, work: Path, peers: str | None) -> dict[str, Any]:
    import numpy as np
    import torch

    from remaster import Remasterer
    from remaster.video import remaster_video
    from remaster.weights import get_manager, load_state_dict

    width, height = args.size or (case.width, case.height)
    count = args.frames or case.frames
    keep = sampled(count, case.psnr_frames if args.psnr_frames is None else args.psnr_frames)
    clip = work / f"{name}.mp4"
    make_clip(clip, width, height, count)
    frames = decode_as_remaster(clip)
    result: dict[str, Any] = {
        "case": name, "model": case.model, "scale": SCALE, "device": args.device, "precision": args.precision,
        "clip": {"width": width, "height": height, "frames": len(frames), "fps": FPS, "codec": "libx264",
                 "bytes": clip.stat().st_size},
        "psnr_frames": keep, "paths": {}}
    log = f"[{name}]"

    remasterer = Remasterer(case.model, device=args.device, precision=args.precision).prepare()
    result["pipeline"] = remasterer.describe()
    from remaster.pipeline.devices import describe_device

    result["device_description"] = describe_device(remasterer.device)
    fp32 = remasterer.precisions()[0].dtype == torch.float32
    view = remasterer.for_sequence()
    from remaster import io

    io.to_numpy(view.run_image(io.load(frames[0]), quantise=True))  # warm-up: first-call allocations untimed

    # (2) the model alone, then (1) remaster's video path, one after the other on the same prepared pipeline
    clock, model_out = run_model(remasterer, frames, keep)
    result["paths"]["model"] = clock.result(len(frames))
    print(f"{log} model alone: {result['paths']['model']['fps']:.3f} fps", file=sys.stderr, flush=True)

    target = work / f"{name}-remaster.mkv"
    with Clock() as clock:
        report = remaster_video(clip, target, remasterer, overwrite=True)
    result["paths"]["remaster"] = {**clock.result(report.frames), "bytes": target.stat().st_size}
    if report.frames != len(frames):
        raise SystemExit(f"{name}: remaster_video wrote {report.frames} frames of {len(frames)}")
    result["remaster_of_model"] = result["paths"]["remaster"]["fps"] / result["paths"]["model"]["fps"]
    print(f"{log} remaster_video: {result['paths']['remaster']['fps']:.3f} fps "
          f"({100 * result['remaster_of_model']:.1f}% of the model alone)", file=sys.stderr, flush=True)

    # (3) the official video script's loop
    official_in: dict[int, Any] = {}
    official_out: dict[int, Any] = {}
    if args.no_official:
        result["paths"]["official"] = {"skipped": "left out (--no-official)"}
    elif peers is not None:
        result["paths"]["official"] = {"skipped": f"realesrgan not importable ({peers})"}
    else:
        compare._alias_functional_tensor()
        from realesrgan import RealESRGANer

        pth = work / f"{case.model}.pth"
        torch.save({"params_ema": load_state_dict(get_manager().ensure(compare._weights_name(case.model)))}, pth)
        half = args.device == "cuda" and args.precision != "fp32"
        upsampler = RealESRGANer(scale=SCALE, model_path=str(pth), model=compare._official_network(
                                     compare.MODELS[case.model][1]),
                                 tile=0, tile_pad=10, pre_pad=0, half=half, device=torch.device(args.device))
        upsampler.enhance(np.ascontiguousarray(frames[0][..., ::-1]), outscale=SCALE)  # warm-up, untimed
        official_target = work / f"{name}-official.mp4"
        clock, done, kept = run_official(upsampler, clip, official_target, keep, args.device, work)
        result["paths"]["official"] = {**clock.result(done), "bytes": official_target.stat().st_size,
                                       "precision": "fp16 (half=True)" if half else "fp32"}
        official_in = {index: pair[0] for index, pair in kept.items()}
        official_out = {index: pair[1] for index, pair in kept.items()}
        result["official_of_model"] = result["paths"]["official"]["fps"] / result["paths"]["model"]["fps"]
        result["remaster_of_official"] = result["paths"]["remaster"]["fps"] / result["paths"]["official"]["fps"]
        print(f"{log} official loop: {result['paths']['official']['fps']:.3f} fps", file=sys.stderr, flush=True)
        del upsampler

    # Agreement, before encoding, on the sampled frames: untimed
    reference = remasterer if fp32 else Remasterer(case.model, device=args.device, precision="fp32").prepare()

    def fp32_of(pixels: Any) -> Any:
        return io.to_numpy(reference.run_image(io.load(pixels), quantise=True))

    psnr: dict[str, Any] = {}
    fp32_on_ours: dict[int, Any] = {}
    if not fp32:
        fp32_on_ours = {index: fp32_of(frames[index]) for index in keep}
        psnr["remaster_vs_fp32"] = [compare._psnr(model_out[index], fp32_on_ours[index]) for index in keep]
    if official_out:
        psnr["inputs_ffmpeg_vs_remaster"] = [compare._psnr(official_in[index], frames[index]) for index in keep]
        official_ref = []
        for index in keep:
            if np.array_equal(official_in[index], frames[index]):
                ref = model_out[index] if fp32 else fp32_on_ours[index]
            else:
                ref = fp32_of(official_in[index])
            official_ref.append(compare._psnr(official_out[index], ref))
        psnr["official_vs_remaster_fp32"] = official_ref
    result["psnr"] = psnr
    return result


# --------------------------------------------------------------------------- report


def versions() -> dict[str, str]:
    import av
    import torch

    import remaster

    found = {"python": platform.python_version(), "torch": torch.__version__, "remaster": remaster.__version__,
             "PyAV": av.__version__, "PyAV's libavcodec": ".".join(map(str, av.library_versions["libavcodec"]))}
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT,
                                check=True).stdout.strip()
        found["remaster"] += f" ({commit})"
    except (OSError, subprocess.CalledProcessError):
        pass
    if shutil.which("ffmpeg"):
        first = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=False).stdout
        found["ffmpeg"] = (first.split() or ["?", "?", "?"])[2]
    for package in ("realesrgan", "basicsr"):
        try:
            from importlib.metadata import version

            found[package] = version(package)
        except Exception:  # noqa: BLE001  (not installed: said as such)
            found[package] = "not installed"
    return found


def machine(device: str) -> dict[str, str]:
    import torch

    line = cpu()
    if device == "cuda":
        line = line.replace("no GPU used", f"GPU: {torch.cuda.get_device_name()}")
    return {"cpu": line, "threads": str(torch.get_num_threads()), "load_before": load()}


def _psnr_text(values: list[float]) -> str:
    if not values:
        return "–"
    low, mean = min(values), sum(values) / len(values)
    if math.isinf(low):
        return "identical"
    return f"min {low:.1f} dB, mean {mean:.1f} dB" if not math.isinf(mean) else f"min {low:.1f} dB"


def markdown(result: dict[str, Any], info: dict[str, Any]) -> str:
    clip, paths = result["clip"], result["paths"]
    model = paths["model"]
    header = (f"### {result['model']} ×{result['scale']}, {clip['width']}×{clip['height']}, {clip['frames']} frames"
              f" → {clip['width'] * SCALE}×{clip['height'] * SCALE}")
    lines = [
        header, "",
        f"`{info['command']}` on {info['date']}. Machine: {info['machine']['cpu']}, torch {info['machine']['threads']}"
        f" threads; load average {info['machine']['load_before']} before the run, {info.get('load_after', '?')} "
        f"after. Versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()) + ".",
        "",
        f"Clip: made by the script (skimage pictures panned and zoomed), H.264 {clip['fps']} fps, BT.601 limited "
        f"range, no audio. remaster runs `{result['pipeline']}` on {result['device_description']}.",
        "",
        "| path | what is timed | seconds | frames/s | CPU s | cores busy | of model alone | load before → after |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    labels = {
        "remaster": ("remaster: `remaster_video(clip, out.mkv, remasterer)`",
                     "decode, network, encode (libx264 CRF 18 medium), mux"),
        "model": ("model alone: `Remasterer.run_image`", "network only, frames decoded beforehand"),
        "official": ("Real-ESRGAN's video script loop: `RealESRGANer.enhance`"
                     + (f" {paths['official']['precision']}" if "precision" in paths["official"] else ""),
                     "ffprobe, ffmpeg decode pipe, enhance per frame, ffmpeg libx264 pipe (CRF 18 medium)"),
    }
    for key in ("remaster", "model", "official"):
        row = paths[key]
        label, what = labels[key]
        if "skipped" in row:
            lines.append(f"| {label} | {what} | skipped: {row['skipped']} | | | | | |")
            continue
        lines.append(f"| {label} | {what} | {row['seconds']:.1f} | {row['fps']:.3f} | {row['cpu_seconds']:.1f} | "
                     f"{row['cpu_seconds'] / row['seconds']:.1f} | {100 * row['fps'] / model['fps']:.1f}% | "
                     f"{row['load_before']} → {row['load_after']} |")
    psnr = result["psnr"]
    frames_note = f"frames {', '.join(map(str, result['psnr_frames']))}"
    lines += ["", f"**remaster / model alone: {100 * result['remaster_of_model']:.1f}%** (target ≥ 90%)."
              + (f" remaster / Real-ESRGAN's loop: {result['remaster_of_official']:.2f}×."
                 if "remaster_of_official" in result else "")]
    agreement = []
    if "official_vs_remaster_fp32" in psnr:
        agreement.append(f"Real-ESRGAN's `enhance` outputs against remaster fp32 (`run_image`) on the very frames "
                         f"ffmpeg decoded for it, compared before encoding ({frames_note}): "
                         f"**{_psnr_text(psnr['official_vs_remaster_fp32'])}** (target ≥ 45 dB); ffmpeg's decoded "
                         f"frames against remaster's: {_psnr_text(psnr['inputs_ffmpeg_vs_remaster'])}.")
    if "remaster_vs_fp32" in psnr:
        agreement.append(f"remaster's model-alone outputs at its precision against fp32, same frames: "
                         f"{_psnr_text(psnr['remaster_vs_fp32'])}.")
    if agreement:
        lines += ["", " ".join(agreement)]
    lines += ["", f"Output sizes: remaster {paths['remaster']['bytes'] / 2**20:.1f} MiB"
              + (f", Real-ESRGAN's loop {paths['official']['bytes'] / 2**20:.1f} MiB"
                 if "bytes" in paths["official"] else "") + "."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs="+", choices=list(CASES), default=list(CASES),
                        help="cases to measure (default: all): animevideov3 (854x480, 100 frames), "
                             "x4plus (426x240, 8 frames)")
    parser.add_argument("--frames", type=int, help="frames in the clip (default: the case's)")
    parser.add_argument("--size", type=parse_size, metavar="WxH", help="the clip's size (default: the case's)")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                        help="remaster's precision (default auto); the official loop runs fp32, or fp16 on CUDA")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--psnr-frames", type=int, help="frames compared for PSNR (default: 4, x4plus 2)")
    parser.add_argument("--no-official", action="store_true", help="leave out Real-ESRGAN's video script loop")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "video_throughput.json", help="JSON results")
    parser.add_argument("--docs", type=Path, help="also replace each case's marked section of this file "
                                                   "(docs/video.md)")
    args = parser.parse_args(argv)
    if args.frames is not None and args.frames < 2:
        parser.error("--frames must be at least 2")
    missing = [tool for tool in ("ffmpeg", "ffprobe") if shutil.which(tool) is None]
    if missing and not args.no_official:
        print(f"video_throughput.py: needs the {' and '.join(missing)} binary for Real-ESRGAN's video script loop "
              "(Debian: apt-get install ffmpeg), or --no-official", file=sys.stderr)
        return 2
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("video_throughput.py: --device cuda, and torch.cuda.is_available() is False here", file=sys.stderr)
        return 2
    os.environ.setdefault("REMASTER_LOG", "warning")
    command = "python " + shlex.join(["benchmarks/video_throughput.py", *(sys.argv[1:] if argv is None else argv)])
    info: dict[str, Any] = {"command": command, "date": datetime.datetime.now().astimezone().isoformat(
                                timespec="seconds"),
                            "machine": machine(args.device), "versions": versions(), "cases": []}
    peers = None if args.no_official else compare._available("realesrgan")
    with tempfile.TemporaryDirectory(prefix="remaster-video-bench-") as tmp:
        for name in args.case:
            result = measure(name, CASES[name], args, Path(tmp), peers)
            info["cases"].append(result)
            info["load_after"] = load()
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(info, indent=2, default=str) + "\n")
            text = markdown(result, info)
            print(text, flush=True)
            if args.docs is not None:
                write_section(*markers(name), text, doc=args.docs)
            for path in Path(tmp).iterdir():  # this case's clip and outputs: the next case starts clean
                if path.is_file():
                    path.unlink()
    print(f"written to {args.out}" + (f" and {args.docs}" if args.docs else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
