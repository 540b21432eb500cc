"""The local HTTP service behind the GIMP and Krita plug-ins: ``remaster serve``.

Editors' embedded Pythons cannot import torch, so the plug-ins send the layer
here and get the result back. The service is a Starlette app on uvicorn that
only calls the library: :class:`~remaster.Remasterer` runs the pipeline,
:mod:`remaster.io` decodes and encodes, the plugin host lists the stages and the editor presets, and
every :class:`~remaster.errors.RemasterError` becomes a JSON error with an HTTP
status.

Safety: it listens on loopback unless told otherwise; every request needs the
random bearer token written (mode 0600) to :func:`remaster.server.client.server_file`;
the Host header must name a loopback address (against DNS rebinding) and any
``Origin`` other than the server's own is refused, and no CORS headers are
sent, so web pages cannot drive it. Request bytes, input pixels and output
pixels (from :meth:`Remasterer.plan`, before anything runs) are limited, the
queue is bounded (503 with ``Retry-After``), and one worker thread per device
runs jobs one at a time. Images never touch the disk: decoded from the request
body, results encoded in memory, so a failed or cancelled job leaves no files.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import signal
import socket
import threading
import time
import traceback
from collections import OrderedDict, deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from remaster import __version__, io
from remaster.pipeline import devices
from remaster.errors import ImageTooLargeError, InputError, OutputError, RemasterError, StageError, UsageError
from remaster.io.image import Image
from remaster.pipeline.remasterer import DEFAULT_MAX_OUTPUT_PIXELS, Remasterer
from remaster.pipeline.syntax import parse_pipeline, parse_stage
from remaster.plugin.host import PluginHost, get_host
from remaster.server.client import server_file

__all__ = ["ServerConfig", "JobQueue", "build_app", "serve", "DEFAULT_MAX_PIXELS", "DEFAULT_MAX_REQUEST_BYTES"]

log = logging.getLogger(__name__)

#: Largest input accepted by default (64 MP: an 8K x 8K layer).
DEFAULT_MAX_PIXELS = 64_000_000
#: Largest request body accepted by default.
DEFAULT_MAX_REQUEST_BYTES = 512 * 2**20
#: Jobs waiting behind the running one before new ones get 503.
DEFAULT_MAX_QUEUE = 8
#: Finished jobs whose results are kept until fetched and deleted; the oldest go first.
KEEP_FINISHED = 16
#: Names a Host header may carry: loopback only, so a DNS-rebinding page cannot reach the server.
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
#: What a request body may be (the bytes themselves are sniffed; the type only has to claim an image).
IMAGE_TYPES = {"image/png", "image/tiff", "application/octet-stream"}
RESULT_TYPES = {"png": "image/png", "tiff": "image/tiff"}
OPTIONS_HEADER = "x-remaster-options"


@dataclass
class ServerConfig:
    """What ``remaster serve`` was asked for.

    Attributes:
        host: Address to listen on (loopback by default).
        port: TCP port; 0 picks a free one.
        device: Where jobs run (``auto``, ``cpu``, ``cuda:N``).
        max_pixels: Largest input image, in pixels.
        max_output_pixels: Largest result, checked before a job is queued.
        max_request_bytes: Largest request body.
        max_queue: Jobs that may wait; more get 503.
        server_file: Where the address and token are written (mode 0600).
    """

    host: str = "127.0.0.1"
    port: int = 0
    device: str = "auto"
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_output_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_queue: int = DEFAULT_MAX_QUEUE
    server_file: Path = field(default_factory=server_file)


class HTTPError(Exception):
    """A refusal with its status; becomes ``{"error": {...}}``."""

    def __init__(self, status: int, message: str, *, hint: str | None = None, kind: str = "RequestError",
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.hint, self.kind, self.headers = status, message, hint, kind, headers or {}

    @classmethod
    def from_remaster(cls, exc: RemasterError, status: int) -> HTTPError:
        message = f"{exc.path}: {exc.message}" if exc.path else exc.message
        return cls(status, message, hint=exc.hint, kind=type(exc).__name__)

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "hint": self.hint, "type": self.kind, "status": self.status}}


def status_for(exc: RemasterError) -> int:
    """The HTTP status of a library error raised while checking a request."""
    if isinstance(exc, ImageTooLargeError):
        return 413
    if isinstance(exc, (InputError, UsageError, StageError)):
        return 422  # well-formed request, but the image or pipeline cannot be used
    if isinstance(exc, OutputError):
        return 422
    return 500


class JobCancelled(Exception):
    """Raised from the progress callback to stop a cancelled job."""


@dataclass
class Job:
    id: str
    pipeline: str
    result_format: str
    tile: int | str
    remasterer: Remasterer
    image: Image | None
    output: tuple[int, int, int]
    state: str = "queued"
    progress: float = 0.0
    error: dict[str, Any] | None = None
    result: bytes | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    #: Per stage: name, device and precision; planned for the input's bit depth, then what actually ran.
    stages: list[dict[str, str]] = field(default_factory=list)

    def status(self) -> dict[str, Any]:
        height, width, channels = self.output
        return {"id": self.id, "state": self.state, "progress": round(self.progress, 4), "pipeline": self.pipeline,
                "format": self.result_format, "output": {"width": width, "height": height, "channels": channels},
                "stages": self.stages, "error": self.error, "created": self.created, "finished": self.finished}


class JobQueue:
    """Jobs by id, the waiting line, and the one worker thread that runs them on the device.

    Args:
        max_queue: Jobs that may wait behind the running one.
        keep_finished: Finished jobs kept for their results; older ones are forgotten.
    """

    def __init__(self, max_queue: int = DEFAULT_MAX_QUEUE, keep_finished: int = KEEP_FINISHED):
        self.max_queue = max_queue
        self.keep_finished = keep_finished
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self._waiting: deque[Job] = deque()
        self._ready = threading.Condition()
        self._stopping = False
        self._worker = threading.Thread(target=self._work, name="remaster-worker", daemon=True)
        self.seconds_per_job = 5.0  # a running average, for Retry-After
        # The last pipelines run, with their stages built: a second upscale does not load the network again.
        self._remasterers: OrderedDict[tuple[str, int | str], Remasterer] = OrderedDict()

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        with self._ready:
            self._stopping = True
            for job in self.jobs.values():
                job.cancel.set()
            self._ready.notify_all()
        self._worker.join(timeout=10)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def full(self) -> bool:
        return self.waiting >= self.max_queue

    def retry_after(self) -> int:
        return max(1, round(self.seconds_per_job * (len(self._waiting) + 1)))

    def submit(self, job: Job) -> None:
        with self._ready:
            if self.full:
                raise HTTPError(503, f"the queue is full ({self.max_queue} jobs waiting)",
                                hint="try again in a little while", kind="QueueFull",
                                headers={"Retry-After": str(self.retry_after())})
            self.jobs[job.id] = job
            self._waiting.append(job)
            self._forget_old()
            self._ready.notify()

    def get(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise HTTPError(404, f"no job {job_id!r}", hint="it may have finished and been deleted", kind="NotFound")
        return job

    def cancel(self, job_id: str) -> Job:
        """Cancel a waiting or running job; a finished one is forgotten with its result."""
        with self._ready:
            job = self.get(job_id)
            if job.state == "queued":
                self._waiting.remove(job)
                self._end(job, "cancelled")
            elif job.state == "running":
                job.cancel.set()
                job.state = "cancelling"
            else:
                del self.jobs[job_id]
            return job

    def _end(self, job: Job, state: str, *, result: bytes | None = None, error: dict[str, Any] | None = None) -> None:
        job.state, job.result, job.error = state, result, error
        job.image = None  # the decoded input is the big thing; free it as soon as the job ends
        job.finished = time.time()

    def _forget_old(self) -> None:
        finished = [job for job in self.jobs.values() if job.finished is not None]
        for job in finished[: max(0, len(finished) - self.keep_finished)]:
            del self.jobs[job.id]

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._waiting and not self._stopping:
                    self._ready.wait()
                if self._stopping:
                    return
                job = self._waiting.popleft()
                job.state = "running"
            self._run(job)

    def _remasterer_for(self, job: Job, keep: int = 2) -> Remasterer:
        key = (job.pipeline, job.tile)
        remasterer = self._remasterers.pop(key, None) or job.remasterer
        self._remasterers[key] = remasterer
        while len(self._remasterers) > keep:
            self._remasterers.popitem(last=False)
        return remasterer

    def _run(self, job: Job) -> None:
        started = time.monotonic()

        def progress(fraction: float) -> None:
            if job.cancel.is_set():
                raise JobCancelled
            job.progress = fraction

        state, result, error = "done", None, None
        try:
            assert job.image is not None
            # The integer result wherever the encoding quantises anyway: a huge result never exists as floats.
            image = self._remasterer_for(job).run_for_file(job.image, f"result.{job.result_format}",
                                                           progress=progress)
            job.stages = list(image.meta.extras.get("stages", job.stages))
            progress(1.0)
            result = io.encode(image, job.result_format)
        except JobCancelled:
            state = "cancelled"
        except RemasterError as exc:
            state, error = "failed", HTTPError.from_remaster(exc, 500).body()["error"]
        except Exception as exc:  # a bug in a stage must fail the job, not the worker
            log.error("job %s failed:\n%s", job.id, traceback.format_exc())
            state = "failed"
            error = HTTPError(500, f"internal error: {type(exc).__name__}: {exc}", kind="InternalError").body()["error"]
        with self._ready:
            if job.cancel.is_set():
                state, result, error = "cancelled", None, None
            self._end(job, state, result=result, error=error)
            if state == "done":
                job.progress = 1.0
                self.seconds_per_job = 0.7 * self.seconds_per_job + 0.3 * (time.monotonic() - started)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Any:
    from starlette.responses import Response

    return Response(json.dumps(body), status_code=status, headers=headers, media_type="application/json")


def _hostname(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[1:].split("]", 1)[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class Guard:
    """ASGI middleware that checks Host, Origin and the bearer token before anything else runs.

    Args:
        app: The application behind it.
        token: The bearer token every request must carry.
        hostnames: Names the Host header may use.
        origins: Origins a request may come from (the server's own; browsers
            send ``Origin`` on cross-site requests, plug-ins send none).
    """

    def __init__(self, app: Any, *, token: str, hostnames: set[str], origins: set[str]):
        self.app = app
        self.expected = f"Bearer {token}".encode()
        self.hostnames = hostnames
        self.origins = origins

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        refusal = self.check(headers)
        if refusal is not None:
            return await _json(refusal.body(), refusal.status, refusal.headers)(scope, receive, send)
        return await self.app(scope, receive, send)

    def check(self, headers: dict[str, str]) -> HTTPError | None:
        if _hostname(headers.get("host", "")).lower() not in self.hostnames:
            return HTTPError(403, f"requests for host {headers.get('host', '(none)')!r} are refused",
                             hint="use http://127.0.0.1:PORT", kind="Forbidden")
        origin = headers.get("origin")
        if origin is not None and origin not in self.origins:
            return HTTPError(403, f"requests from origin {origin!r} are refused", kind="Forbidden",
                             hint="the server takes requests from local programs, not web pages")
        supplied = headers.get("authorization", "").encode("latin-1")
        if not hmac.compare_digest(supplied, self.expected):
            what = "a wrong token" if supplied else "no token"
            return HTTPError(401, f"the request carries {what}", kind="Unauthorized",
                             hint="send 'Authorization: Bearer TOKEN' with the token from the server file",
                             headers={"WWW-Authenticate": "Bearer"})
        return None


def _options(raw: str | None) -> tuple[str, str, int | str]:
    """The pipeline, result format and tile from the ``X-Remaster-Options`` JSON header."""
    if not raw:
        raise HTTPError(400, "the request has no X-Remaster-Options header",
                        hint='send X-Remaster-Options: {"pipeline": "bicubic(scale=2)"}')
    try:
        options = json.loads(raw)
    except ValueError as exc:
        raise HTTPError(400, f"X-Remaster-Options is not valid JSON: {exc}") from None
    if not isinstance(options, dict):
        raise HTTPError(400, "X-Remaster-Options must be a JSON object")
    unknown = sorted(set(options) - {"pipeline", "format", "tile"})
    if unknown:
        raise HTTPError(400, f"unknown option(s) {', '.join(unknown)}", hint="options are pipeline, format, tile")
    pipeline, result_format, tile = options.get("pipeline"), options.get("format", "png"), options.get("tile", "auto")
    if not isinstance(pipeline, str) or not pipeline.strip():
        raise HTTPError(400, "the option 'pipeline' must be a non-empty string", hint='e.g. "bicubic(scale=2)"')
    if result_format not in RESULT_TYPES:
        raise HTTPError(400, f"the option 'format' must be png or tiff, not {result_format!r}")
    if not (tile == "auto" or (isinstance(tile, int) and not isinstance(tile, bool) and tile >= 0)):
        raise HTTPError(400, f"the option 'tile' must be 'auto' or a size in pixels, not {tile!r}")
    return pipeline, result_format, tile


async def _read_body(request: Any, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    too_big = HTTPError(413, f"the request is larger than the limit of {limit:,} bytes", kind="RequestTooLarge",
                        hint="send a smaller image, or restart the server with a higher --max-request-bytes")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:  # a chunked body that never said its length
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def available_presets(host: PluginHost) -> list[dict[str, Any]]:
    """The presets ``GET /v1/presets`` lists: those whose stages are all installed, in dialog order.

    A preset whose pipeline names a missing stage (or whose ``requires`` does), or cannot be read, is left out,
    and so is a face variant whose plain preset is left out: the dialogs could not offer it.
    """
    usable: dict[str, Any] = {}
    for preset in host.presets:
        try:
            names = [parse_stage(stage)[0] for stage in parse_pipeline(preset.pipeline)]
        except UsageError:
            log.warning("preset %r of plugin %r has an unreadable pipeline %r", preset.name, preset.plugin,
                        preset.pipeline)
            continue
        if all(name in host.stages for name in (*names, *preset.requires)):
            usable[preset.name] = preset
    return [preset.as_json() for preset in usable.values()
            if preset.faces_of is None or (preset.faces_of in usable and usable[preset.faces_of].faces_of is None)]


def build_app(config: ServerConfig, queue: JobQueue, *, token: str, origins: set[str],
              host: PluginHost | None = None) -> Any:
    """The Starlette application, wrapped in :class:`Guard`; ``host`` gives its stages (default: the process-wide one)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    host = host.ensure_loaded() if host is not None else get_host()
    device = devices.resolve_device(config.device)
    device_text = devices.describe_device(device)

    async def health(request: Request) -> Response:
        return _json({"status": "ok", "version": __version__, "device": device_text,
                      "queue": {"waiting": queue.waiting, "max": config.max_queue},
                      "limits": {"max_request_bytes": config.max_request_bytes, "max_pixels": config.max_pixels,
                                 "max_output_pixels": config.max_output_pixels}})

    async def stages(request: Request) -> Response:
        return _json({"stages": [spec.as_json() for spec in host.stages],
                      "plugin_errors": [str(error) for error in host.errors]})

    async def presets(request: Request) -> Response:
        return _json({"presets": available_presets(host)})

    def prepare(data: bytes, pipeline: str, result_format: str, tile: int | str) -> Job:
        try:
            remasterer = Remasterer(pipeline, device=device, tile=tile, max_pixels=config.max_pixels,
                                    max_output_pixels=config.max_output_pixels, host=host)
        except RemasterError as exc:
            raise HTTPError.from_remaster(exc, status_for(exc)) from None
        try:
            image = io.load(data, max_pixels=config.max_pixels)
        except RemasterError as exc:
            raise HTTPError.from_remaster(exc, status_for(exc)) from None
        try:
            height, width, colour = remasterer.plan(image.height, image.width, image.channels)
        except ImageTooLargeError as exc:  # the request was fine; the result it asks for is not allowed
            raise HTTPError.from_remaster(exc, 422) from None
        except RemasterError as exc:
            raise HTTPError.from_remaster(exc, status_for(exc)) from None
        # plan() counts colour channels; alpha goes through every stage and is in the result too (RGBA: 4).
        output = (height, width, colour + (image.alpha is not None))
        return Job(secrets.token_hex(16), pipeline, result_format, tile, remasterer, image, output,
                   stages=remasterer.stage_plan(image.meta.bit_depth))

    async def submit(request: Request) -> Response:
        if queue.full:  # refuse before reading a large body
            raise HTTPError(503, f"the queue is full ({config.max_queue} jobs waiting)", kind="QueueFull",
                            hint="try again in a little while", headers={"Retry-After": str(queue.retry_after())})
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in IMAGE_TYPES:
            raise HTTPError(415, f"the body must be a PNG or TIFF image, not {content_type or 'untyped'!r}",
                            hint="send Content-Type: image/png or image/tiff")
        pipeline, result_format, tile = _options(request.headers.get(OPTIONS_HEADER))
        data = await _read_body(request, config.max_request_bytes)
        job = await run_in_threadpool(prepare, data, pipeline, result_format, tile)
        queue.submit(job)
        return _json(job.status(), 202, {"Location": f"/v1/jobs/{job.id}"})

    async def job_status(request: Request) -> Response:
        return _json(queue.get(request.path_params["job_id"]).status())

    async def job_result(request: Request) -> Response:
        job = queue.get(request.path_params["job_id"])
        if job.state != "done" or job.result is None:
            hint = (job.error or {}).get("message") if job.state == "failed" else "poll the job until its state is done"
            raise HTTPError(409, f"job {job.id} has no result: it is {job.state}", hint=hint, kind="NotReady")
        return Response(job.result, media_type=RESULT_TYPES[job.result_format])

    async def job_cancel(request: Request) -> Response:
        return _json(queue.cancel(request.path_params["job_id"]).status())

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPError)
        return _json(exc.body(), exc.status, exc.headers)

    async def starlette_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = {404: f"no such endpoint {request.url.path}", 405: f"{request.method} is not allowed here"}
        error = HTTPError(exc.status_code, message.get(exc.status_code, str(exc.detail)), kind="RequestError",
                          hint="see docs/editors.md for the API")
        return _json(error.body(), exc.status_code, dict(exc.headers or {}))

    async def internal_error(request: Request, exc: Exception) -> Response:
        log.error("request %s %s failed:\n%s", request.method, request.url.path, traceback.format_exc())
        error = HTTPError(500, f"internal error: {type(exc).__name__}: {exc}", kind="InternalError")
        return _json(error.body(), 500)

    job_path = "/v1/jobs/{job_id:str}"
    app = Starlette(
        routes=[
            Route("/v1/health", health, methods=["GET"]),
            Route("/v1/stages", stages, methods=["GET"]),
            Route("/v1/presets", presets, methods=["GET"]),
            Route("/v1/jobs", submit, methods=["POST"]),
            Route(job_path, job_status, methods=["GET"]),
            Route(job_path, job_cancel, methods=["DELETE"]),
            Route(job_path + "/result", job_result, methods=["GET"]),
        ],
        exception_handlers={HTTPError: http_error, HTTPException: starlette_error, Exception: internal_error},
    )
    hostnames = set(LOOPBACK_NAMES) | {config.host.strip("[]").lower()}
    return Guard(app, token=token, hostnames=hostnames, origins=origins)


def _bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    if os.name == "posix":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                         hint="pick another --port, or --port 0 for any free one") from None
    sock.listen(128)
    return sock


def _write_server_file(path: Path, info: dict[str, Any]) -> None:
    """Write the address and token readable by this user only (0600), replacing any older file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with open(fd, "w", encoding="utf-8") as file:
            json.dump(info, file)
        os.chmod(temp, 0o600)  # whatever the umask
        os.replace(temp, path)
    except BaseException:
        with suppress(OSError):
            temp.unlink()
        raise


def _remove_server_file(path: Path, token: str) -> None:
    """Remove the file only if it is still ours (a newer server may have replaced it)."""
    with suppress(OSError, ValueError):
        if json.loads(path.read_text(encoding="utf-8")).get("token") == token:
            path.unlink()


def serve(config: ServerConfig, *, announce: Callable[[str], None] | None = None,
          host: PluginHost | None = None) -> int:
    """Run the server until interrupted; ``announce(url)`` is called once it accepts requests.

    Args:
        host: The plugin host whose stages and presets it serves (default: the process-wide one).
    """
    import uvicorn

    sock = _bind(config.host, config.port)
    port = sock.getsockname()[1]
    url_host = f"[{config.host.strip('[]')}]" if ":" in config.host else config.host
    url = f"http://{url_host}:{port}"
    names = {url_host, "127.0.0.1", "localhost", "[::1]"}
    origins = {f"http://{name}:{port}" for name in names}
    token = secrets.token_urlsafe(32)
    queue = JobQueue(config.max_queue)
    app = build_app(config, queue, token=token, origins=origins, host=host)
    _write_server_file(config.server_file, {"url": url, "token": token, "pid": os.getpid(), "version": __version__})

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and announce is not None:
                announce(url)

    uvicorn_config = uvicorn.Config(app, http="h11", lifespan="off", log_level="warning", access_log=False,
                                    server_header=False, timeout_graceful_shutdown=5)
    queue.start()
    # uvicorn stops gracefully on SIGINT/SIGTERM, then re-raises the signal to the handler it found: make that
    # handler end the process through the clean-up below, so the token file never outlives the server.
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm) if in_main_thread else None
    try:
        _Server(uvicorn_config).run(sockets=[sock])
    except (KeyboardInterrupt, _Stopped):
        pass  # Ctrl-C or SIGTERM is how a server is meant to stop
    finally:
        queue.stop()
        _remove_server_file(config.server_file, token)
        sock.close()
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 0


class _Stopped(Exception):
    """SIGTERM arrived (raised from the signal handler so that ``finally`` blocks run)."""


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise _Stopped


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine."""
    with suppress(OSError):
        return all(info[4][0] in ("127.0.0.1", "::1") or info[4][0].startswith("127.")
                   for info in socket.getaddrinfo(host.strip("[]"), None))
    return False
