"""Folder runs, planned: inputs collected, outputs named, folders checked, the report built; nothing printed.

Pure functions a runner calls before and after the work, so that any runner (the ``remaster`` command's local
loop, a distributed one) plans exactly as a local run does and reports in the same JSON.
"""

from __future__ import annotations

import json
import os
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from remaster.errors import OutputError, UsageError
from remaster.video.formats import CONTAINERS, VIDEO_SUFFIXES, is_parts_folder, is_video_name

#: Extensions picked up when a folder is given as input.
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".jfif"}
#: Extensions remaster can write; other inputs are written as PNG.
WRITABLE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"}
#: How each output in a folder is named unless ``--name-template`` says otherwise.
DEFAULT_NAME_TEMPLATE = "{stem}{suffix}.{ext}"
#: The fields a name template may use.
NAME_FIELDS = ("stem", "ext", "suffix")


#: What ends an -o that is meant as a folder, whatever its extension (``-o out.png/``).
FOLDER_SEPARATORS = tuple(sep for sep in {"/", os.sep, os.altsep} if sep)


@dataclass
class BatchItem:
    """One input and its planned output; after the run, how it went (one entry of the report)."""

    # Paths in a local run; a distributed run over object storage (remaster.runs.ray) keeps URIs as strings.
    source: Path | str
    target: Path | str
    ok: bool = False
    error: str | None = None
    seconds: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False  # --resume found the output already there: not written again, not a failure
    exception: BaseException | None = field(default=None, repr=False, compare=False)  # what failed it (--debug)

    def as_json(self) -> dict[str, Any]:
        """One report entry; what stages reported (e.g. ``faces``) follows, never replacing these keys."""
        entry = {"input": str(self.source), "output": str(self.target) if self.ok or self.skipped else None,
                 "ok": self.ok, "skipped": self.skipped, "error": self.error, "seconds": round(self.seconds, 3)}
        return {**entry, **{key: value for key, value in self.extras.items() if key not in entry}}


def collect_inputs(inputs: Sequence[str], *, output: Path | None = None) -> list[tuple[Path, Path]]:
    """Expand files and folders into ``(file, path relative to its root)`` pairs, sorted per folder.

    ``output`` (the run's OUT) and everything under it is left out of the folders walked when it lies inside one
    of them: a run whose output folder sits inside its input folder never takes its own outputs (or an earlier
    run's) as inputs. (An OUT that is the input folder itself leaves it whole: each output is then refused as
    the input it would overwrite, or written beside it under another name.)
    """
    own = _resolved(output) if output is not None else None

    def wanted(file: Path, root: Path, skip: Path | None) -> bool:
        if not (file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES):
            return False
        if any(is_parts_folder(name) for name in file.relative_to(root).parts[:-1]):
            return False  # an unfinished video run's segments, not inputs
        return skip is None or not _resolved(file).is_relative_to(skip)

    found: list[tuple[Path, Path]] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            skip = own if own is not None and own != _resolved(path) else None
            files = sorted(p for p in path.rglob("*") if wanted(p, path, skip))
            if not files:
                raise UsageError(f"no images in folder {path}",
                                 hint=f"supported: {', '.join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))}")
            found.extend((p, p.relative_to(path)) for p in files)
        elif path.exists():
            found.append((path, Path(path.name)))
        else:
            raise UsageError(f"{path}: no such file or folder")
    return found


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a loop of links: compare it as written
        return path.absolute()


def plan_outputs(sources: list[tuple[Path, Path]], output: Path, fmt: str | None, *,
                 name_template: str | None = None, suffix: str = "", folder: bool = False) -> list[BatchItem]:
    """Decide each output path, before any work is done.

    One input with a file-like OUT (ending in a writable image extension, not an existing folder) is written
    there. Otherwise OUT is a folder: each output goes under its input's relative path, named by
    ``name_template`` (default :data:`DEFAULT_NAME_TEMPLATE`) from the input's stem, the output extension
    (``fmt``, else the input's when remaster writes it, else ``png``) and ``suffix``. Two inputs that would get
    the same name never share an output: the second is named after its source's extension (``a_bmp.png``),
    then numbered. The plan depends only on the arguments and on whether OUT exists as a file or folder, so
    any runner that plans with this function writes exactly where a local run would.

    Args:
        sources: ``(file, path relative to its input root)`` pairs, as :func:`collect_inputs` gives them.
        output: OUT.
        fmt: Output extension for folder runs, without dot (``--format``), or ``None``.
        name_template: How outputs in a folder are named; fields ``{stem}``, ``{ext}``, ``{suffix}``.
        suffix: Text the default template puts after the stem (``--suffix``).
        folder: OUT was given as a folder (it ends in a path separator), whatever its extension.

    Raises:
        UsageError: OUT names an image file remaster cannot write (``out.bmp``), a name option is given with a
            one-file OUT, OUT is a file but several inputs need a folder, or the template or suffix is unusable.
    """
    template = _check_name_template(name_template, suffix)
    kind = output.suffix.lower()
    if len(sources) == 1 and not folder and not output.is_dir() and kind in CONTAINERS:
        if not is_video_name(sources[0][0]):
            raise UsageError(f"{output} names a video, but {sources[0][0]} is an image", path=output,
                             hint=f"use one of {', '.join(sorted(WRITABLE_SUFFIXES))} for an image")
        if name_template is not None or suffix:
            raise UsageError(f"--suffix and --name-template name the outputs in a folder, but {output} is "
                             "one output file", hint="give the output name itself, or a folder as -o")
        return [BatchItem(sources[0][0], output)]
    if len(sources) == 1 and not folder and not output.is_dir():
        if kind in IMAGE_SUFFIXES and kind not in WRITABLE_SUFFIXES:
            # Without this, out.bmp would quietly become a folder holding out.bmp/in.png.
            raise UsageError(f"remaster cannot write {kind} images", path=output,
                             hint=f"use one of {', '.join(sorted(WRITABLE_SUFFIXES))}, or end OUT with "
                                  f"'/' for a folder of that name")
        if kind in WRITABLE_SUFFIXES:
            if name_template is not None or suffix:
                raise UsageError(f"--suffix and --name-template name the outputs in a folder, but {output} is "
                                 "one output file", hint="give the output name itself, or a folder as -o")
            return [BatchItem(sources[0][0], output)]
    if output.exists() and not output.is_dir():
        raise UsageError(f"{output} is a file, but several inputs need an output folder")
    if not folder and not output.is_dir() and kind in WRITABLE_SUFFIXES | set(CONTAINERS):
        # Without this, -o out.png with several inputs would quietly become a folder named out.png.
        raise UsageError(f"{output} names one image file, but there are {len(sources)} inputs",
                         hint=f"give a folder as -o (end it with '/' to make one named {output.name})")
    items: list[BatchItem] = []
    taken: set[Path] = set()
    for source, relative in sources:
        source_ext = relative.suffix.lower()
        video = is_video_name(source)
        if video:  # a video keeps its container where remaster writes it (--format is for images)
            ext = source_ext.lstrip(".") if source_ext in CONTAINERS else "mkv"
        else:
            ext = fmt or (source_ext.lstrip(".") if source_ext in WRITABLE_SUFFIXES else "png")
        name = template.format(stem=relative.stem, ext=ext, suffix=suffix)
        _check_planned_name(name, name_template, None if video else fmt, video=video)
        target = output / relative.parent / name
        if target in taken:  # a.jpg and a.png both asked to become a.png: keep both, name the second after its source
            base = Path(name)
            stem = f"{base.stem}_{source_ext.lstrip('.')}"
            target, number = target.with_name(f"{stem}{base.suffix}"), 1
            while target in taken:  # two input folders can hold the same names: never plan one output twice
                number += 1
                target = target.with_name(f"{stem}_{number}{base.suffix}")
        taken.add(target)
        items.append(BatchItem(source, target))
    return items


#: One name for each format, to tell whether a template's extension and --format agree.
_FORMAT_OF = {".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff", ".png": "png", ".webp": "webp"}


def _check_name_template(name_template: str | None, suffix: str) -> str:
    """The template to name outputs with; refuses one that could write outside the output folder."""
    for option, text in (("--suffix", suffix), ("--name-template", name_template or "")):
        if any(sep in text for sep in ("/", "\\", "\0")) or ".." in text:
            raise UsageError(f"{option} {text!r} could write outside the output folder",
                             hint="give a file name without '/', '\\' or '..'")
    if name_template is None:
        return DEFAULT_NAME_TEMPLATE
    if PurePosixPath(name_template).is_absolute() or PureWindowsPath(name_template).drive:
        raise UsageError(f"--name-template {name_template!r} is an absolute path", hint="give a file name only")
    fields = ", ".join(f"{{{name}}}" for name in NAME_FIELDS)
    try:
        parts = list(string.Formatter().parse(name_template))
    except ValueError as exc:  # a lone '{' or '}'
        raise UsageError(f"--name-template {name_template!r}: {exc}",
                         hint=f"use {fields}; write {{{{ or }}}} for a literal brace") from None
    used = set()
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in NAME_FIELDS or spec or conversion:
            given = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise UsageError(f"--name-template {name_template!r}: unknown field {given}",
                             hint=f"use the plain fields {fields}")
        used.add(name)
    if suffix and "suffix" not in used:
        raise UsageError(f"--suffix {suffix!r} is not used: the name template has no {{suffix}}",
                         hint="add {suffix} to the template, e.g. '{stem}{suffix}.{ext}'")
    return name_template


def _check_planned_name(name: str, name_template: str | None, fmt: str | None, *, video: bool = False) -> None:
    """A templated name must end in an extension remaster writes, and agree with --format."""
    kind = PurePosixPath(name).suffix.lower()
    if video:
        if kind not in CONTAINERS:
            raise UsageError(f"--name-template {name_template!r} gives the video the name {name!r}, which does not "
                             "end in a container remaster writes", hint="end the template with '.{ext}'")
        return
    if kind not in WRITABLE_SUFFIXES:
        raise UsageError(f"--name-template {name_template!r} gives the name {name!r}, which does not end in an image "
                         f"extension remaster writes", hint="end the template with '.{ext}' (or .png, .jpg, ...)")
    if fmt and _FORMAT_OF[kind] != _FORMAT_OF[f".{fmt}"]:
        raise UsageError(f"--name-template {name_template!r} names {kind} files, but --format asks for {fmt}",
                         hint="use '.{ext}' in the template, or leave out --format")


def check_writable(items: list[BatchItem], report: str | None = None) -> None:
    """Fail before loading any model when the output folder (or the report's) cannot be written, or the report
    would go onto something other than a regular file (a FIFO, a device node)."""
    if report:
        from remaster.io.atomic import check_regular  # remaster.io loads numpy and PIL: not at start-up

        check_regular(Path(report))
    folders = {Path(item.target).parent for item in items} | ({Path(report).parent} if report else set())
    for folder in sorted(folders):
        # Nothing is created yet: a mistake found later (an unknown stage) must not leave empty folders.
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise OutputError(f"cannot create the output folder: {existing} is a file", path=folder)
        if not os.access(existing, os.W_OK | os.X_OK):
            raise OutputError("the output folder is not writable", path=folder,
                              hint="choose another folder with -o or fix its permissions")


def count_phrase(images: int, videos: int) -> str:
    """``"3 image(s) and 1 video(s)"`` for a run's header: each kind there is (``"0 image(s)"`` for none)."""
    parts = [f"{images} image(s)" if images or not videos else "", f"{videos} video(s)" if videos else ""]
    return " and ".join(part for part in parts if part)


def summarize(items: list[BatchItem], interrupted: bool) -> dict[str, Any]:
    """What --json prints and --report writes: counts, then one entry per file tried."""
    return {"ok": sum(i.ok for i in items), "skipped": sum(i.skipped for i in items),
            "failed": sum(1 for i in items if i.error),
            "not_done": sum(1 for i in items if not (i.ok or i.skipped or i.error)), "interrupted": interrupted,
            "items": [i.as_json() for i in items if i.ok or i.skipped or i.error]}


def write_report(path: Path, summary: dict[str, Any]) -> None:
    from remaster.io import write_atomic

    write_atomic(path, (json.dumps(summary, indent=2, default=json_value) + "\n").encode())


def json_value(value: Any) -> Any:
    """What stages report may be numpy or torch scalars/arrays (e.g. a face count); JSON gets plain values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
