"""The device name ``vulkan[:N]`` in the core, without a Vulkan runtime: parsing, the ``auto`` choice, precision,
and a pipeline whose Vulkan devices a test plugin reports (the real path through ncnn:
plugins/remaster-realesrgan/tests/test_vulkan.py)."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
import torch

from remaster import Remasterer, Stage, hookimpl
from remaster.errors import UsageError
from remaster.pipeline.devices import choose_precision, describe_target, parse_device, pick_vulkan, resolve_device
from remaster.plugin import StageInfo, StageKind, StageSpec, VulkanDevice
from remaster.plugin.host import PluginHost

CPU = torch.device("cpu")
LAVAPIPE = VulkanDevice(0, "llvmpipe (LLVM 15.0.6, 256 bits)", "cpu", fp16=True)
SWIFTSHADER = VulkanDevice(1, "SwiftShader Device (Subzero)", "other")
RADEON = VulkanDevice(2, "AMD Radeon RX 7600 (RADV NAVI33)", "discrete", fp16=True, memory_bytes=8 * 2**30)
INTEL = VulkanDevice(3, "Intel(R) UHD Graphics 620 (KBL GT2)", "integrated", fp16=True)
OLD_GPU = VulkanDevice(0, "an old GPU", "discrete", fp16=False)


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def listing(*devices: VulkanDevice):
    return lambda: devices


def no_loader():
    raise UsageError("no Vulkan loader on this machine", hint="install libvulkan1")


# --- names -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "parsed"), [("vulkan", ("vulkan", None)), ("vulkan:1", ("vulkan", 1)),
                                              (" Vulkan:0 ", ("vulkan", 0)), ("auto", ("auto", None)),
                                              ("cuda:2", ("cuda", 2)), ("cpu", ("cpu", None))])
def test_device_names_parse(name, parsed):
    assert parse_device(name) == parsed


@pytest.mark.parametrize("name", ["vulkan:x", "vulkan:-1", "vulkan1", "vk", "vulkan:", "auto:1", "metal"])
def test_bad_vulkan_names(name):
    with pytest.raises(UsageError, match="unknown device") as info:
        parse_device(name)
    assert "vulkan:N" in (info.value.hint or "")


def test_a_vulkan_pipeline_keeps_its_tensors_on_the_cpu():
    assert resolve_device("vulkan") == CPU
    assert resolve_device("vulkan:3") == CPU


def test_the_device_value():
    assert str(RADEON) == "vulkan:2"
    assert LAVAPIPE.software and SWIFTSHADER.software and not RADEON.software
    assert RADEON.real_gpu and INTEL.real_gpu and not LAVAPIPE.real_gpu
    assert not VulkanDevice(0, "a VM's GPU", "virtual").real_gpu
    assert RADEON.describe() == "vulkan:2 (AMD Radeon RX 7600 (RADV NAVI33), discrete GPU, 8.0 GiB, fp16)"
    assert "CPU implementation" in LAVAPIPE.describe()
    assert describe_target(CPU, RADEON).startswith("vulkan:2 (AMD Radeon")


# --- which device ----------------------------------------------------------------------------------------------------


def test_auto_never_picks_a_cpu_vulkan(no_cuda):
    assert pick_vulkan("auto", listing(LAVAPIPE, SWIFTSHADER), runs_on_vulkan=True) is None


def test_auto_picks_a_real_gpu_discrete_first(no_cuda):
    assert pick_vulkan("auto", listing(LAVAPIPE, INTEL, RADEON), runs_on_vulkan=True) == RADEON
    assert pick_vulkan("auto", listing(LAVAPIPE, INTEL), runs_on_vulkan=True) == INTEL


def test_auto_asks_nothing_without_a_vulkan_stage_or_with_cuda(monkeypatch):
    def never():
        raise AssertionError("the Vulkan devices were listed")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_vulkan("auto", never, runs_on_vulkan=False) is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_vulkan("auto", never, runs_on_vulkan=True) is None
    assert pick_vulkan("cpu", never, runs_on_vulkan=True) is None


def test_remaster_vulkan_auto_0_stops_auto_from_looking_but_not_an_explicit_vulkan(no_cuda, monkeypatch):
    def never():
        raise AssertionError("the Vulkan devices were listed")

    monkeypatch.setenv("REMASTER_VULKAN_AUTO", "0")
    assert pick_vulkan("auto", never, runs_on_vulkan=True) is None
    assert pick_vulkan("vulkan", listing(LAVAPIPE), runs_on_vulkan=True) == LAVAPIPE


def test_auto_keeps_the_cpu_where_vulkan_cannot_be_used(no_cuda):
    assert pick_vulkan("auto", no_loader, runs_on_vulkan=True) is None


def test_explicit_vulkan_takes_a_cpu_implementation():
    assert pick_vulkan("vulkan", listing(LAVAPIPE), runs_on_vulkan=True) == LAVAPIPE
    assert pick_vulkan("vulkan:2", listing(LAVAPIPE, SWIFTSHADER, RADEON), runs_on_vulkan=False) == RADEON


def test_explicit_vulkan_without_a_loader_says_why():
    with pytest.raises(UsageError, match="no Vulkan loader"):
        pick_vulkan("vulkan", no_loader, runs_on_vulkan=True)


def test_explicit_vulkan_without_a_device():
    with pytest.raises(UsageError, match="sees no device") as info:
        pick_vulkan("vulkan", listing(), runs_on_vulkan=True)
    assert "mesa-vulkan-drivers" in str(info.value)


def test_a_vulkan_index_that_is_not_there():
    with pytest.raises(UsageError, match=r"'vulkan:5' does not exist: there are 2 Vulkan devices") as info:
        pick_vulkan("vulkan:5", listing(LAVAPIPE, SWIFTSHADER), runs_on_vulkan=True)
    assert info.value.hint == "use vulkan:0 to vulkan:1"


# --- precision on Vulkan ---------------------------------------------------------------------------------------------

ALL = ("fp32", "bf16", "fp16")


def test_auto_precision_on_vulkan():
    assert choose_precision("auto", CPU, ALL, vulkan=RADEON).name == "fp16"
    assert choose_precision("auto", CPU, ALL, vulkan=RADEON, bit_depth=16).name == "fp32"
    assert choose_precision("auto", CPU, ALL, vulkan=OLD_GPU).name == "fp32"
    assert choose_precision("auto", CPU, ("fp32", "bf16"), vulkan=RADEON).name == "fp32"


def test_explicit_precision_on_vulkan():
    assert choose_precision("fp16", CPU, ALL, vulkan=RADEON).name == "fp16"  # fp16 on a CPU tensor device: fine
    assert choose_precision("fp32", CPU, ALL, vulkan=RADEON).name == "fp32"
    choice = choose_precision("fp16", CPU, ALL, vulkan=OLD_GPU)
    assert choice.name == "fp32" and choice.note == "vulkan:0 (an old GPU) has no fp16; runs in fp32"


def test_bf16_is_refused_on_vulkan():
    with pytest.raises(UsageError, match=r"bf16 does not run on Vulkan \(vulkan:2\): ncnn computes in fp32 or fp16"):
        choose_precision("bf16", CPU, ALL, vulkan=RADEON)


# --- a pipeline ------------------------------------------------------------------------------------------------------


class Recorder(Stage):
    """Returns its input; records where it was prepared and run."""

    seen: list[tuple[str, object, object, str]] = []

    def prepare(self, ctx):
        Recorder.seen.append(("prepare", ctx.device, ctx.vulkan, ctx.precision))

    def run(self, pixels, ctx):
        Recorder.seen.append(("run", pixels.device, ctx.vulkan, str(ctx.dtype)))
        return pixels.clone()


class FakeVulkan:
    """A plugin with a Vulkan stage and a list of Vulkan devices (what ncnn would see)."""

    def __init__(self, *devices: VulkanDevice, fails: bool = False):
        self.devices = devices
        self.fails = fails

    @hookimpl
    def remaster_register_stages(self, register):
        register(StageSpec(name="vk-net", kind=StageKind.FILTER, factory=lambda **_: Recorder(),
                           info=StageInfo(in_channels=(3,), dtypes=ALL, vulkan=True)))

    @hookimpl
    def remaster_vulkan_devices(self):
        if self.fails:
            no_loader()
        return self.devices


def host_with(*devices: VulkanDevice, fails: bool = False) -> PluginHost:
    return PluginHost(load_entry_points=False, extra_plugins=(FakeVulkan(*devices, fails=fails),)).ensure_loaded()


def test_a_vulkan_pipeline_runs_its_vulkan_stage_there_and_the_rest_on_the_cpu(caplog):
    Recorder.seen.clear()
    with caplog.at_level(logging.WARNING, logger="remaster.pipeline"):
        pipeline = Remasterer("vk-net | bicubic(scale=2)", host=host_with(LAVAPIPE, RADEON), device="vulkan:2",
                              precision="fp16")
    assert pipeline.vulkan == RADEON and pipeline.device == CPU
    assert "vulkan:2" in repr(pipeline)
    notes = [record.getMessage() for record in caplog.records]
    assert notes == ["bicubic: does not run on Vulkan; runs on the CPU"]
    out = pipeline.run(torch.rand(1, 3, 8, 8))
    assert out.shape == (1, 3, 16, 16)
    assert Recorder.seen == [("prepare", CPU, RADEON, "fp16"), ("run", CPU, RADEON, "torch.float16")]
    image = pipeline.run_image(pipeline_image())
    assert [(ran["device"], ran["precision"]) for ran in image.meta.extras["stages"]] == [
        ("vulkan:2", "fp16"), ("cpu", "fp32")]


def pipeline_image():
    from remaster import io

    return io.load(torch.rand(1, 3, 8, 8))


def test_a_sub_pipeline_of_a_vulkan_stage_inherits_the_vulkan_device():
    from remaster.pipeline.remasterer import prepare_context

    host = host_with(RADEON)
    ctx = prepare_context(CPU, torch.float16, host=host, vulkan=RADEON)
    assert ctx.vulkan == RADEON
    assert ctx.pipeline("vk-net").vulkan == RADEON  # type: ignore[attr-defined]
    # A stage on the CPU in a Vulkan pipeline (a face stage) gets no device, but its own pipeline runs on Vulkan.
    ctx = prepare_context(CPU, torch.float32, host=host, pipeline_vulkan=RADEON)
    assert ctx.vulkan is None
    assert ctx.pipeline("vk-net").vulkan == RADEON  # type: ignore[attr-defined]
    assert prepare_context(CPU, torch.float32, host=host).pipeline("vk-net").vulkan is None  # type: ignore[attr-defined]


def test_auto_on_a_machine_with_only_lavapipe_keeps_the_cpu(no_cuda):
    pipeline = Remasterer("vk-net", host=host_with(LAVAPIPE), device="auto")
    assert pipeline.vulkan is None
    assert pipeline.stage_plan() == [{"stage": "vk-net", "device": "cpu", "precision": "fp32"}]


def test_auto_with_a_gpu_takes_it(no_cuda):
    pipeline = Remasterer("vk-net", host=host_with(LAVAPIPE, INTEL), device="auto")
    assert pipeline.vulkan == INTEL
    assert pipeline.stage_plan() == [{"stage": "vk-net", "device": "vulkan:3", "precision": "fp16"}]


def test_bf16_on_vulkan_is_refused_before_any_work():
    Recorder.seen.clear()
    with pytest.raises(UsageError, match="vk-net: bf16 does not run on Vulkan") as info:
        Remasterer("vk-net", host=host_with(LAVAPIPE), device="vulkan", precision="bf16")
    assert "--precision fp32" in info.value.for_cli()
    assert Recorder.seen == []


def test_no_vulkan_loader_is_one_clear_line_before_any_work(no_cuda):
    host = host_with(fails=True)
    with pytest.raises(UsageError, match="no Vulkan loader on this machine"):
        Remasterer("vk-net", host=host, device="vulkan")
    assert Remasterer("vk-net", host=host, device="auto").vulkan is None


def test_no_plugin_runs_anything_on_vulkan():
    host = PluginHost(load_entry_points=False).ensure_loaded()
    with pytest.raises(UsageError, match="no installed plugin runs stages on Vulkan") as info:
        Remasterer("bicubic(scale=2)", host=host, device="vulkan")
    assert "remaster-realesrgan[vulkan]" in str(info.value)


def test_the_core_imports_no_vulkan_runtime():
    code = ("import sys\n"
            "from remaster.pipeline.devices import parse_device, pick_vulkan\n"
            "from remaster.pipeline.remasterer import Remasterer\n"
            "from remaster.cli import build_parser\n"
            "assert parse_device('vulkan:1') == ('vulkan', 1)\n"
            "build_parser()\n"
            "print(sorted(name for name in sys.modules if name.split('.')[0] in ('ncnn', 'remaster_realesrgan')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "'ncnn'" not in done.stdout and "remaster_realesrgan.vulkan" not in done.stdout


def test_work_that_only_pytorch_does_refuses_vulkan():
    with pytest.raises(UsageError, match="fine-tuning runs with PyTorch, which does not compute on 'vulkan:1'"):
        resolve_device("vulkan:1", torch_only="fine-tuning")
    assert resolve_device("cpu", torch_only="fine-tuning") == CPU


class Shapes(Stage):
    """Doubles its input (nearest); records each input's size; "runs out of memory" above ``limit`` pixels a side."""

    sizes: list[tuple[int, int]] = []
    limit = 10_000

    def run(self, pixels, ctx):
        Shapes.sizes.append(tuple(pixels.shape[-2:]))
        if max(pixels.shape[-2:]) > Shapes.limit:
            raise MemoryError("out of memory on vulkan:0 (simulated)")
        return pixels.repeat_interleave(2, -2).repeat_interleave(2, -1)


class ShapesPlugin(FakeVulkan):
    @hookimpl
    def remaster_register_stages(self, register):
        register(StageSpec(name="vk-x2", kind=StageKind.UPSCALER, factory=lambda **_: Shapes(),
                           info=StageInfo(scale=2, in_channels=(3,), tile_overlap=8, vulkan=True)))


#: A GPU whose driver does not say how much memory it has.
UNSAID = VulkanDevice(2, "a GPU that keeps its memory to itself", "discrete", fp16=True)


def shapes_pipeline(device: VulkanDevice = UNSAID, **options) -> Remasterer:
    host = PluginHost(load_entry_points=False, extra_plugins=(ShapesPlugin(device),)).ensure_loaded()
    return Remasterer("vk-x2", host=host, device="vulkan:2", **options)


def test_auto_tiles_on_vulkan_are_sized_from_the_devices_memory():
    from remaster.pipeline.tiling import vulkan_tile_size

    assert vulkan_tile_size((1, 3, 600, 300), memory_bytes=8 * 2**30, scale=4) == 0  # fits whole
    small = vulkan_tile_size((1, 3, 4000, 3000), memory_bytes=2**30, scale=4, overlap=24)
    large = vulkan_tile_size((1, 3, 4000, 3000), memory_bytes=8 * 2**30, scale=4, overlap=24)
    assert 64 <= small < large <= 2048 and small % 32 == 0 and large % 32 == 0
    assert vulkan_tile_size((1, 3, 4000, 3000), memory_bytes=None, scale=4) == 256  # not said: a fixed size
    Shapes.sizes.clear()
    image = torch.rand(1, 3, 600, 300)
    out = shapes_pipeline(RADEON, precision="fp32").run(image)  # 8 GiB: one call for the whole image
    assert torch.allclose(out, image.repeat_interleave(2, -2).repeat_interleave(2, -1), atol=1e-6)
    assert Shapes.sizes == [(600, 300)]


def test_auto_tiles_on_vulkan_are_a_fixed_size_where_the_memory_is_not_said():
    from remaster.pipeline.tiling import VULKAN_TILE

    Shapes.sizes.clear()
    image = torch.rand(1, 3, 600, 300)
    out = shapes_pipeline(precision="fp32").run(image)
    assert torch.allclose(out, image.repeat_interleave(2, -2).repeat_interleave(2, -1), atol=1e-6)  # blended tiles
    assert len(Shapes.sizes) > 1 and max(max(size) for size in Shapes.sizes) <= VULKAN_TILE + 2 * 8


def test_out_of_memory_on_vulkan_halves_the_tile(monkeypatch, caplog):
    Shapes.sizes.clear()
    monkeypatch.setattr(Shapes, "limit", 100)
    image = torch.rand(1, 3, 300, 300)
    with caplog.at_level(logging.WARNING):
        out = shapes_pipeline(precision="fp32").run(image)
    assert torch.allclose(out, image.repeat_interleave(2, -2).repeat_interleave(2, -1), atol=1e-6)  # blended tiles
    assert max(Shapes.sizes[0]) > 100 and max(Shapes.sizes[-1]) <= 100  # tried 256, ended on smaller tiles
    assert "out of memory with tile size 256" in caplog.text and "retrying with tile size 64" in caplog.text


def test_listings_say_which_stages_run_on_vulkan():
    host = host_with(LAVAPIPE)
    assert host.stages.get("vk-net").as_json()["vulkan"] is True
    assert host.stages.get("bicubic").as_json()["vulkan"] is False


def test_remaster_devices_lists_them_and_says_what_auto_takes(process_host, no_cuda, capsys):
    import json

    from remaster.cli import main

    process_host(host_with(LAVAPIPE, INTEL))
    assert main(["devices", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [device["device"] for device in listed["vulkan"]] == ["vulkan:0", "vulkan:3"]
    assert listed["vulkan"][0]["software"] is True and listed["cuda"] == [] and listed["vulkan_error"] is None
    # The default upscaler of this host (no Real-ESRGAN plugin: lanczos) does not run on Vulkan: auto keeps the CPU.
    assert listed["auto"] == "cpu"
    assert main(["devices"]) == 0
    text = capsys.readouterr().out
    assert "vulkan:0 (llvmpipe (LLVM 15.0.6, 256 bits), CPU implementation, fp16)  (not taken by auto: a CPU " \
           "implementation)" in text
    assert text.rstrip().endswith("auto: cpu (for lanczos)")


def test_remaster_devices_without_vulkan_says_why(process_host, capsys):
    from remaster.cli import main

    process_host(host_with(fails=True))
    assert main(["devices"]) == 0
    assert "vulkan: none (no Vulkan loader on this machine (install libvulkan1))" in capsys.readouterr().out


class FakeDefault(FakeVulkan):
    @hookimpl
    def remaster_register_stages(self, register):
        register(StageSpec(name="realesrgan-x4plus", kind=StageKind.UPSCALER, factory=lambda **_: Recorder(),
                           info=StageInfo(scale=4, in_channels=(3,), dtypes=ALL, vulkan=True)))


def test_remaster_devices_auto_takes_a_gpu_for_a_default_upscaler_on_vulkan(process_host, no_cuda, capsys):
    from remaster.cli import main

    process_host(PluginHost(load_entry_points=False, extra_plugins=(FakeDefault(LAVAPIPE, INTEL),)))
    assert main(["devices"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("auto: vulkan:3 (for realesrgan-x4plus)")


# --- the server ------------------------------------------------------------------------------------------------------


def server_request(app, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None):
    """One request straight into the ASGI app (no socket): its status and JSON body."""
    import asyncio
    import json

    headers = {"host": "127.0.0.1", "authorization": "Bearer token", "content-length": str(len(body)),
               **(headers or {})}
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(key.lower().encode("latin-1"), value.encode("latin-1")) for key, value in headers.items()],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8765)}
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict] = []

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], json.loads(b"".join(message.get("body", b"") for message in sent[1:]))


def planned_on_server(host: PluginHost, device: str, pipeline: str) -> tuple[str, list[dict]]:
    """What ``remaster serve --device DEVICE`` says of its device, and the stages it plans for a job."""
    import io
    import json

    from PIL import Image as PILImage

    from remaster.pipeline.options import PipelineOptions
    from remaster.server.app import ServerConfig, build_app
    from remaster.server.jobs import JobQueue

    app = build_app(ServerConfig(options=PipelineOptions(device=device)), JobQueue(), token="token", origins=set(),
                    host=host)  # the queue's worker is not started: the job stays queued, with its plan
    status, health = server_request(app, "GET", "/v1/health")
    assert status == 200, health
    png = io.BytesIO()
    PILImage.new("RGB", (8, 8)).save(png, format="PNG")
    status, job = server_request(app, "POST", "/v1/jobs", png.getvalue(), {
        "content-type": "image/png", "x-remaster-options": json.dumps({"pipeline": pipeline})})
    assert status == 202, job
    return health["device"], job["stages"]


def test_the_server_gives_its_jobs_the_vulkan_device_it_names():
    """Before, the jobs got the torch device, the CPU for Vulkan: the health said vulkan, the network ran on the CPU
    (the real device: tests/test_server_vulkan.py)."""
    said, stages = planned_on_server(host_with(LAVAPIPE, RADEON), "vulkan:2", "vk-net | bicubic(scale=2)")
    assert said.startswith("vulkan:2 (AMD Radeon RX 7600")
    assert [stage["device"] for stage in stages] == ["vulkan:2", "cpu"]


def test_a_server_on_auto_runs_on_the_gpu_it_took_only_the_pipelines_with_vulkan_stages(no_cuda, caplog):
    host = host_with(LAVAPIPE, INTEL)
    said, stages = planned_on_server(host, "auto", "vk-net")
    assert said.startswith("vulkan:3 (Intel(R) UHD Graphics 620") and stages[0]["device"] == "vulkan:3"
    with caplog.at_level(logging.WARNING, logger="remaster.pipeline"):
        assert planned_on_server(host, "auto", "bicubic")[1] == [{"stage": "bicubic", "device": "cpu",
                                                                  "precision": "fp32"}]
    assert "does not run on Vulkan" not in caplog.text  # no note for a pipeline that was never meant for Vulkan
