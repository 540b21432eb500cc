"""The upscaler stage: a spandrel network with weights from the weights manager."""

from __future__ import annotations

import contextlib
import importlib.metadata
import itertools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from remaster import CompileTarget, PrepareContext, RunContext, Stage, StageError
from remaster.plugin import VulkanDevice
from remaster.weights import WeightsManager, get_manager, load_network, sha256_file

if TYPE_CHECKING:
    from .vulkan import NcnnNetwork

#: spandrel's version, part of a compiled artifact's identity (read without importing spandrel).
_SPANDREL = importlib.metadata.version("spandrel")
#: What the errors of a file spandrel does not know suggest.
_SUPPORTED = "ESRGAN/Real-ESRGAN family .pth and .safetensors files are supported"


def load_descriptor(path: Path, *, expect_scale: int | None = None) -> Any:
    """Load a super-resolution network from a weights file (safely) with spandrel.

    Raises:
        StageError: when spandrel does not recognise the file or it is not an
            image-to-image upscaler with the expected scale.
    """
    return _checked(load_network(path, hint=_SUPPORTED), path, expect_scale=expect_scale)


def _checked(descriptor: Any, path: Path, *, expect_scale: int | None) -> Any:
    """``descriptor`` in eval mode without gradients, once its scale is the expected one."""
    if expect_scale is not None and descriptor.scale != expect_scale:
        raise StageError(f"holds an x{descriptor.scale} network, expected x{expect_scale}", path=path,
                         hint="run 'remaster weights verify' to quarantine it and drop its pin, then fetch or "
                              "import the right file")
    descriptor.model.eval().requires_grad_(False)
    return descriptor


class SpandrelUpscaler(Stage):
    """Runs a super-resolution network at its native scale.

    The pipeline resamples to the requested ``scale``, tiles, pads and handles
    alpha; this class only builds the network once and calls it.

    Args:
        weights: Weights names in order of preference (see ``catalogue.KnownModel``).
        path: A model file to build the network from (for ``--model PATH``).
        descriptor: An already loaded spandrel model (for a ``--model PATH`` whose layout alone said too little).
        native_scale: The network's factor, checked against what the file holds.
        ncnn: The packaged ncnn model of the same network (``"x4plus"``, ...), which runs it when the stage is
            prepared for a Vulkan device (:attr:`PrepareContext.vulkan`); ``None``: there the network file is
            converted for ncnn (ESRGAN and Compact networks: :mod:`remaster_realesrgan.ncnn_export`).
        scale: Requested output factor (used by the pipeline).
        alpha: How alpha passes (used by the pipeline).
    """

    def __init__(self, *, weights: tuple[str, ...] = (), path: Path | None = None, descriptor: Any = None,
                 native_scale: int | None = None, ncnn: str | None = None, **params: Any):
        super().__init__(**params)
        self._ncnn_model = ncnn
        self._vulkan: NcnnNetwork | None = None  # the ncnn network, when prepared for a Vulkan device
        self._weights = weights
        self._path = path
        self._native_scale = native_scale
        self._descriptor: Any = descriptor
        self._progress: ConvolutionProgress | None = None
        self._weights_manager: WeightsManager | None = None
        # The exact float32 weights, kept (on the host) once the network was converted to half weights.
        self._float_weights: dict[str, torch.Tensor] | None = None
        self._identity: str | None = None  # for compiled artifacts: what network this is
        self._prepared: PrepareContext | None = None
        self._file: Path | None = None  # the packaged network's verified file, until the network is built
        self._building = threading.Lock()

    #: run() is one forward pass of the network: Remasterer(compile=True) may compile it.
    compilable = True

    def network_file(self, weights: WeightsManager) -> Path:
        """The file this stage loads: the model file it was given, else the first cached choice, else the last
        producible one.

        Implements :class:`remaster.pipeline.stage.NetworkStage`, which fine-tuning asks (with its run's manager)
        before any pipeline prepares the stage.
        """
        if self._path is not None:
            return self._path
        for name in self._weights:
            if weights.path(name).is_file():
                return weights.ensure(name)
        return weights.ensure(self._weights[-1])

    def weights_path(self, weights: WeightsManager | None = None) -> Path:
        """:meth:`network_file` with ``weights`` defaulting to the manager :meth:`prepare` was given, else the
        process-wide one (kept for callers from before :class:`~remaster.pipeline.stage.NetworkStage`)."""
        return self.network_file(weights or self._weights_manager or get_manager())

    def prepare(self, ctx: PrepareContext) -> None:
        """Check the weights (a missing or damaged file fails here, before any image runs) and note where and how
        the network will run. A model file (``--model PATH``) is loaded now; the packaged networks are built on
        first use, so that a run served entirely by a cached compiled artifact never imports spandrel."""
        self._weights_manager = ctx.weights
        self._prepared = ctx
        vulkan = getattr(ctx, "vulkan", None)
        if vulkan is not None:
            self._prepare_vulkan(ctx, vulkan)
            return
        half = ctx.half_weights and ctx.dtype in (torch.float16, torch.bfloat16)
        # Asked for: weights in the compute precision, and no autocast (the pipeline sees weights_dtype).
        self.weights_dtype = ctx.dtype if half else None
        self._progress = None  # measured with the dtype it runs in
        if self._descriptor is None and self._path is not None:
            self._descriptor = load_descriptor(self._path, expect_scale=self._native_scale)
        if self._descriptor is None:
            self._file = self.network_file(ctx.weights)  # verified: its sha256 is the pinned one
        else:
            self._place(ctx)

    def _prepare_vulkan(self, ctx: PrepareContext, vulkan: VulkanDevice) -> None:
        """Load the network on ``vulkan`` through ncnn (once: the pipeline keeps one prepared object per device and
        precision): a packaged model's own ncnn files, else the model file converted for ncnn on first use and
        cached (:mod:`remaster_realesrgan.converted`). No PyTorch network runs; the pipeline gives host tiles and
        gets host tiles back."""
        from .vulkan import NcnnNetwork, packaged_files

        self.compilable = False  # this instance runs ncnn, which torch cannot compile
        self.weights_dtype = None
        if self._ncnn_model is not None:
            files = packaged_files(self._ncnn_model, stage=self.spec_name)
            self._vulkan = NcnnNetwork(files, vulkan, ctx.precision, stage=self.spec_name)
            return
        from .converted import FOLDER, converted_model

        source = None if self._descriptor is not None and self._path is None else self.network_file(ctx.weights)
        converted = converted_model(ctx.weights.folder / FOLDER, source=source, descriptor=self._file_descriptor,
                                    stage=self.spec_name)
        self._vulkan = NcnnNetwork((converted.param, converted.weights), vulkan, ctx.precision,
                                   stage=self.spec_name, scale=converted.scale, pad_multiple=converted.pad_multiple)

    def _file_descriptor(self) -> Any:
        """The spandrel descriptor as the file holds it (float32, on the CPU), for converting it."""
        if self._descriptor is None:
            assert self._prepared is not None, "prepare() first"
            return load_descriptor(self.network_file(self._prepared.weights), expect_scale=self._native_scale)
        return self._descriptor

    @property
    def spec_name(self) -> str:
        """The stage's name for messages (its spec's, where the registry set one)."""
        spec = getattr(self, "spec", None)
        return str(getattr(spec, "name", None) or "realesrgan")

    def _network(self) -> Any:
        """The spandrel descriptor, built (and placed as :meth:`prepare` said) the first time it is needed."""
        with self._building:
            if self._descriptor is None:
                assert self._prepared is not None, "prepare() first"
                path = self._file or self.network_file(self._prepared.weights)
                descriptor = _checked(load_network(path, hint=_SUPPORTED), path, expect_scale=self._native_scale)
                self._descriptor = descriptor
                self._place(self._prepared)
            return self._descriptor

    def _place(self, ctx: PrepareContext) -> None:
        model = self._descriptor.model
        if self.weights_dtype is not None:
            if self._float_weights is None:
                self._float_weights = {name: value.detach().to("cpu", copy=True)
                                       for name, value in model.state_dict().items()}
            model.to(device=ctx.device, dtype=ctx.dtype, memory_format=torch.channels_last)
        else:
            # Weights stay float32: the pipeline runs us under autocast for bf16/fp16, which keeps
            # accumulations and the output in a safe precision. channels_last is faster on CPU and CUDA.
            model.to(device=ctx.device, dtype=torch.float32, memory_format=torch.channels_last)
            if self._float_weights is not None:  # back from half weights: rounding them up is not exact
                model.load_state_dict(self._float_weights)

    @property
    def descriptor(self) -> Any:
        """The spandrel model descriptor (built now if it was not yet)."""
        return self._network()

    def compile_target(self) -> CompileTarget | None:
        """The network for compiled artifacts, identified by its weights: the pinned sha256 of a packaged network
        (checked by :meth:`prepare`), a model file's own sha256; ``None`` for a network handed over already loaded
        (there is no file to identify it by). Cheap: the network itself is built only if an artifact is."""
        if self._identity is None:
            if self._path is not None:
                digest: str | None = sha256_file(self._path)
            elif self._file is not None and self._weights_manager is not None:
                name = next((n for n in self._weights if self._weights_manager.path(n) == self._file), None)
                digest = self._weights_manager.expected_sha256(name) if name else None
                digest = digest or sha256_file(self._file)
            else:
                return None
            self._identity = f"spandrel-{_SPANDREL}:x{self._native_scale or 0}:{digest}"
        return CompileTarget(identity=self._identity, network=lambda: self._network().model)

    def run(self, pixels: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        if self._vulkan is not None:
            return self._vulkan(pixels)
        descriptor = self._network()
        if self.weights_dtype is not None:
            pixels = pixels.to(self.weights_dtype)
        pixels = pixels.contiguous(memory_format=torch.channels_last)
        if ctx.progress is None or pixels.shape[-2] * pixels.shape[-1] < _PROGRESS_FROM_PIXELS:
            return descriptor(pixels).float()
        if self._progress is None:
            self._progress = ConvolutionProgress(descriptor, pixels)
        with self._progress.reporting(ctx.progress):
            return descriptor(pixels).float()


#: Below this input size a forward pass is quick enough that in-pass progress is not worth its hooks.
_PROGRESS_FROM_PIXELS = 128 * 128


class ConvolutionProgress:
    """Progress inside one forward pass, from the network's convolutions.

    In a fully convolutional network every layer's work grows with the pixel
    count alike, so the share of the work done after each convolution call,
    measured once on a small input, holds for any input size. Transformer
    blocks between convolutions are not counted; the fraction then advances
    in uneven steps, but it still only goes up.

    Args:
        descriptor: The spandrel model.
        like: A tensor of the dtype, device and layout the model will get.
    """

    #: Smallest advance worth a callback (the CLI bar and the server poll do not need more).
    STEP = 0.01

    def __init__(self, descriptor: Any, like: torch.Tensor):
        model = descriptor.model
        self._convolutions = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        costs: list[int] = []

        def measure(module: torch.nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            costs.append(output.numel() * module.weight[0].numel())  # multiply-adds of this call

        size = descriptor.size_requirements
        side = max(32, size.minimum)
        side += -side % max(1, size.multiple_of)
        sample = torch.zeros((1, like.shape[1], side, side), dtype=like.dtype, device=like.device)
        handles = [m.register_forward_hook(measure) for m in self._convolutions]
        try:
            with torch.no_grad():
                descriptor(sample.contiguous(memory_format=torch.channels_last))
        finally:
            for handle in handles:
                handle.remove()
        total = float(sum(costs)) or 1.0
        self.cumulative = list(itertools.accumulate(cost / total for cost in costs))

    @contextlib.contextmanager
    def reporting(self, progress: Callable[[float], None]) -> Iterator[None]:
        """Call ``progress`` with the fraction of the pass done while the block runs."""
        calls = 0
        reported = 0.0

        def advance(*_: Any) -> None:
            nonlocal calls, reported
            fraction = self.cumulative[min(calls, len(self.cumulative) - 1)]
            calls += 1
            if fraction - reported >= self.STEP:
                reported = fraction
                progress(min(fraction, 1.0))

        handles = [m.register_forward_hook(advance) for m in self._convolutions]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
