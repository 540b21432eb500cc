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

This module assembles the app (:func:`build_app`) and runs it (:func:`serve`); the guard is in
:mod:`remaster.server.guard`, the queue and its worker in :mod:`remaster.server.jobs`, the request and
response helpers in :mod:`remaster.server.http` and the presets in :mod:`remaster.server.presets`.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import threading
import traceback
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from remaster import __version__, io
from remaster.errors import ImageTooLargeError, RemasterError, UsageError
from remaster.io.atomic import check_regular
from remaster.pipeline import devices
from remaster.pipeline.options import PipelineOptions
from remaster.pipeline.remasterer import Remasterer
from remaster.plugin.host import PluginHost, get_host
from remaster.plugin.syntax import parse_pipeline
from remaster.server.client import server_file
from remaster.server.files import refuse_client_files
from remaster.server.guard import LOOPBACK_NAMES, Guard
from remaster.server.http import (
    OPTIONS_HEADER,
    RESULT_TYPES,
    HTTPError,
    claims_an_image,
    json_response,
    parse_options,
    read_body,
    status_for,
)
from remaster.server.jobs import DEFAULT_MAX_QUEUE, Job, JobQueue
from remaster.server.presets import available_presets
from remaster.server.web import PUBLIC_PATHS, cookie_name, login_url, page_routes, remove_open_file, write_open_file

__all__ = ["ServerConfig", "build_app", "serve", "DEFAULT_MAX_PIXELS", "DEFAULT_MAX_REQUEST_BYTES"]

log = logging.getLogger(__name__)

#: Largest input accepted by default (64 MP: an 8K x 8K layer).
DEFAULT_MAX_PIXELS = 64_000_000
#: Largest request body accepted by default: an 8K x 8K RGBA layer as a PNG fits. With the queue's 8 places, the
#: bodies a server holds at most, (queue + 1) x this, stay near 1.4 GiB (docs/editors.md, "Memory").
DEFAULT_MAX_REQUEST_BYTES = 160 * 2**20


@dataclass
class ServerConfig:
    """What ``remaster serve`` was asked for.

    Attributes:
        host: Address to listen on (loopback by default).
        port: TCP port; 0 picks a free one.
        options: How jobs run (:class:`PipelineOptions`): ``device`` (``auto``, ``cpu``, ``cuda:N``),
            ``max_pixels`` (largest input image; :data:`DEFAULT_MAX_PIXELS` unless given),
            ``max_output_pixels`` (largest result, checked before a job is queued); a request sets the tile.
        allow_files: Folders whose files a client may name (model files as stages, file parameters); none by
            default (:mod:`remaster.server.files`).
        max_request_bytes: Largest request body.
        max_queue: Jobs that may wait; more get 503.
        server_file: Where the address and token are written (mode 0600).
        open_browser: Open the web page in the default browser once the server is ready
            (:func:`remaster.server.web.write_open_file`).
    """

    host: str = "127.0.0.1"
    port: int = 0
    options: PipelineOptions = field(default_factory=lambda: PipelineOptions(max_pixels=DEFAULT_MAX_PIXELS))
    allow_files: tuple[Path, ...] = ()
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_queue: int = DEFAULT_MAX_QUEUE
    server_file: Path = field(default_factory=server_file)
    open_browser: bool = False


def build_app(config: ServerConfig, queue: JobQueue, *, token: str, origins: set[str],
              host: PluginHost | None = None, session: tuple[str, str] | None = None) -> Any:
    """The Starlette app, wrapped in :class:`Guard`; ``host`` gives its stages (default: the process-wide one).

    Args:
        session: The web page's session cookie, ``(name, value)``; without it the app serves no page.
    """
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    host = host.ensure_loaded() if host is not None else get_host()
    device = devices.resolve_device(config.options.device)
    max_pixels = config.options.max_pixels if config.options.max_pixels is not None else DEFAULT_MAX_PIXELS
    # The Vulkan device the network stages will compute on, if any: a --device vulkan that cannot work stops here.
    vulkan = devices.pick_vulkan(config.options.device, host.vulkan_devices,
                                 runs_on_vulkan=any(spec.info.vulkan for spec in host.stages))
    device_text = devices.describe_target(device, vulkan)
    # The device name the jobs' pipelines get. Vulkan computes on host tensors, so ``device`` is the CPU there: a
    # job given str(device) ran its network on the CPU. Where Vulkan was picked, they get the name asked for
    # (vulkan[:N]; auto, which takes that device for the pipelines with Vulkan stages only).
    job_device = config.options.device if vulkan is not None else str(device)
    allowed_files = tuple(Path(folder).expanduser().resolve() for folder in config.allow_files)

    async def health(request: Request) -> Response:
        return json_response({"status": "ok", "version": __version__, "device": device_text,
                      "queue": {"waiting": queue.waiting, "max": config.max_queue},
                      "limits": {"max_request_bytes": config.max_request_bytes, "max_pixels": max_pixels,
                                 "max_output_pixels": config.options.max_output_pixels}})

    async def stages(request: Request) -> Response:
        return json_response({"stages": [spec.as_json() for spec in host.stages],
                      "plugin_errors": [str(error) for error in host.errors]})

    async def presets(request: Request) -> Response:
        return json_response({"presets": available_presets(host)})

    def prepare(data: bytes, pipeline: str, result_format: str, tile: int | str) -> Job:
        """The job of a request, admitted from the image's header alone: the body stays encoded until the worker
        runs it, so the server's memory is bounded by the queue, not by the number of requests."""
        try:
            calls = parse_pipeline(pipeline)
        except RemasterError as exc:
            raise HTTPError.from_remaster(exc, status_for(exc)) from None
        refuse_client_files(calls, host, allowed_files)
        try:
            remasterer = Remasterer(calls, config.options.replace(device=job_device, tile=tile,
                                                                  max_pixels=max_pixels), host=host)
        except RemasterError as exc:
            raise HTTPError.from_remaster(exc, status_for(exc)) from None
        try:
            header = io.read_header(data, max_pixels=max_pixels)
        except RemasterError as exc:
            raise HTTPError.from_remaster(exc, status_for(exc)) from None
        try:
            height, width, colour = remasterer.plan(header.height, header.width, header.channels)
        except ImageTooLargeError as exc:  # the request was fine; the result it asks for is not allowed
            raise HTTPError.from_remaster(exc, 422) from None
        except RemasterError as exc:
            raise HTTPError.from_remaster(exc, status_for(exc)) from None
        # plan() counts colour channels; alpha goes through every stage and is in the result too (RGBA: 4).
        output = (height, width, colour + header.has_alpha)
        return Job(secrets.token_hex(16), pipeline, result_format, tile, remasterer, data, output,
                   stages=remasterer.stage_plan(header.bit_depth), max_pixels=max_pixels,
                   input=(header.height, header.width))

    async def submit(request: Request) -> Response:
        if queue.full:  # refuse before reading a large body
            raise HTTPError(503, f"the queue is full ({config.max_queue} jobs waiting)", kind="QueueFull",
                            hint="try again in a little while", headers={"Retry-After": str(queue.retry_after())})
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not claims_an_image(content_type):
            raise HTTPError(415, f"the body must be an image, not {content_type or 'untyped'!r}",
                            hint="send the image's bytes with Content-Type: image/... (PNG, JPEG, WebP, TIFF, BMP, "
                                 "GIF: the format is read from the bytes) or application/octet-stream")
        pipeline, result_format, tile = parse_options(request.headers.get(OPTIONS_HEADER))
        with queue.reserve():  # a slot is held while the body is read: bodies in memory are bounded by the queue
            data = await read_body(request, config.max_request_bytes)
            job = await run_in_threadpool(prepare, data, pipeline, result_format, tile)
            queue.submit(job)
        return json_response(job.status(), 202, {"Location": f"/v1/jobs/{job.id}"})

    async def job_status(request: Request) -> Response:
        return json_response(queue.get(request.path_params["job_id"]).status())

    async def job_result(request: Request) -> Response:
        job = queue.get(request.path_params["job_id"])
        if job.state != "done" or job.result is None:
            hint = (job.error or {}).get("message") if job.state == "failed" else "poll the job until its state is done"
            raise HTTPError(409, f"job {job.id} has no result: it is {job.state}", hint=hint, kind="NotReady")
        return Response(job.result, media_type=RESULT_TYPES[job.result_format])

    async def job_cancel(request: Request) -> Response:
        return json_response(queue.cancel(request.path_params["job_id"]).status())

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPError)
        return json_response(exc.body(), exc.status, exc.headers)

    async def starlette_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = {404: f"no such endpoint {request.url.path}", 405: f"{request.method} is not allowed here"}
        error = HTTPError(exc.status_code, message.get(exc.status_code, str(exc.detail)), kind="RequestError",
                          hint="see docs/editors.md for the API")
        return json_response(error.body(), exc.status_code, dict(exc.headers or {}))

    async def internal_error(request: Request, exc: Exception) -> Response:
        log.error("request %s %s failed:\n%s", request.method, request.url.path, traceback.format_exc())
        error = HTTPError(500, f"internal error: {type(exc).__name__}: {exc}", kind="InternalError")
        return json_response(error.body(), 500)

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
            *(page_routes(token=token, session=session) if session is not None else []),
        ],
        exception_handlers={HTTPError: http_error, HTTPException: starlette_error, Exception: internal_error},
    )
    hostnames = set(LOOPBACK_NAMES) | {config.host.strip("[]").lower()}
    return Guard(app, token=token, hostnames=hostnames, origins=origins, session=session,
                 public=PUBLIC_PATHS if session is not None else frozenset())


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
    """Write the address and token readable by this user only (0600), replacing any older file atomically; a FIFO or
    device node at ``path`` is refused, never replaced (remaster writes only regular files)."""
    check_regular(path)
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


def serve(config: ServerConfig, *, announce: Callable[[str, str], None] | None = None,
          host: PluginHost | None = None) -> int:
    """Run the server until interrupted; ``announce(url, login)`` is called once it accepts requests, with the
    web page's log-in address (``URL/?token=TOKEN``, the server file's token).

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
    session = (cookie_name(port), secrets.token_urlsafe(32))  # the page's cookie: a second secret, not the token
    queue = JobQueue(config.max_queue)
    app = build_app(config, queue, token=token, origins=origins, host=host, session=session)
    _write_server_file(config.server_file, {"url": url, "token": token, "pid": os.getpid(), "version": __version__})

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if not self.started:
                return
            if announce is not None:
                announce(url, login_url(url, token))
            if config.open_browser:
                _open_browser(config.server_file, port, login_url(url, token))

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
        remove_open_file(config.server_file, port)
        sock.close()
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 0


def _open_browser(server_file: Path, port: int, login: str) -> None:
    """Open the page in the default browser (``$BROWSER`` if set), through a file that holds the log-in address."""
    import webbrowser

    def run() -> None:
        try:
            path = write_open_file(server_file, port, login)
            if not webbrowser.open(path.as_uri()):
                log.warning("no web browser could be started; open the address above by hand")
        except Exception as exc:  # a missing browser must not stop the server
            log.warning("could not open a web browser (%s); open the address above by hand", exc)

    threading.Thread(target=run, name="remaster-open-browser", daemon=True).start()


class _Stopped(Exception):
    """SIGTERM arrived (raised from the signal handler so that ``finally`` blocks run)."""


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise _Stopped
