"""The network being fine-tuned: found by stage name or file, built with spandrel, partly frozen.

Transfer learning keeps the early layers, which detect edges and textures
every image has, and adapts the later ones to the user's domain. ``--freeze``
says which parameters stay fixed:

- ``auto`` (default): RRDBNet (x4plus): the first convolution and the first 2/3 of the RRDB blocks
  (15 of 23); compact (animevideov3): the first half of the convolutions; other architectures: nothing.
- ``none``: train everything.
- ``N`` (an integer): RRDBNet: the first convolution and the first N RRDB blocks; compact: the first N
  convolutions (with their activations).
- a comma-separated list of parameter-name patterns (``fnmatch``), e.g. ``"model.0.*,model.1.sub.[0-9].*"``.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from remaster.errors import UsageError

if TYPE_CHECKING:
    from remaster.plugin.host import PluginHost
    from remaster.weights import WeightsManager

__all__ = ["Generator", "load_generator", "frozen_names", "apply_freeze"]


@dataclass
class Generator:
    """A network to fine-tune.

    Attributes:
        model: The ``torch.nn.Module`` (spandrel's architecture).
        architecture: spandrel's architecture id (``ESRGAN``, ``Compact``, ...).
        scale: The network's factor.
        source: The weights file it came from.
        base: What the user named (a stage name or a path), kept in checkpoints.
    """

    model: torch.nn.Module
    architecture: str
    scale: int
    source: Path
    base: str


def _weights_file(model: str, host: PluginHost | None, weights_manager: WeightsManager | None) -> Path:
    path = Path(model).expanduser()
    if path.is_file():
        return path
    from remaster.pipeline.configured import resolve_spec
    from remaster.pipeline.stage import NetworkStage
    from remaster.plugin.host import get_host
    from remaster.weights import get_manager

    host = host.ensure_loaded() if host is not None else get_host()
    manager = weights_manager if weights_manager is not None else get_manager(host)

    spec = resolve_spec(model, host)  # UnknownStageError with close matches
    stage = spec.load_factory()(**spec.resolve_params({}))
    if not isinstance(stage, NetworkStage):
        raise UsageError(f"stage {model!r} is not a network with weights, so it cannot be fine-tuned",
                         hint="give a Real-ESRGAN-family stage (e.g. realesr-animevideov3) or a model file")
    return Path(stage.network_file(manager))


def load_generator(model: str, *, host: PluginHost | None = None,
                   weights_manager: WeightsManager | None = None) -> Generator:
    """Build the network named by ``model`` (a stage name or a weights file) with its pretrained weights.

    Args:
        model: A weights file, or the name of a stage of ``host`` that implements
            :class:`remaster.pipeline.stage.NetworkStage`.
        host: The plugin host the stage name is looked up in; default the process-wide one.
        weights_manager: The run's weights manager, which the stage gets its file from; default
            ``get_manager(host)``. Neither is used for a file.

    Raises:
        UsageError / UnknownStageError: the name is not a network stage or file.
        WeightsError: the weights cannot be obtained or read.
        StageError: spandrel does not know the architecture, or it is not an image-to-image network.
    """
    from remaster.weights import load_network

    file = _weights_file(model, host, weights_manager)
    descriptor = load_network(file)
    module = descriptor.model.float().train()
    for p in module.parameters():
        p.requires_grad_(True)
    return Generator(module, descriptor.architecture.id, int(descriptor.scale), file, model)


def _rrdb_blocks(names: list[str]) -> int:
    return len({m.group(1) for n in names if (m := re.match(r"model\.1\.sub\.(\d+)\.RDB", n))})


def _compact_body(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The layers of ``model.body`` (a compact network's), or none."""
    return list(getattr(model, "body", []))


def _compact_convs(model: torch.nn.Module) -> list[int]:
    """Indices into ``model.body`` of the convolutions."""
    return [i for i, layer in enumerate(_compact_body(model)) if isinstance(layer, torch.nn.Conv2d)]


def frozen_names(generator: Generator, spec: str) -> set[str]:
    """The names of the parameters ``spec`` freezes (see the module docstring).

    Raises:
        UsageError: a spec that does not fit the architecture, or patterns that match nothing.
    """
    names = [n for n, _ in generator.model.named_parameters()]
    spec = spec.strip()
    arch = generator.architecture
    if spec.lower() == "none":
        return set()
    if spec.lower() == "auto" or spec.isdigit():
        if arch == "ESRGAN" and _rrdb_blocks(names):
            total = _rrdb_blocks(names)
            count = (2 * total) // 3 if spec.lower() == "auto" else int(spec)
            if count > total:
                raise UsageError(f"--freeze {spec}: the network has only {total} RRDB blocks")
            prefixes = ["model.0."] + [f"model.1.sub.{i}." for i in range(count)]
        elif arch == "Compact":
            convs = _compact_convs(generator.model)
            count = len(convs) // 2 if spec.lower() == "auto" else int(spec)
            if count > len(convs):
                raise UsageError(f"--freeze {spec}: the network has only {len(convs)} convolutions")
            # A convolution together with the activation after it (PReLU has parameters).
            last = convs[count] if count < len(convs) else len(_compact_body(generator.model))
            prefixes = [f"body.{i}." for i in range(last)] if count else []
        elif spec.lower() == "auto":
            return set()
        else:
            raise UsageError(f"--freeze {spec}: counting blocks works for RRDBNet and compact networks, not {arch}",
                             hint="give parameter-name patterns, e.g. {opt:freeze_example}")
        return {n for n in names if any(n.startswith(p) for p in prefixes)}
    patterns = [p.strip() for p in spec.split(",") if p.strip()]
    frozen = {n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)}
    if not frozen:
        raise UsageError(f"--freeze {spec!r} matches no parameter", hint=f"parameters look like {names[0]!r}, "
                                                                          f"{names[-1]!r}")
    return frozen


def apply_freeze(generator: Generator, spec: str) -> tuple[int, int]:
    """Freeze what ``spec`` says; returns ``(trainable, frozen)`` parameter counts.

    Frozen parameters get ``requires_grad=False``; since the frozen layers are the
    first ones, autograd records nothing until the first trainable layer.
    """
    frozen = frozen_names(generator, spec)
    counts = [0, 0]
    for name, p in generator.model.named_parameters():
        p.requires_grad_(name not in frozen)
        counts[name in frozen] += p.numel()
    if counts[0] == 0:
        raise UsageError(f"--freeze {spec} freezes every parameter; nothing would be trained")
    return counts[0], counts[1]


def describe(generator: Generator) -> dict[str, Any]:
    return {"architecture": generator.architecture, "scale": generator.scale, "source": str(generator.source)}
