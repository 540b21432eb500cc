"""What an evaluation is asked to do: metric strings read into :class:`MetricChoice`, their weights checked,
and each candidate turned into the pipeline that enlarges by the degradation's factor. No image is touched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from remaster.errors import UsageError
from remaster.evaluation.defaults import DEFAULT_METRICS
from remaster.metrics import MetricSpec
from remaster.pipeline.configured import resolve_spec
from remaster.plugin.host import PluginHost, get_host
from remaster.plugin.syntax import StageCall, parse_pipeline, parse_stage, split_top_level

__all__ = ["split_list", "MetricChoice", "parse_metrics", "check_metric_weights", "candidate_pipeline"]

#: Options the evaluation sets for every metric; a metric string may not set them itself.
_RESERVED_OPTIONS = ("data_range", "crop_border", "y_channel", "reduction")


def split_list(text: str) -> list[str]:
    """Split ``"a, b(x=1, y=2), c"`` at the commas outside parentheses; empty items are dropped."""
    return [item for item in split_top_level(text, ",") if item]


@dataclass(frozen=True)
class MetricChoice:
    """One requested metric: the text as given (its label in reports), its spec and its options.

    Attributes:
        label: ``"psnr"`` or ``"lpips(net=vgg)"``, as the user wrote it.
        spec: The registered metric.
        options: Keyword options from the text (``{"net": "vgg"}``).
    """

    label: str
    spec: MetricSpec
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    def accepts(self, option: str) -> bool:
        """Whether the metric declares the keyword option ``option`` (:attr:`MetricSpec.options`)."""
        return self.spec.option(option) is not None


def parse_metrics(metrics: str | Sequence[str], *, host: PluginHost | None = None) -> list[MetricChoice]:
    """Look up metric strings (``"psnr"``, ``"lpips(net=vgg)"``) and check their options; no work is done.

    The options are checked and converted by the metric's declared ones (:attr:`MetricSpec.options`);
    no metric module is imported.

    Raises:
        UnknownMetricError: a name is not registered (exit code 2).
        UsageError: a malformed string, an unknown option or value, an option the evaluation sets itself,
            or a repeat.
    """
    host = host.ensure_loaded() if host is not None else get_host()
    texts = split_list(metrics) if isinstance(metrics, str) else [str(m).strip() for m in metrics]
    if not texts:
        raise UsageError("no metrics given", hint=f"e.g. {','.join(DEFAULT_METRICS)}")
    choices: list[MetricChoice] = []
    for text in texts:
        name, options = parse_stage(text)
        spec = host.metrics.get(name)  # UnknownMetricError with the closest names
        reserved = sorted(set(options) & set(_RESERVED_OPTIONS))
        if reserved:
            raise UsageError(f"metric {text!r}: {', '.join(reserved)} is set for every metric",
                             hint="use {opt:crop_border_y}")
        unknown = sorted(set(options) - {param.name for param in spec.options})
        if unknown:
            valid = [param.describe() for param in spec.options if param.name not in _RESERVED_OPTIONS]
            raise UsageError(f"metric {name!r} has no option {', '.join(unknown)}",
                             hint=f"its options: {'; '.join(valid) or 'none'}")
        options = spec.resolve_options(options)  # MetricError (a UsageError) for a bad value
        if any(choice.label == text for choice in choices):
            raise UsageError(f"metric {text!r} is given twice")
        choices.append(MetricChoice(text, spec, options))
    return choices


def check_metric_weights(choices: Sequence[MetricChoice], *, host: PluginHost | None = None) -> None:
    """Make sure the weights of every chosen metric are in the cache (checked by sha256); never downloads.

    Raises:
        WeightsNotFoundError: a file is missing; the message names the command that gets it.
        ChecksumError: a cached file is damaged (it is quarantined).
    """
    names = [name for choice in choices for name in choice.spec.weights_for(choice.options)]
    if not names:
        return
    from remaster.weights import get_manager

    manager = get_manager(host)
    for name in dict.fromkeys(names):
        manager.ensure(name)


def candidate_pipeline(candidate: str, factor: int, *, host: PluginHost | None = None) -> list[StageCall]:
    """The stages of a candidate, with ``scale=factor`` given to its scaling stage.

    A candidate is a stage string (``"bicubic"``, ``"realesrgan-x4plus"``, ``"lanczos(scale=4)"``) or a
    pipeline of them. Unless a stage of it already sets its scale, the first stage that takes a scale
    parameter gets the one that makes the whole candidate enlarge by ``factor`` (fixed-scale networks
    resample their native result to it).

    Raises:
        UnknownStageError, StageParamError, UsageError: the candidate cannot be read.
    """
    host = host.ensure_loaded() if host is not None else get_host()
    items = parse_pipeline(candidate)
    specs = [resolve_spec(name, host) for name, _ in items]
    given = any(spec.info.scale_param and spec.info.scale_param in params for (_, params), spec in zip(items, specs))
    if not given:
        target = next((i for i, spec in enumerate(specs) if spec.info.scale_param), None)
        if target is not None:
            others = math.prod([spec.info.scale_for(spec.resolve_params(params))
                                for i, ((_, params), spec) in enumerate(zip(items, specs)) if i != target])
            items[target] = items[target].with_params(
                **{str(specs[target].info.scale_param): float(factor) / others})
    return items
