"""Perceptual distances on ImageNet networks: LPIPS and the VGG (feature) distance.

The backbones are torchvision's architectures (``torchvision.models.vgg16`` /
``vgg19`` / ``alexnet``) with torchvision's official ImageNet weights, and
LPIPS's linear layers are the official v0.1 ones; every file comes from the
weights cache given as ``weights_manager`` (a run passes its own manager; default
:func:`remaster.weights.get_manager`), checked against its sha256, and is read
with :func:`remaster.weights.load_state_dict` (never unpickled). Nothing is downloaded here: a missing file raises
:class:`~remaster.errors.WeightsNotFoundError` saying which command gets it.

A network is built once per process and device, and built again (and its file
verified again) when its file in the cache changes. Inputs are processed in
float32 on their own device; gradients flow to the inputs (the networks are
frozen), so both functions also serve as training losses.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from remaster.metrics._common import check_data_range, check_reduction, finish, prepare
from remaster.plugin.metrics import MetricError

if TYPE_CHECKING:
    from remaster.weights import WeightsManager

__all__ = ["lpips", "vgg_distance", "VGG19_LAYERS", "clear_cache", "WEIGHTS"]

#: Weights names (see ``remaster weights list``) of the networks each function uses.
WEIGHTS = {
    "vgg16": "torchvision-vgg16",
    "vgg19": "torchvision-vgg19",
    "alexnet": "torchvision-alexnet",
    "lpips-vgg": "lpips-vgg-v0.1",
    "lpips-alex": "lpips-alex-v0.1",
}

# torchvision's VGG19 ("E") configuration; layer names as BasicSR's VGGFeatureExtractor.
_VGG19_BLOCKS = (2, 2, 4, 4, 4)


def _vgg19_layer_names() -> tuple[str, ...]:
    names: list[str] = []
    for block, convs in enumerate(_VGG19_BLOCKS, start=1):
        for conv in range(1, convs + 1):
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
        names.append(f"pool{block}")
    return tuple(names)


#: Names of the layers of ``torchvision.models.vgg19().features``, in order (``conv1_1`` is index 0).
VGG19_LAYERS = _vgg19_layer_names()

# LPIPS: the backbone stages whose outputs are compared (end index into .features, exclusive).
_LPIPS_STAGES = {"vgg": (4, 9, 16, 23, 30), "alex": (2, 5, 8, 10, 12)}
_LPIPS_CHANNELS = {"vgg": (64, 128, 256, 512, 512), "alex": (64, 192, 384, 256, 256)}
# LPIPS v0.1's ScalingLayer: inputs in [-1, 1] are shifted and scaled to ImageNet statistics.
_LPIPS_SHIFT = (-0.030, -0.088, -0.188)
_LPIPS_SCALE = (0.458, 0.448, 0.450)
# torchvision's ImageNet normalisation, for the VGG distance.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

_cache: dict[tuple[Any, ...], torch.nn.Module] = {}
_lock = threading.Lock()


def clear_cache() -> None:
    """Forget the networks built so far (the next call loads and verifies the weights again)."""
    with _lock:
        _cache.clear()


def _weights_manager() -> WeightsManager:
    from remaster.weights import get_manager

    return get_manager()


def _manager(weights_manager: WeightsManager | None) -> WeightsManager:
    # A caller with a context (evaluation, fine-tuning) passes its run's manager; library users get the default.
    return weights_manager if weights_manager is not None else _weights_manager()


def _file_key(manager: Any, name: str) -> tuple[Any, ...]:
    path = manager.path(name)
    try:
        st = path.stat()
    except OSError:
        return (str(path), None)
    return (str(path), st.st_mtime_ns, st.st_size)


def _all_there(manager: Any, names: tuple[str, ...]) -> None:
    """Raise one :class:`WeightsNotFoundError` naming every one of ``names`` that is not in the cache (and cannot be
    made offline), with the commands that get them; ``ensure`` alone would stop at the first."""
    from remaster.errors import WeightsNotFoundError

    missing = []
    for name in names:
        try:
            manager.ensure(name)
        except WeightsNotFoundError:
            missing.append(name)
    if len(missing) > 1:
        raise WeightsNotFoundError(f"weights {' and '.join(repr(name) for name in missing)} are not in the cache",
                                   hint="run " + " and ".join(f"'remaster weights fetch {name}'" for name in missing))
    if missing:
        manager.ensure(missing[0])  # its own error, which says where the file comes from


def _features(arch: str, weights_name: str, depth: int, manager: Any) -> torch.nn.Sequential:
    """``torchvision.models.<arch>().features[:depth]`` with the cached ImageNet weights, frozen, in eval mode."""
    import torchvision

    from remaster.errors import WeightsError
    from remaster.weights import load_state_dict

    path = manager.ensure(weights_name)  # WeightsNotFoundError / ChecksumError say what to do
    state = load_state_dict(path)
    with torch.device("meta"):  # no random initialisation of 100+ M parameters only to overwrite them
        model = getattr(torchvision.models, arch)(weights=None)
    features = model.features[:depth]
    wanted = {k: v for k, v in state.items() if k.startswith("features.")
              and int(k.split(".")[1]) < depth}
    wanted = {k[len("features."):]: v for k, v in wanted.items()}
    expected = features.state_dict().keys()
    missing = sorted(set(expected) - set(wanted))
    if missing:
        raise WeightsError(f"the file of weights {weights_name!r} is not a torchvision {arch} state dict "
                           f"(missing {', '.join('features.' + m for m in missing[:3])})", path=path,
                           hint=f"run 'remaster weights fetch {weights_name}'")
    features = features.to_empty(device="cpu")
    try:
        features.load_state_dict(wanted, strict=True)
    except RuntimeError as exc:  # shapes that do not fit
        raise WeightsError(f"the file of weights {weights_name!r} does not fit torchvision's {arch}: "
                           f"{str(exc).splitlines()[-1].strip()}", path=path,
                           hint=f"run 'remaster weights fetch {weights_name}'") from None
    return _frozen(features)


def _frozen(module: torch.nn.Module) -> Any:
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    for m in module.modules():  # in-place ReLUs would overwrite stage outputs that are kept for comparison
        if isinstance(m, torch.nn.ReLU):
            m.inplace = False
    return module


class _LPIPSNet(torch.nn.Module):
    shift: torch.Tensor  # buffers, registered in __init__
    scale: torch.Tensor

    def __init__(self, net: str, features: torch.nn.Sequential, lins: list[torch.Tensor]):
        super().__init__()
        ends = _LPIPS_STAGES[net]
        starts = (0,) + ends[:-1]
        self.stages = torch.nn.ModuleList(features[s:e] for s, e in zip(starts, ends))
        for i, w in enumerate(lins):
            self.register_buffer(f"lin{i}", w)
        self.register_buffer("shift", torch.tensor(_LPIPS_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_LPIPS_SCALE).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        h = (torch.cat([x, y]) - self.shift) / self.scale  # one pass for both images
        total = torch.zeros(n, dtype=h.dtype, device=h.device)
        for i, stage in enumerate(self.stages):
            h = stage(h)
            f = h / (torch.sqrt((h * h).sum(dim=1, keepdim=True)) + 1e-10)  # unit length per pixel
            d = (f[:n] - f[n:]) ** 2
            total = total + F.conv2d(d, getattr(self, f"lin{i}")).mean(dim=(1, 2, 3))
        return total


def _lpips_net(net: str, device: torch.device, weights_manager: WeightsManager | None = None) -> _LPIPSNet:
    manager = _manager(weights_manager)
    backbone = WEIGHTS["vgg16" if net == "vgg" else "alexnet"]
    linear = WEIGHTS[f"lpips-{net}"]
    key = ("lpips", net, str(device), _file_key(manager, backbone), _file_key(manager, linear))
    with _lock:
        cached = _cache.get(key)
        if not isinstance(cached, _LPIPSNet):  # None: not built yet (an lpips key holds only these)
            from remaster.errors import WeightsError
            from remaster.weights import load_state_dict

            _all_there(manager, (backbone, linear))  # both named at once when both are missing
            features = _features("vgg16" if net == "vgg" else "alexnet", backbone, _LPIPS_STAGES[net][-1], manager)
            lin_path = manager.ensure(linear)
            state = load_state_dict(lin_path)
            lins = []
            for i, channels in enumerate(_LPIPS_CHANNELS[net]):
                w = state.get(f"lin{i}.model.1.weight")
                if w is None or tuple(w.shape) != (1, channels, 1, 1):
                    raise WeightsError(f"the file of weights {linear!r} is not LPIPS v0.1 {net} linear layers "
                                       f"(lin{i}.model.1.weight of shape (1, {channels}, 1, 1) expected)",
                                       path=lin_path, hint=f"run 'remaster weights fetch {linear}'")
                lins.append(w.float())
            cached = _frozen(_LPIPSNet(net, features, lins)).to(device)
            _cache[key] = cached
    return cached


def _three_channels(t: torch.Tensor) -> torch.Tensor:
    if t.shape[1] == 1:
        return t.expand(-1, 3, -1, -1)
    if t.shape[1] != 3:
        raise MetricError(f"perceptual metrics need RGB (or grey) images, not {t.shape[1]} channels")
    return t


def lpips(a: Any, b: Any, *, data_range: float, net: str = "alex", reduction: str = "none",
          weights_manager: WeightsManager | None = None) -> Any:
    """LPIPS v0.1 (Zhang et al. 2018), the learned perceptual distance: 0 for identical images, lower is better.

    The same computation as ``lpips.LPIPS(net=net, version='0.1')`` of the
    reference package: the images are mapped to [-1, 1], scaled by LPIPS's
    ScalingLayer, passed through the backbone, each of 5 stages' features is
    normalised to unit length per pixel, and the squared differences are
    weighted by the linear layers, averaged over space and summed over stages.

    Args:
        a, b: RGB (or grey, repeated) images: numpy ``(H, W, 3)`` or torch ``(N, 3, H, W)``.
        data_range: The value of white (255 for 8-bit images, 1.0 for floats in [0, 1]).
        net: ``"alex"`` (AlexNet, the reference package's default and the usual "LPIPS")
            or ``"vgg"`` (VGG16, "LPIPS-VGG").
        reduction: ``"none"`` or ``"mean"``, as :func:`remaster.metrics.psnr`.
        weights_manager: The weights cache to take the networks from (a run's manager); default
            :func:`remaster.weights.get_manager`.

    Returns:
        As :func:`remaster.metrics.psnr` (float32 tensors).

    Raises:
        WeightsNotFoundError: the backbone (``torchvision-alexnet`` / ``torchvision-vgg16``) or
            the linear layers (``lpips-alex-v0.1`` / ``lpips-vgg-v0.1``) are not in the cache;
            fetch or import them (``remaster weights fetch NAME``), or leave LPIPS out.
    """
    data_range = check_data_range(data_range)
    check_reduction(reduction)
    if net not in _LPIPS_STAGES:
        raise MetricError(f"net must be 'alex' or 'vgg', not {net!r}")
    first, second = prepare(a, b, precise=False)
    assert second is not None
    x = _three_channels(first.tensor.float()) * (2.0 / data_range) - 1.0
    y = _three_channels(second.tensor.float()) * (2.0 / data_range) - 1.0
    model = _lpips_net(net, x.device, weights_manager)
    return finish(model(x, y), first, reduction)


def _vgg19_net(depth: int, device: torch.device, weights_manager: WeightsManager | None = None) -> torch.nn.Sequential:
    manager = _manager(weights_manager)
    name = WEIGHTS["vgg19"]
    key = ("vgg19", str(device), _file_key(manager, name))
    with _lock:
        cached = _cache.get(key)
        if not isinstance(cached, torch.nn.Sequential):  # None: not built yet (the vgg19 key holds only these)
            cached = _features("vgg19", name, len(VGG19_LAYERS), manager).to(device)
            _cache[key] = cached
    return cached[:depth]  # shares the modules


def vgg_distance(a: Any, b: Any, *, data_range: float,
                 layers: Sequence[str] | Mapping[str, float] = ("conv5_4",), criterion: str = "l1",
                 reduction: str = "none", weights_manager: WeightsManager | None = None) -> Any:
    """The "VGG loss" of SR papers: distance between VGG19 feature maps; 0 for identical images.

    The images are scaled to [0, 1] (``/ data_range``) and normalised with
    torchvision's ImageNet mean and standard deviation, then passed through
    ``torchvision.models.vgg19().features`` with the ImageNet weights. For each
    named layer the mean absolute (``"l1"``) or mean squared (``"l2"``)
    difference of the feature maps is taken over channels and positions; the
    layers' values are summed (weighted, if ``layers`` is a mapping). This is
    BasicSR's ``PerceptualLoss(layer_weights=..., vgg_type='vgg19',
    use_input_norm=True, range_norm=False, criterion=...)`` per image; the
    default, ``conv5_4`` (before its ReLU) with L1, is ESRGAN's.
    Real-ESRGAN uses ``{"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1, "conv4_4": 1, "conv5_4": 1}``.

    Args:
        a, b: RGB (or grey, repeated) images: numpy ``(H, W, 3)`` or torch ``(N, 3, H, W)``.
        data_range: The value of white (255 for 8-bit images, 1.0 for floats in [0, 1]).
        layers: Layer names from :data:`VGG19_LAYERS` (``conv1_1`` … ``relu5_4``, ``pool1`` … ``pool5``),
            or a mapping of such names to weights.
        criterion: ``"l1"`` or ``"l2"``.
        reduction: ``"none"`` or ``"mean"``, as :func:`remaster.metrics.psnr`.
        weights_manager: The weights cache to take VGG19 from (a run's manager); default
            :func:`remaster.weights.get_manager`.

    Returns:
        As :func:`remaster.metrics.psnr` (float32 tensors).

    Raises:
        WeightsNotFoundError: ``torchvision-vgg19`` is not in the cache; fetch or import it
            (``remaster weights fetch torchvision-vgg19``), or leave the VGG distance out.
    """
    data_range = check_data_range(data_range)
    check_reduction(reduction)
    if criterion not in ("l1", "l2"):
        raise MetricError(f"criterion must be 'l1' or 'l2', not {criterion!r}")
    if isinstance(layers, str):
        layers = (layers,)
    weighted = dict(layers) if isinstance(layers, Mapping) else {name: 1.0 for name in layers}
    if not weighted:
        raise MetricError("vgg_distance needs at least one layer")
    unknown = [name for name in weighted if name not in VGG19_LAYERS]
    if unknown:
        raise MetricError(f"unknown VGG19 layer {unknown[0]!r}",
                          hint=f"use one of {', '.join(VGG19_LAYERS)}")
    index = {name: VGG19_LAYERS.index(name) for name in weighted}
    depth = max(index.values()) + 1
    first, second = prepare(a, b, precise=False)
    assert second is not None
    mean = torch.tensor(_IMAGENET_MEAN, device=first.tensor.device).view(1, 3, 1, 1)
    std = torch.tensor(_IMAGENET_STD, device=first.tensor.device).view(1, 3, 1, 1)
    x = (_three_channels(first.tensor.float()) / data_range - mean) / std
    y = (_three_channels(second.tensor.float()) / data_range - mean) / std
    features = _vgg19_net(depth, x.device, weights_manager)
    n = x.shape[0]
    h = torch.cat([x, y])
    total = torch.zeros(n, dtype=h.dtype, device=h.device)
    for i, layer in enumerate(features):
        h = layer(h)
        for name, idx in index.items():
            if idx == i:
                diff = h[:n] - h[n:]
                dist = diff.abs() if criterion == "l1" else diff * diff
                total = total + float(weighted[name]) * dist.mean(dim=(1, 2, 3))
    return finish(total, first, reduction)
