"""``compile="auto" | "on" | "off"`` on the CPU: cached compiled artifacts, built once per network, shape and
precision, trusted only as remaster recorded them, never waited for under ``auto``.

Most tests use the ``export`` format (a ``torch.export`` program: the same export, files, manifest, checks and
loading as the AOTInductor packages, without generating native code, so it takes a second); one builds a real
AOTInductor package of a tiny network (``slow``: inductor's C++ compile).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from remaster import CompileTarget, PipelineOptions, Remasterer, RunContext, Stage, StageInfo, Tiling, UsageError, io
from remaster.pipeline import devices
from remaster.pipeline.artifact_build import artifact_key
from remaster.weights.artifacts import ArtifactStore


def _network() -> torch.nn.Module:
    torch.manual_seed(5)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.LeakyReLU(0.2),
                              torch.nn.Conv2d(8, 12, 3, padding=1), torch.nn.PixelShuffle(2))
    return net.eval().requires_grad_(False)


class TinyNetwork(Stage):
    """An x2 network with a compile target, counting its eager calls."""

    compilable = True

    def __init__(self, identity: str = "tiny:1") -> None:
        super().__init__()
        self.info = StageInfo(scale=2, tiling=Tiling.SUPPORTED, tile_overlap=2, in_channels=(3,),
                              dtypes=("fp32", "bf16"))
        self.net = _network()
        self.identity = identity
        self.eager_calls = 0

    def compile_target(self) -> CompileTarget:
        return CompileTarget(identity=self.identity, network=lambda: self.net)

    def run(self, pixels: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        self.eager_calls += 1
        return self.net(pixels)


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("REMASTER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("REMASTER_COMPILE_BACKGROUND", "0")
    return tmp_path / "cache" / "compiled"


def run(stage: Stage, image: np.ndarray, **options):
    options = {"device": "cpu", "precision": "fp32", "compile_backend": "export", **options}
    return Remasterer([stage], **options).run_image(io.load(image))


def test_the_option_is_three_way_everywhere():
    assert PipelineOptions().compile == "auto"
    assert PipelineOptions(compile=" ON ").compile == "on"
    for wrong in (True, "yes", None):
        with pytest.raises(UsageError, match="'auto', 'on' or 'off'"):
            PipelineOptions(compile=wrong)
    assert PipelineOptions(tile=0).compile == "auto"  # auto with no tiles: simply eager
    with pytest.raises(UsageError, match="fixed size"):
        PipelineOptions(tile=0, compile="on")


def test_auto_without_an_artifact_runs_exactly_as_off_and_builds_nothing_here(cache):
    image = photo(40, 56)
    stage = TinyNetwork()
    auto = run(stage, image, compile="auto")
    off = run(TinyNetwork(), image, compile="off")
    assert torch.equal(auto.pixels, off.pixels)
    assert auto.meta.extras["stages"][0]["compiled"] == "eager" and stage.eager_calls == 1  # one call: not tiled
    assert ArtifactStore(cache).records() == []


def test_on_builds_once_records_it_privately_and_later_pipelines_load_it(cache):
    image = photo(40, 56)
    first = run(TinyNetwork(), image, compile="on")
    ran = first.meta.extras["stages"][0]
    assert ran["compiled"] == "export" and ran["compile_seconds"] > 0
    (record,) = ArtifactStore(cache).records()
    assert record.shape == [1, 3, 48, 64] and record.precision == "fp32" and record.format == "export"
    assert record.cpu == devices.cpu_signature() and record.torch == torch.__version__
    assert oct(cache.stat().st_mode & 0o777) == "0o700"
    assert oct((cache / record.file).stat().st_mode & 0o777) == "0o600"
    manifest = json.loads((cache / "manifest.json").read_text())["artifacts"][record.key]
    assert manifest["sha256"] == record.sha256 and len(record.sha256) == 64

    stage = TinyNetwork()
    second = run(stage, image, compile="auto")  # a later pipeline (a later process): from its first image
    again = second.meta.extras["stages"][0]
    assert again["compiled"] == "export" and "compile_seconds" not in again and stage.eager_calls == 0
    assert again["artifact"] == str(cache / record.file)
    assert torch.equal(second.pixels, first.pixels)
    eager = io.to_numpy(run(TinyNetwork(), image, compile="off"))
    # Padded by repeating the edge at the bottom/right (40 -> 48, 56 -> 64), where eager sees zeros: the last
    # pixels within the network's reach (2 input pixels: 4 output pixels) differ, the rest is eager's, to rounding.
    inner = np.abs(io.to_numpy(second).astype(int) - eager.astype(int))[:-4, :-4]
    assert inner.max() <= 1


def test_an_image_smaller_than_the_window_is_padded_to_a_multiple_of_16_then_cropped(cache):
    image = photo(21, 35)
    result = run(TinyNetwork(), image, compile="on", tile=64)
    assert result.pixels.shape[-2:] == (42, 70)
    (record,) = ArtifactStore(cache).records()
    assert record.shape == [1, 3, 32, 48]
    # Larger than the window: fixed windows of the tile's size (64 + overlap, rounded to 16) on that axis.
    run(TinyNetwork(), photo(100, 30), compile="on", tile=64)
    shapes = sorted(r.shape[-2:] for r in ArtifactStore(cache).records())
    assert shapes == [[32, 48], [80, 32]]


def test_each_network_shape_and_precision_has_its_own_key():
    base = dict(fmt="export", stage="s", identity="a", shape=(1, 3, 32, 32), dtype=torch.float32,
                device=torch.device("cpu"))
    keys = {artifact_key(**base), artifact_key(**{**base, "identity": "b"}),
            artifact_key(**{**base, "shape": (1, 3, 32, 48)}), artifact_key(**{**base, "dtype": torch.bfloat16}),
            artifact_key(**{**base, "fmt": "inductor"})}
    assert len(keys) == 5


def test_the_cpu_in_the_key_is_the_real_one_not_the_simulated_choice(monkeypatch):
    real = devices.cpu_signature()
    monkeypatch.setenv(devices.CPU_ISA_ENV, "AMX")
    assert devices.cpu_signature() == real


def test_a_changed_artifact_is_refused_removed_and_built_again(cache, caplog):
    image = photo(32, 32)
    run(TinyNetwork(), image, compile="on")
    (record,) = ArtifactStore(cache).records()
    path = cache / record.file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    stage = TinyNetwork()
    with caplog.at_level(logging.WARNING, logger="remaster"):
        auto = run(stage, image, compile="auto")
    assert auto.meta.extras["stages"][0]["compiled"] == "eager" and stage.eager_calls == 1
    assert any("does not match its recorded sha256" in r.getMessage() for r in caplog.records)
    assert not path.exists() and ArtifactStore(cache).records() == []
    rebuilt = run(TinyNetwork(), image, compile="on")
    assert rebuilt.meta.extras["stages"][0]["compiled"] == "export" and len(ArtifactStore(cache).records()) == 1


def test_a_file_the_manifest_does_not_name_is_never_loaded(cache):
    image = photo(32, 32)
    run(TinyNetwork(), image, compile="on")
    store = ArtifactStore(cache)
    (record,) = store.records()
    store.remove([record.key])
    assert not (cache / record.file).exists()
    stranger = TinyNetwork(identity="someone else's")  # same shapes, another network: its artifact...
    run(stranger, image, compile="on")
    (other,) = store.records()
    shutil.copy(cache / other.file, cache / record.file)  # ...put where the first one's would be
    stage = TinyNetwork()
    result = run(stage, image, compile="auto")
    assert result.meta.extras["stages"][0]["compiled"] == "eager" and stage.eager_calls == 1


def test_writable_by_others_is_refused(cache):
    image = photo(32, 32)
    run(TinyNetwork(), image, compile="on")
    (record,) = ArtifactStore(cache).records()
    os.chmod(cache / record.file, 0o666)
    stage = TinyNetwork()
    assert run(stage, image, compile="auto").meta.extras["stages"][0]["compiled"] == "eager"
    assert stage.eager_calls == 1 and ArtifactStore(cache).records() == []


def test_a_folder_opened_to_others_is_made_private_again(cache):
    run(TinyNetwork(), photo(32, 32), compile="on")
    os.chmod(cache, 0o777)
    stage = TinyNetwork()
    assert run(stage, photo(32, 32), compile="auto").meta.extras["stages"][0]["compiled"] == "export"
    assert oct(cache.stat().st_mode & 0o777) == "0o700"


def test_without_a_cpp_compiler_auto_stays_eager_and_says_so_once(cache, monkeypatch, caplog):
    import remaster.pipeline.artifact_run as artifact_run

    monkeypatch.setenv("CXX", "no-such-compiler")
    monkeypatch.setenv("PATH", str(cache.parent))  # neither g++ nor c++ on it
    monkeypatch.setattr(artifact_run, "_told_no_compiler", [])
    stage = TinyNetwork()
    with caplog.at_level(logging.WARNING, logger="remaster"):
        first = run(stage, photo(32, 32), compile="auto", compile_backend="inductor")
        run(stage, photo(32, 32), compile="auto", compile_backend="inductor")
    ran = first.meta.extras["stages"][0]
    assert ran["compiled"] == "eager" and ran["compile_skipped"] == "no C++ compiler"
    assert len([r for r in caplog.records if "no C++ compiler" in r.getMessage()]) == 1
    assert ArtifactStore(cache).records() == []


def test_a_failing_build_warns_once_and_runs_eagerly(cache, caplog):
    class Unexportable(TinyNetwork):
        def compile_target(self) -> CompileTarget:
            def broken() -> torch.nn.Module:
                raise RuntimeError("cannot be exported")
            return CompileTarget(identity="broken", network=broken)

    stage = Unexportable()
    with caplog.at_level(logging.WARNING, logger="remaster"):
        first = run(stage, photo(32, 32), compile="on")
    assert first.meta.extras["stages"][0]["compile_failed"] is True
    assert first.meta.extras["stages"][0]["compiled"] == "eager"
    assert [r for r in caplog.records if "cannot be exported" in r.getMessage()]
    assert torch.equal(first.pixels, run(TinyNetwork(), photo(32, 32), compile="off").pixels)


def test_auto_builds_in_a_background_process_and_switches_when_it_is_ready(cache, monkeypatch):
    monkeypatch.setenv("REMASTER_COMPILE_BACKGROUND", "1")
    image = photo(32, 32)
    stage = TinyNetwork()
    remasterer = Remasterer([stage], device="cpu", precision="fp32", compile="auto", compile_backend="export")
    started = time.monotonic()
    first = remasterer.run_image(io.load(image))
    assert time.monotonic() - started < 10  # it did not wait for the build
    assert first.meta.extras["stages"][0]["compiled"] == "eager"
    assert first.meta.extras["stages"][0]["compile_pending"] is True
    store = ArtifactStore(cache)
    deadline = time.monotonic() + 120
    while not store.records() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert store.records(), (cache / "build.log").read_text()
    later = None
    deadline = time.monotonic() + 10  # the pipeline looks again every 2 s
    while time.monotonic() < deadline:
        later = remasterer.run_image(io.load(image))
        if later.meta.extras["stages"][0]["compiled"] == "export":
            break
        time.sleep(0.5)
    assert later is not None and later.meta.extras["stages"][0]["compiled"] == "export"
    assert not list(cache.glob(".*.network.pt")) and not list(cache.glob(".*.request.json"))  # handed over, gone


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_compiled_and_eager_agree_in_each_precision(cache, precision):
    image = photo(48, 64, seed=3)  # sides of multiples of 16: nothing padded
    eager = run(TinyNetwork(), image, compile="off", precision=precision)
    compiled = run(TinyNetwork(), image, compile="on", precision=precision)
    assert compiled.meta.extras["stages"][0]["compiled"] == "export"
    assert compiled.meta.extras["stages"][0]["precision"] == precision
    # bf16: eager casts the weights per convolution under autocast, the artifact holds them in bf16: equal roundings
    assert psnr(io.to_numpy(compiled), io.to_numpy(eager)) >= 45


def test_cuda_and_in_process_backends_do_not_use_artifacts(cache):
    counting: list[int] = []

    def backend(graph, example_inputs):
        counting.append(1)
        return graph.forward

    torch._dynamo.reset()
    result = run(TinyNetwork(), photo(32, 32), compile="on", compile_backend=backend, tile=8)
    torch._dynamo.reset()
    assert counting and result.meta.extras["stages"][0]["compiled"] == "backend"
    assert ArtifactStore(cache).records() == []


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="AOTInductor needs a C++ compiler (g++)")
def test_a_real_aotinductor_package_is_built_loaded_and_agrees(cache):
    image = photo(32, 32, seed=9)  # nothing padded
    eager = run(TinyNetwork(), image, compile="off")
    built = run(TinyNetwork(), image, compile="on", compile_backend="inductor")
    assert built.meta.extras["stages"][0]["compiled"] == "inductor"
    (record,) = ArtifactStore(cache).records()
    assert record.format == "inductor" and record.file.endswith(".pt2")
    stage = TinyNetwork()
    loaded = run(stage, image, compile="auto", compile_backend="inductor")
    assert loaded.meta.extras["stages"][0]["compiled"] == "inductor" and stage.eager_calls == 0
    assert psnr(io.to_numpy(loaded), io.to_numpy(eager)) >= 45


def test_one_background_build_at_a_time_and_the_next_shape_is_asked_for_afterwards(cache, monkeypatch):
    from remaster.weights.artifacts import ANY_BUILD

    monkeypatch.setenv("REMASTER_COMPILE_BACKGROUND", "1")
    remasterer = Remasterer([TinyNetwork()], device="cpu", precision="fp32", compile="auto", compile_backend="export")
    store = ArtifactStore(cache)
    remasterer.run_image(io.load(photo(32, 32)))
    held = store.try_lock(ANY_BUILD)  # the builder took the slot with it: nothing else can start meanwhile
    assert held is None
    second = remasterer.run_image(io.load(photo(48, 32)))
    assert second.meta.extras["stages"][0]["compile_pending"] is True
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the second shape is asked for once the first build is done
        if remasterer.run_image(io.load(photo(48, 32))).meta.extras["stages"][0]["compiled"] == "export":
            break
        time.sleep(0.5)
    assert sorted(r.shape[-2] for r in store.records()) == [32, 48], (cache / "build.log").read_text()


def test_the_cache_command_lists_and_removes_artifacts(cache, capsys):
    from remaster.cli import main

    assert main(["cache", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    run(TinyNetwork(), photo(32, 32), compile="on")
    run(TinyNetwork(), photo(48, 32), compile="on")
    assert main(["cache", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["stage"], r["shape"], r["precision"], r["format"]) for r in listed] == [
        ("tinynetwork", [1, 3, 32, 32], "fp32", "export"), ("tinynetwork", [1, 3, 48, 32], "fp32", "export")]
    assert all(Path(r["path"]).is_file() and r["build_seconds"] > 0 and r["sha256"] for r in listed)
    assert main(["cache", "list"]) == 0
    out, err = capsys.readouterr()
    assert "tinynetwork  1x3x32x32  fp32  export" in out and "2 artifact(s)" in err
    assert main(["cache", "remove", "0000000000ff"]) == 1
    assert "no compiled artifact has the key 0000000000ff" in capsys.readouterr().err
    assert main(["cache", "remove", listed[0]["key"][:12]]) == 0
    assert not Path(listed[0]["path"]).exists() and Path(listed[1]["path"]).exists()
    (cache / ".4242.leftover.pt2").write_bytes(b"a build killed mid-way")
    assert main(["cache", "remove", "--all"]) == 0
    assert "removed 1 compiled artifact(s)" in capsys.readouterr().err
    assert ArtifactStore(cache).records() == [] and not list(cache.glob("*.pt2")) and not list(cache.glob(".*.pt2"))
    assert main(["cache", "path"]) == 0 and capsys.readouterr().out.strip() == str(cache)


def test_the_cli_takes_compile_auto_on_off_and_reports_what_ran(cache, tmp_path, capsys):
    from PIL import Image as PILImage

    from remaster.cli import main

    source = tmp_path / "in.png"
    PILImage.fromarray(photo(40, 48)).save(source)
    assert main(["upscale", str(source), "-o", str(tmp_path / "a.png"), "--model", "realesr-animevideov3",
                 "--device", "cpu", "--precision", "fp32", "--compile", "on", "--compile-backend", "export",
                 "--json"]) == 0
    ran = json.loads(capsys.readouterr().out)["items"][0]["stages"][0]
    assert ran["compiled"] == "export" and ran["compile_seconds"] > 0 and ran["artifact"].endswith(".pt2")
    assert main(["upscale", str(source), "-o", str(tmp_path / "b.png"), "--model", "realesr-animevideov3",
                 "--device", "cpu", "--precision", "fp32", "--compile", "off", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["items"][0]["stages"][0].get("compiled") is None
    assert main(["upscale", str(source), "-o", str(tmp_path / "c.png"), "--compile", "sometimes"]) == 2
    assert "--compile: invalid choice" in capsys.readouterr().err


def test_under_tile_auto_a_side_up_to_1024_runs_whole_and_a_longer_one_in_equal_windows(cache):
    from remaster.pipeline.artifact_run import compiled_tile

    assert compiled_tile(300, 200, 72, 16) == 304  # whole: one window of the padded image
    assert compiled_tile(1024, 10, 72, 16) == 1024
    tile = compiled_tile(2500, 1000, 72, 16)  # three windows of at most 1024 along 2512
    assert tile == 848 and tile + 72 <= 1024 and 3 * tile >= 2512
    result = run(TinyNetwork(), photo(40, 1100), compile="on")
    assert result.pixels.shape[-2:] == (80, 2200)
    (record,) = ArtifactStore(cache).records()
    assert record.shape == [1, 3, 48, 576]  # 1104 in two windows: a tile of 552 (560 in 16s) + 2 x 3 context, in 16s
    eager = io.to_numpy(run(TinyNetwork(), photo(40, 1100), compile="off")).astype(int)
    assert np.abs(io.to_numpy(result).astype(int) - eager)[:-4, :-4].max() <= 1  # the padded edges aside


def test_a_build_waiting_for_a_busy_run_starts_when_it_ends_or_idles():
    import subprocess
    import sys

    from remaster.pipeline.artifact_build import wait_until_quiet

    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    spin = "import time\nend = time.time() + 1.5\nwhile time.time() < end: pass"
    busy = subprocess.Popen([sys.executable, "-c", spin])
    try:
        started = time.monotonic()
        wait_until_quiet(idle.pid, every=0.3)
        assert time.monotonic() - started < 5  # idle: at once (one look)
        started = time.monotonic()
        wait_until_quiet(busy.pid, every=0.3)
        assert time.monotonic() - started >= 0.6  # waited while it computed
        busy.wait(10)
        started = time.monotonic()
        wait_until_quiet(busy.pid, every=0.3)
        assert time.monotonic() - started < 1  # ended: no wait
    finally:
        idle.kill()
        busy.kill()
        idle.wait(10)


def test_the_background_builder_refuses_a_network_file_that_is_not_the_one_handed_to_it(cache):
    import subprocess
    import sys

    store = ArtifactStore(cache)
    folder = store.ensure_folder()
    network_file = folder / ".handed.network.pt"
    torch.save(_network(), network_file)
    os.chmod(network_file, 0o600)
    request = folder / ".handed.request.json"
    key = "0" * 64
    request.write_text(json.dumps({"network": str(network_file), "format": "export", "stage": "tinynetwork",
                                   "network_file": {"sha256": "f" * 64, "size": network_file.stat().st_size},
                                   "shape": [1, 3, 16, 16], "precision": "fp32", "store": str(cache), "key": key}))
    builder = subprocess.run([sys.executable, "-m", "remaster.pipeline.artifact_build", str(request)],
                             capture_output=True, text=True, timeout=120)  # its own process: it lowers its priority
    assert builder.returncode == 1 and "does not match its recorded sha256" in builder.stdout  # loaded nothing
    assert store.records() == [] and not network_file.exists() and not request.exists()


def _hand_over(cache: Path, modules: list[str], key: str = "1" * 64) -> tuple[Path, Path, str]:
    """A network file and a request as start_background_build writes them (the right sha256), naming ``modules``."""
    import hashlib

    folder = ArtifactStore(cache).ensure_folder()
    network_file = folder / ".handed.network.pt"
    torch.save(_network(), network_file)
    os.chmod(network_file, 0o600)
    data = network_file.read_bytes()
    request = folder / ".handed.request.json"
    request.write_text(json.dumps({"network": str(network_file), "format": "export", "stage": "tinynetwork",
                                   "network_file": {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)},
                                   "modules": modules, "shape": [1, 3, 16, 16], "precision": "fp32",
                                   "store": str(cache), "key": key}))
    return network_file, request, key


def _build(request: Path) -> subprocess.CompletedProcess:
    import sys

    return subprocess.run([sys.executable, "-m", "remaster.pipeline.artifact_build", str(request)],
                          capture_output=True, text=True, timeout=120)


def test_the_background_builder_unpickles_only_the_module_classes_it_was_told_of(cache):
    names = ["torch.nn.modules.conv:Conv2d", "torch.nn.modules.activation:LeakyReLU",
             "torch.nn.modules.container:Sequential", "torch.nn.modules.pixelshuffle:PixelShuffle"]
    network_file, request, key = _hand_over(cache, names)
    assert _build(request).returncode == 0 and ArtifactStore(cache).verified(key) is not None  # the real hand-over
    network_file, request, key = _hand_over(cache, names[:-1], "2" * 64)  # PixelShuffle is in the file, not allowed
    builder = _build(request)
    assert builder.returncode != 0 and "PixelShuffle" in builder.stderr  # weights_only refused it: nothing built
    assert ArtifactStore(cache).verified(key) is None and not network_file.exists() and not request.exists()


def test_the_background_builder_refuses_a_request_naming_anything_but_a_module_class(cache):
    network_file, request, key = _hand_over(cache, ["torch.nn.modules.conv:Conv2d", "os:system"])
    builder = _build(request)
    assert builder.returncode == 1 and "names os:system, which is not a torch.nn.Module class" in builder.stdout
    assert ArtifactStore(cache).verified(key) is None and not network_file.exists() and not request.exists()
