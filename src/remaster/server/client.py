"""A client for ``remaster serve`` that needs nothing but the Python standard library.

The GIMP and Krita plug-ins run inside the editors' own Python, which cannot
import torch or even numpy, so this module uses only ``urllib``, ``json``,
``zlib`` and ``subprocess``. The plug-in installers copy this one file next to
each plug-in (``remaster_client.py``); inside remaster it is
``remaster.server.client``, and the server reads :func:`server_file` from here so both
sides agree where the address and token live.

Example:
    >>> client = connect()                       # finds a running server or starts one
    >>> png = client.run(open("in.png", "rb").read(), "bicubic(scale=2)", progress=print)
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["ServerError", "Client", "server_file", "read_server_file", "start_server", "connect", "encode_png",
           "swap_red_blue", "FALLBACK_PRESETS", "dialog_presets", "face_variant", "preset_pipeline",
           "running_presets"]

#: Environment variable naming the server file (address + token) instead of the default place.
SERVER_FILE_ENV = "REMASTER_SERVER_FILE"

#: The presets an older server, one without ``GET /v1/presets`` (HTTP 404), is taken to offer: those
#: remaster-realesrgan and remaster-gfpgan register, as the dialogs listed them before the server did.
FALLBACK_PRESETS: list[dict[str, Any]] = [
    {"id": "upscale-x4", "label": "upscale x4", "pipeline": "realesrgan-x4plus", "faces_of": None, "order": 10,
     "description": "Real-ESRGAN x4plus: four times the size, for photos", "plugin": "realesrgan"},
    {"id": "upscale-x4-faces", "label": "upscale x4, restore faces", "faces_of": "upscale-x4", "order": 11,
     "pipeline": "gfpgan(upscale=4.0, background='realesrgan-x4plus')",
     "description": "GFPGAN faces on a Real-ESRGAN x4 background", "plugin": "gfpgan"},
    {"id": "upscale-x2", "label": "upscale x2", "pipeline": "realesrgan-x4plus(scale=2)", "faces_of": None,
     "order": 20, "description": "Real-ESRGAN x4plus resampled to twice the size", "plugin": "realesrgan"},
    {"id": "upscale-x2-faces", "label": "upscale x2, restore faces", "faces_of": "upscale-x2", "order": 21,
     "pipeline": "gfpgan(upscale=2.0, background='realesrgan-x4plus')",
     "description": "GFPGAN faces on a Real-ESRGAN x2 background", "plugin": "gfpgan"},
]


def dialog_presets(presets: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The presets a dialog lists as choices: all but the face variants (those the "Restore faces" box picks)."""
    return [preset for preset in presets if not preset.get("faces_of")]


def face_variant(presets: Sequence[dict[str, Any]], preset_id: str) -> dict[str, Any] | None:
    """The face-restoring variant of the preset ``preset_id``, or ``None`` if the server offers none."""
    return next((preset for preset in presets if preset.get("faces_of") == preset_id), None)


def preset_pipeline(presets: Sequence[dict[str, Any]], preset_id: str, *, faces: bool = False) -> str:
    """The pipeline string of the preset ``preset_id`` (its face variant's if ``faces``).

    Raises:
        ServerError: the server offers no such preset, or no face restoration for it.
    """
    chosen = next((preset for preset in dialog_presets(presets) if preset["id"] == preset_id), None)
    if chosen is None:
        raise ServerError(f"the remaster server offers no preset {preset_id!r}",
                          hint="choose another preset, or install the plugin that provides it")
    if faces:
        variant = face_variant(presets, preset_id)
        if variant is None:
            raise ServerError(f"the remaster server offers no face restoration for {chosen['label']!r}",
                              hint="install remaster-gfpgan, or untick 'Restore faces'")
        chosen = variant
    return str(chosen["pipeline"])


def running_presets() -> list[dict[str, Any]]:
    """The presets of the server that is running, or :data:`FALLBACK_PRESETS` if none answers (never starts one).

    For dialogs, which are shown before a server is started: the list is the running server's when there is one.
    """
    try:
        return connect(command=None).presets()
    except ServerError:
        return list(FALLBACK_PRESETS)


class ServerError(Exception):
    """The server refused a request or a job failed; ``str()`` is the message to show the user.

    Attributes:
        status: HTTP status (0 when the server could not be reached).
        message: What happened, from the server's JSON error.
        hint: What to do about it, if the server said.
    """

    def __init__(self, message: str, *, status: int = 0, hint: str | None = None):
        self.status = status
        self.message = message
        self.hint = hint
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


def server_file() -> Path:
    """Where ``remaster serve`` writes its address and token (mode 0600).

    ``$REMASTER_SERVER_FILE`` if set; else ``server.json`` in the user's
    configuration folder: ``$XDG_CONFIG_HOME/remaster`` (``~/.config/remaster``)
    on Linux, ``~/Library/Application Support/remaster`` on macOS and
    ``%APPDATA%\\remaster`` on Windows.
    """
    named = os.environ.get(SERVER_FILE_ENV)
    if named:
        return Path(named).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "remaster" / "server.json"


def read_server_file(path: Path | None = None) -> dict[str, Any] | None:
    """The ``{"url", "token", "pid", ...}`` a server wrote, or ``None`` if there is none."""
    try:
        info = json.loads((path or server_file()).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and "url" in info and "token" in info else None


class Client:
    """Talks to one server. Every method raises :class:`ServerError` with a message fit for a message box.

    Args:
        url: ``http://127.0.0.1:PORT`` as printed on the server's ``READY`` line.
        token: The bearer token from the server file.
        timeout: Seconds to wait for any single HTTP request.
    """

    def __init__(self, url: str, token: str, *, timeout: float = 60.0):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request; returns status, headers and body, raising :class:`ServerError` for 4xx/5xx."""
        request = urllib.request.Request(self.url + path, data=body, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 (loopback URL)
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            raise _error_from_response(exc.code, exc.read()) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServerError(f"cannot reach the remaster server at {self.url}: {reason}",
                              hint="is 'remaster serve' running?") from None

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return json.loads(self.request(method, path, **kwargs)[2] or b"null")

    def health(self) -> dict[str, Any]:
        """``{"status": "ok", "version", "device", ...}``."""
        return self._json("GET", "/v1/health")

    def stages(self) -> list[dict[str, Any]]:
        """Every stage the server can run, with its parameters."""
        return self._json("GET", "/v1/stages")["stages"]

    def presets(self) -> list[dict[str, Any]]:
        """The editor presets the server offers, in dialog order (``GET /v1/presets``).

        Each is ``{"id", "label", "pipeline", "description", "faces_of", "order", "plugin"}``; a preset with
        ``faces_of`` is the face-restoring variant of the preset it names. A server too old to list presets
        (404) gets :data:`FALLBACK_PRESETS`.
        """
        try:
            return self._json("GET", "/v1/presets")["presets"]
        except ServerError as exc:
            if exc.status != 404:
                raise
            return list(FALLBACK_PRESETS)

    def submit(self, image: bytes, pipeline: str, *, result_format: str = "png", tile: int | str | None = None,
               content_type: str = "image/png") -> str:
        """Queue a job; returns its id. ``image`` is PNG or TIFF bytes."""
        options: dict[str, Any] = {"pipeline": pipeline, "format": result_format}
        if tile is not None:
            options["tile"] = tile
        headers = {"Content-Type": content_type, "X-Remaster-Options": json.dumps(options)}
        return self._json("POST", "/v1/jobs", body=image, headers=headers)["id"]

    def job(self, job_id: str) -> dict[str, Any]:
        """``{"id", "state", "progress", "error", ...}``; state is queued, running, done, failed or cancelled."""
        return self._json("GET", f"/v1/jobs/{job_id}")

    def result(self, job_id: str) -> bytes:
        """The finished job's image (PNG or TIFF, as asked)."""
        return self.request("GET", f"/v1/jobs/{job_id}/result")[2]

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a queued or running job (or forget a finished one)."""
        return self._json("DELETE", f"/v1/jobs/{job_id}")

    def wait(self, job_id: str, *, progress: Callable[[float], Any] | None = None, poll: float = 0.25,
             should_cancel: Callable[[], bool] | None = None) -> dict[str, Any]:
        """Poll until the job ends; ``progress(fraction)`` is called on each poll.

        Raises:
            ServerError: The job failed or was cancelled (``should_cancel()``
                returning true cancels it on the server first).
        """
        while True:
            if should_cancel is not None and should_cancel():
                self.cancel(job_id)
                raise ServerError("cancelled")
            status = self.job(job_id)
            if progress is not None:
                progress(float(status.get("progress", 0.0)))
            if status["state"] == "done":
                return status
            if status["state"] in ("failed", "cancelled"):
                error = status.get("error") or {"message": f"the job was {status['state']}"}
                raise ServerError(error.get("message", "the job failed"), hint=error.get("hint"))
            time.sleep(poll)

    def run(self, image: bytes, pipeline: str, *, progress: Callable[[float], Any] | None = None,
            should_cancel: Callable[[], bool] | None = None, **options: Any) -> bytes:
        """Submit, wait and fetch: the result image's bytes."""
        job_id = self.submit(image, pipeline, **options)
        try:
            self.wait(job_id, progress=progress, should_cancel=should_cancel)
            return self.result(job_id)
        finally:
            try:
                self.cancel(job_id)  # frees the result on the server; harmless if already gone
            except ServerError:
                pass


def _error_from_response(status: int, body: bytes) -> ServerError:
    try:
        error = json.loads(body)["error"]
        return ServerError(error["message"], status=status, hint=error.get("hint"))
    except (ValueError, KeyError, TypeError):
        text = body.decode("utf-8", "replace").strip()[:200]
        return ServerError(f"the server answered HTTP {status}: {text or 'no details'}", status=status)


def start_server(command: Sequence[str] = ("remaster",), *, args: Sequence[str] = (),
                 timeout: float = 120.0) -> tuple[Client, subprocess.Popen[str]]:
    """Start ``remaster serve --port 0`` and wait for its ``READY http://HOST:PORT`` line.

    Args:
        command: How to run remaster, e.g. ``["/home/me/venv/bin/remaster"]``.
        args: More options for ``serve`` (``--device cuda``).
        timeout: Seconds to wait for the server to come up (loading torch takes a while).
    """
    argv = [*command, "serve", "--port", "0", *args]
    # stderr goes to a file, not a pipe: nobody reads the server's warnings once the editor's script is done,
    # and a full pipe would stall the server. Its own session keeps it alive when the editor's script ends.
    errors = tempfile.TemporaryFile(mode="w+", prefix="remaster-serve-")
    try:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors, text=True,
                                   stdin=subprocess.DEVNULL, start_new_session=os.name == "posix")
    except OSError as exc:
        raise ServerError(f"cannot start {' '.join(argv)}: {exc.strerror or exc}",
                          hint="install remaster, or set the path of the 'remaster' command in the dialog") from None
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("READY "):
            info = read_server_file()
            url = line.split(None, 1)[1].strip()
            if info is None or info.get("url") != url:
                process.terminate()
                raise ServerError(f"the server at {url} did not write its token to {server_file()}")
            return Client(url, info["token"]), process
        if not line and process.poll() is not None:
            errors.seek(0)
            err = errors.read().strip().splitlines()
            raise ServerError(f"'remaster serve' stopped: {err[-1] if err else f'exit code {process.returncode}'}")
    process.terminate()
    raise ServerError(f"'remaster serve' did not become ready within {timeout:.0f} s")


def connect(command: Sequence[str] | None = ("remaster",), **start_options: Any) -> Client:
    """A client for the running server (from the server file), starting one with ``command`` if none answers.

    The started server keeps running after the editor's script ends, so the
    next call finds it; ``command=None`` never starts one.
    """
    info = read_server_file()
    if info is not None:
        client = Client(info["url"], info["token"])
        try:
            client.health()
            return client
        except ServerError:
            pass
    if command is None:
        raise ServerError("no remaster server is running", hint="start one with 'remaster serve'")
    client, _process = start_server(command, **start_options)
    return client


def encode_png(pixels: bytes, width: int, height: int, channels: int, depth: int) -> bytes:
    """PNG bytes for raw interleaved pixels (gray, gray+alpha, RGB or RGBA; 8 or 16 bits, native byte order).

    No filtering, so this is as fast as ``zlib``; the server re-encodes results itself.
    """
    if depth not in (8, 16) or channels not in (1, 2, 3, 4):
        raise ValueError(f"cannot write {channels}-channel {depth}-bit PNG")
    row = width * channels * depth // 8
    if len(pixels) != row * height:
        raise ValueError(f"expected {row * height} bytes of pixels, got {len(pixels)}")
    if depth == 16 and sys.byteorder == "little":
        samples = array("H", pixels)
        samples.byteswap()  # PNG stores 16-bit samples big-endian
        pixels = samples.tobytes()
    raw = b"".join(b"\x00" + pixels[top * row:(top + 1) * row] for top in range(height))
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6))
            + chunk(b"IEND", b""))


def swap_red_blue(pixels: bytes, channels: int, depth: int) -> bytes:
    """BGR(A) <-> RGB(A) for raw interleaved pixels (Krita stores BGRA)."""
    samples = array("H" if depth == 16 else "B", pixels)
    samples[0::channels], samples[2::channels] = samples[2::channels], samples[0::channels]
    return samples.tobytes()
