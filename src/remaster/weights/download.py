"""The resumable HTTP download of one weights file into its ``.part`` file.

:meth:`~remaster.weights.WeightsManager.fetch` opens the ``.part`` with
:func:`open_part` (which locks it against a second process) and streams the
URL into it with :func:`download`; checking and renaming the result is the
manager's job. No third-party imports.
"""

from __future__ import annotations

import http.client
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

try:  # POSIX only; elsewhere concurrent downloads of one file are simply not guarded
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]  # None marks the platform without it; callers check

from remaster.errors import WeightsError

if TYPE_CHECKING:
    from remaster.plugin.weights import WeightsSpec

__all__ = ["ProgressCallback", "open_part", "download", "MAX_DOWNLOAD_BYTES", "MIN_RATE_BYTES_S", "RATE_GRACE_S",
           "MAX_DOWNLOAD_S"]

#: ``progress(bytes_done, total_bytes_or_None)``, called as a download proceeds.
ProgressCallback = Callable[[int, int | None], None]

CHUNK = 1 << 20  # 1 MiB: big enough for throughput, small enough to keep memory flat on multi-GB files
_TIMEOUT_S = 60.0  # per socket operation; the whole download has its own limits below

#: Largest file a download may bring when its spec gives no ``size`` (weights of this field are far smaller).
MAX_DOWNLOAD_BYTES = 2 * 2**30
#: A download slower than this on average, once :data:`RATE_GRACE_S` have passed, is cut off (a server that
#: sends a byte a second would otherwise hold the command for ever); the .part is kept for a resume.
MIN_RATE_BYTES_S = 16 * 2**10
RATE_GRACE_S = 60.0
#: No download takes longer than this, however it trickles.
MAX_DOWNLOAD_S = 2 * 3600.0


def open_part(spec: WeightsSpec, part: Path) -> BinaryIO:
    """The .part opened for appending, under an exclusive lock held until it is closed.

    The lock keeps two processes from interleaving writes into one .part; the
    kernel drops it if the process dies, so there are no stale locks.
    """
    for _attempt in range(3):
        file = open(part, "ab")
        try:
            if fcntl is not None:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            file.close()
            raise WeightsError(f"weights {spec.name!r} are being downloaded by another process", path=part,
                               hint="wait for it to finish") from None
        # A failed download removes its empty .part under the lock: if that happened between our
        # open and our lock, what we hold is no longer the file on disk, so open again.
        try:
            if os.path.samestat(os.fstat(file.fileno()), os.stat(part)):
                return file
        except FileNotFoundError:
            pass
        file.close()
    raise WeightsError(f"weights {spec.name!r} are being downloaded by another process", path=part,
                       hint="wait for it to finish")


def download(spec: WeightsSpec, url: str, file: BinaryIO, progress: ProgressCallback | None) -> None:
    """Stream ``url`` into ``file`` (the open .part), continuing from its current size when the server allows."""
    hint = (f"check the connection and run the same command again to resume, or download {spec.filename} "
            f"by hand and run 'remaster weights import FILE --name {spec.name}'")
    offset = file.seek(0, os.SEEK_END)
    limit = spec.size if spec.size is not None else MAX_DOWNLOAD_BYTES
    started = time.monotonic()
    for _attempt in range(2):  # the second attempt only follows a refused resume (416), from zero
        request = urllib.request.Request(url, headers={"User-Agent": "remaster-weights/1"})
        if offset:
            request.add_header("Range", f"bytes={offset}-")
        try:
            with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
                total = _prepare_body(response, file, offset)
                if total is not None and total > limit:
                    raise WeightsError(f"the server offers {total:,} bytes for weights {spec.name!r}, more than "
                                       f"the {limit:,} they may have", path=url, hint="check the URL")
                done = first = file.tell()
                if progress:
                    progress(done, total)
                # read1: what has arrived, not a full chunk, so that a trickle is measured as it comes.
                while chunk := response.read1(CHUNK):
                    file.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
                    _check_bounds(spec, url, file, done, first, limit, started)
                file.flush()
                os.fsync(file.fileno())
            if total is not None and done != total:
                raise WeightsError(f"download of weights {spec.name!r} stopped at {done} of {total} bytes",
                                   path=url, hint=hint)
            return
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset:
                # The server will not continue from here (the .part may be complete or stale): start over.
                file.truncate(0)
                offset = 0
                continue
            raise WeightsError(f"download of weights {spec.name!r} failed: HTTP {exc.code} {exc.reason}",
                               path=url, hint=hint) from None
        except urllib.error.URLError as exc:
            raise WeightsError(f"download of weights {spec.name!r} failed: {exc.reason}", path=url,
                               hint=hint) from None
        except TimeoutError as exc:
            raise WeightsError(f"download of weights {spec.name!r} timed out ({exc})", path=url,
                               hint=hint) from None
        except (http.client.HTTPException, ConnectionError) as exc:  # cut off mid-body; the .part is kept
            raise WeightsError(f"download of weights {spec.name!r} was interrupted ({type(exc).__name__}: "
                               f"{exc})", path=url, hint=hint) from None
        except OSError as exc:  # e.g. the disk filled up while writing the .part
            raise WeightsError(f"download of weights {spec.name!r} failed: {exc}", path=url,
                               hint=hint) from None
    raise WeightsError(f"the server refused to send weights {spec.name!r}", path=url, hint=hint)


def _check_bounds(spec: WeightsSpec, url: str, file: BinaryIO, done: int, first: int, limit: int,
                  started: float) -> None:
    """Cut a download off that brings more than ``limit`` bytes (the .part is emptied: nothing in it is worth
    resuming), trickles below :data:`MIN_RATE_BYTES_S` or runs past :data:`MAX_DOWNLOAD_S` (the .part is kept)."""
    if done > limit:
        file.truncate(0)
        raise WeightsError(f"the server sent more than the {limit:,} bytes weights {spec.name!r} may have; "
                           "download stopped", path=url, hint="check the URL")
    elapsed = time.monotonic() - started
    if elapsed > MAX_DOWNLOAD_S or (elapsed > RATE_GRACE_S and (done - first) / elapsed < MIN_RATE_BYTES_S):
        raise WeightsError(f"download of weights {spec.name!r} is too slow ({(done - first) / elapsed / 1024:,.1f} "
                           f"KiB/s after {elapsed:.0f} s); stopped", path=url,
                           hint="run the same command again later to resume, or download the file by hand and "
                                f"run 'remaster weights import FILE --name {spec.name}'")


def _prepare_body(response: Any, file: BinaryIO, offset: int) -> int | None:
    """Position ``file`` for the body about to be read; returns the full size if the server said it."""
    status = response.status
    if status == 206 and offset:
        match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
        if match and int(match.group(1)) == offset:
            return int(match.group(2)) if match.group(2) != "*" else None
        # A partial answer starting elsewhere cannot be appended; throw the .part away (next run starts clean).
        file.truncate(0)
        raise http.client.HTTPException(f"the server answered the resume request with "
                                        f"{response.headers.get('Content-Range')!r}")
    # 200: the server ignored (or was not sent) Range and sends the whole file, so restart from zero.
    file.truncate(0)
    file.seek(0)
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None
