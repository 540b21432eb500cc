"""Inputs and outputs that are URIs (``s3://``, ``gs://``, ``file://``), through pyarrow's filesystems.

Only bytes move here: decoding and encoding stay in :mod:`remaster.io`, so bit depth, alpha, ICC and EXIF are kept
as in a local run. ``file://`` URIs become plain paths (written with a temporary file and a rename). An object store
has no rename, so an output is encoded completely in memory first and sent in one put: a failed upload leaves no
object, never a partial one.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from remaster.errors import InputError, OutputError, UsageError
from remaster.runs.plan import IMAGE_SUFFIXES
from remaster.runs.ray.errors import EngineMissingError

__all__ = ["is_uri", "local_path", "list_images", "join", "read_bytes", "write_bytes", "exists", "existing_under",
           "ENV_PASSED"]

#: Object-store settings (not secrets) a worker takes from the driver; credentials come from each worker's own
#: environment or role, as for any other program on that node.
ENV_PASSED = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION")

_SCHEMES = ("s3", "gs", "gcs")


def is_uri(text: str) -> bool:
    """``text`` names an object in a store remaster reads through pyarrow (``s3://``, ``gs://``)."""
    return urlsplit(text).scheme.lower() in _SCHEMES and "://" in text


def local_path(text: str) -> str:
    """A ``file://`` URI as a plain path; anything else unchanged."""
    parts = urlsplit(text)
    if parts.scheme.lower() == "file" and text.lower().startswith("file://"):
        if parts.netloc not in ("", "localhost"):
            raise UsageError(f"{text}: a file:// URI names a file on this machine, not on {parts.netloc}",
                             hint="write file:///path (three slashes)")
        return unquote(parts.path)
    return text


def _filesystem(uri: str) -> tuple[Any, str]:
    try:
        from pyarrow import fs
    except ImportError:
        raise EngineMissingError(f"{uri}: object storage needs pyarrow, which is not installed",
                                 hint="pip install 'remaster[ray]'") from None
    try:
        return fs.FileSystem.from_uri(uri)
    except Exception as exc:  # pyarrow raises its own ArrowInvalid / OSError for unknown schemes and bad buckets
        raise UsageError(f"{uri}: cannot open this storage: {exc}") from None


def join(base: str, relative: str | PurePosixPath) -> str:
    """``base`` URI or path with a relative POSIX path below it."""
    if is_uri(base):
        return base.rstrip("/") + "/" + str(PurePosixPath(relative))
    return str(Path(base) / relative)


def list_images(uri: str) -> list[tuple[str, PurePosixPath]]:
    """The images under a URI (or the one object it names), as ``(uri, path relative to it)``, sorted.

    Raises:
        UsageError: Nothing is there, or the folder holds no images.
    """
    from pyarrow import fs as pafs

    filesystem, root = _filesystem(uri)
    info = _info(filesystem, root, uri)
    if info.type == pafs.FileType.File:
        return [(uri, PurePosixPath(PurePosixPath(root).name))]
    if info.type == pafs.FileType.NotFound:
        raise UsageError(f"{uri}: no such object or folder")
    selector = pafs.FileSelector(root, recursive=True)
    found = sorted(entry.path for entry in filesystem.get_file_info(selector)
                   if entry.type == pafs.FileType.File and PurePosixPath(entry.path).suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise UsageError(f"no images in {uri}", hint=f"supported: {', '.join(sorted(IMAGE_SUFFIXES))}")
    base = PurePosixPath(root)
    return [(join(uri, PurePosixPath(path).relative_to(base)), PurePosixPath(path).relative_to(base)) for path in found]


def existing_under(uri: str) -> set[str]:
    """Every object below ``uri``, as URIs: one listing, so a plan of many items needs no request per item."""
    from pyarrow import fs as pafs

    filesystem, root = _filesystem(uri)
    if _info(filesystem, root, uri).type != pafs.FileType.Directory:
        return set()
    base = PurePosixPath(root)
    return {join(uri, PurePosixPath(entry.path).relative_to(base))
            for entry in filesystem.get_file_info(pafs.FileSelector(root, recursive=True))
            if entry.type == pafs.FileType.File}


def exists(uri: str) -> bool:
    """An object is there."""
    from pyarrow import fs as pafs

    filesystem, path = _filesystem(uri)
    return _info(filesystem, path, uri).type == pafs.FileType.File


def read_bytes(uri: str) -> bytes:
    """The whole object.

    Raises:
        InputError: It cannot be read (missing, no permission, network).
    """
    filesystem, path = _filesystem(uri)
    try:
        with filesystem.open_input_stream(path) as stream:
            return bytes(stream.read())
    except FileNotFoundError:
        raise InputError("no such object", path=uri) from None
    except OSError as exc:
        raise InputError(f"cannot read the object: {exc}", path=uri, hint="check the bucket, its permissions and "
                         "the network") from None


def write_bytes(uri: str, data: bytes) -> None:
    """Put ``data`` as the object ``uri``: the bytes are complete before the upload starts, and sent at once.

    Raises:
        OutputError: The store refused or the upload failed; no object is left by a failed upload.
    """
    filesystem, path = _filesystem(uri)
    try:
        with filesystem.open_output_stream(path) as stream:
            stream.write(data)
    except OSError as exc:
        raise OutputError(f"could not write the object: {exc}", path=uri,
                          hint="check the bucket, its permissions and the network") from None


def _info(filesystem: Any, path: str, uri: str) -> Any:
    try:
        return filesystem.get_file_info(path)
    except OSError as exc:
        raise UsageError(f"{uri}: cannot reach this storage: {exc}",
                         hint="check the bucket name, credentials and endpoint (AWS_ENDPOINT_URL)") from None
