"""The stage-string syntax: how a pipeline is written as text, read and written back.

Torch-free (the standard library and :mod:`remaster.errors` only), so the CLI,
the server and plugins can read and write stage strings without importing a
network or the pipeline.

The syntax:

* A **stage** is ``name`` or ``name(key=value, ...)``: ``bicubic``,
  ``degrade.jpeg(quality=30)``. Whitespace around the name, the parentheses
  and the values is ignored. Values are keyword-only; a value without a name
  (``x(1)``) is refused.
* A **name** is a bare word (anything without whitespace, parentheses, ``|``
  or quotes), or a string in single or double quotes, for model files whose
  paths hold spaces, parentheses or ``|``:
  ``'models/4x Community (v2).pth'(scale=2)``. The quotes are not part of the
  name. Which names are model files rather than stage names is decided by the
  pipeline (:data:`MODEL_FILE_SUFFIXES` is one of its tests).
* A **value** is a Python literal (a number, a quoted string, ``True``,
  ``False``, ``None``, or a list, tuple, dict or set of literals), or a bare
  word, read as a string: ``method=area`` is ``method='area'``. Anything else
  (a call, an expression) is refused.
* A **pipeline** is stages separated by ``|``:
  ``"degrade.jpeg(quality=30) | bicubic(scale=2)"``. A ``|`` inside
  parentheses or quotes (``x(s='a|b')``, ``'my|model.pth'``) does not
  separate; an empty stage (``a || b``) is refused.

:func:`parse_stage` reads one stage into a :class:`StageCall` (the data every caller
passes on), :func:`format_stage` (and ``str(call)``) writes one back (quoting the name
when it must be), :func:`parse_pipeline` reads a pipeline into stage calls, and
:func:`split_top_level` is the splitter under it, also used for other
separators (``,`` in ``remaster eval --candidates``). Malformed text raises
:class:`~remaster.errors.UsageError`.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from remaster.errors import UsageError

__all__ = ["StageCall", "parse_stage", "format_stage", "parse_pipeline", "split_top_level", "MODEL_FILE_SUFFIXES",
           "names_model_file", "is_existing_file"]


@dataclass(frozen=True)
class StageCall:
    """One stage of a pipeline as data: a name and its parameters.

    What the CLI, plugins and a stage's own pipelines hand the pipeline, so that text is parsed only where it
    comes in (a CLI argument, a server header, a string given to :class:`~remaster.Remasterer`). The name is
    a registered stage or a model file's path, taken as it stands (spaces and parentheses included). It
    unpacks as ``name, params = call``; ``str(call)`` is the stage string that :func:`parse_stage`
    reads back. Picklable (a Ray run sends it to its workers).

    Attributes:
        name: The stage name, or a model file's path.
        params: The parameters given (the stage's defaults fill the rest).
    """

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Any]:
        """``name, params = call``."""
        return iter((self.name, self.params))

    def with_params(self, **params: Any) -> StageCall:
        """This call with ``params`` set (added or replaced)."""
        return StageCall(self.name, {**self.params, **params})

    def __str__(self) -> str:
        return format_stage(self.name, self.params)

# A stage name is a bare word, or a quoted string for model files whose paths hold spaces or parentheses.
_STAGE_RE = re.compile(r"""^\s*(?P<name>'[^']*'|"[^"]*"|[^\s()|'"]+)\s*(?:\((?P<args>.*)\))?\s*$""", re.S)
_BARE_NAME = re.compile(r"[^\s()|'\",=]+")


def _literal(node: ast.expr, text: str) -> Any:
    if isinstance(node, ast.Name):  # bare words such as method=bicubic read as strings
        return {"True": True, "False": False, "None": None}.get(node.id, node.id)
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise UsageError(f"cannot read the value {ast.get_source_segment(text, node)!r}",
                         hint="use numbers, quoted strings, True or False") from None


def parse_stage(text: str) -> StageCall:
    """Read ``"name(key=value, ...)"``: the name and its keyword values.

    Raises:
        UsageError: the text is not a stage.
    """
    match = _STAGE_RE.match(text)
    if not match:
        raise UsageError(f"cannot read the stage {text.strip()!r}", hint="write name or name(key=value, ...)")
    name, args = match["name"], (match["args"] or "").strip()
    if name[0] in "'\"":
        name = name[1:-1]
    if not args:
        return StageCall(name, {})
    call = f"f({args})"
    try:
        parsed = ast.parse(call, mode="eval").body
    except SyntaxError:
        raise UsageError(f"cannot read the parameters of {text.strip()!r}", hint="write name(key=value, ...)") from None
    assert isinstance(parsed, ast.Call)
    if parsed.args:
        raise UsageError(f"stage {name!r} got a value without a name", hint="write name(key=value, ...)")
    return StageCall(name, {kw.arg: _literal(kw.value, call) for kw in parsed.keywords if kw.arg is not None})


#: File name endings that mark a pipeline item as a model file rather than a stage name.
MODEL_FILE_SUFFIXES = (".pth", ".pt", ".safetensors", ".ckpt", ".bin")


def names_model_file(name: str) -> bool:
    """Whether a pipeline item's name means a model file rather than a stage: a model file's ending, a path
    separator, or an existing file by that name."""
    return name.lower().endswith(MODEL_FILE_SUFFIXES) or os.sep in name or is_existing_file(name)


def is_existing_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` (``~`` expanded) is an existing file; ``False`` for a name the filesystem refuses to look
    up (too long, a NUL byte), which a malformed command or request may hold."""
    try:
        return Path(path).expanduser().is_file()
    except (OSError, ValueError):
        return False


def format_stage(name: str, params: Mapping[str, Any] | None = None) -> str:
    """The stage string :func:`parse_stage` reads back: ``name(key=value, ...)``, the name quoted if it must be."""
    text = name if _BARE_NAME.fullmatch(name) else repr(name)
    return f"{text}({', '.join(f'{k}={v!r}' for k, v in params.items())})" if params else text


def split_top_level(text: str, separator: str) -> list[str]:
    """Split ``text`` at ``separator`` outside parentheses and quotes, stripping each part.

    ``|`` in ``x(s='a|b')`` or in ``'my|model.pth'`` stays.
    """
    parts: list[str] = []
    current: list[str] = []
    depth, quote = 0, ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        else:
            depth += char == "("
            depth -= char == ")"
        if char == separator and depth == 0 and not quote:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts]


def parse_pipeline(text: str) -> list[StageCall]:
    """Read ``"a | b(x=1) | c"``: one :class:`StageCall` per stage.

    Raises:
        UsageError: an empty or malformed stage.
    """
    stages = split_top_level(text, "|")
    if not all(stages):
        raise UsageError(f"empty stage in the pipeline {text!r}")
    return [parse_stage(stage) for stage in stages]
