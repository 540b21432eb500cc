"""The web page of ``remaster serve``: its static files (``static/`` inside the package: no build step, nothing
fetched from elsewhere), the log-in by the token in the address, and the file ``remaster serve --open`` opens.

Logging in: ``GET /?token=TOKEN`` (the address the server prints, Jupyter's convention) answers ``303 See Other``
to ``/`` with the session cookie, so the page is never shown with the token in its address, and the token never
reaches the history as a page one can go back to. The cookie holds a second random secret of the server (not the
token), is ``HttpOnly; SameSite=Strict; Path=/v1`` (only the API needs it) and ends with the browser's session or
the server. A wrong token answers ``303`` to ``/#token-refused``, where the page says so. The page itself (``/``,
``/static/...``) needs no credentials and holds no data: without the cookie its calls to ``/v1`` get 401, and it
shows how to get in. Every answer of the page carries a Content-Security-Policy that allows nothing but this
server (``'self'``, ``blob:`` and ``data:`` images), so no request of the page can leave the machine.
"""

from __future__ import annotations

import hmac
import html
import mimetypes
import os
import secrets
from contextlib import suppress
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["cookie_name", "page_routes", "PUBLIC_PATHS", "login_url", "write_open_file", "remove_open_file",
           "SECURITY_HEADERS"]

#: Paths that need no credentials: the page and its static files (``/static/*``: the files under it).
PUBLIC_PATHS = frozenset({"/", "/favicon.ico", "/static/*"})

#: Sent with every file of the page.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
                               "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png", ".txt": "text/plain"}


def cookie_name(port: int) -> str:
    """The session cookie's name: cookies do not separate ports, so two servers' cookies must not replace each other."""
    return f"remaster-{port}"


def login_url(url: str, token: str) -> str:
    return f"{url}/?token={token}"


def _static_files() -> dict[str, bytes]:
    """The page's files by name, read once (a fixed set: no client-supplied name is ever looked up on disk)."""
    folder = resources.files("remaster.server").joinpath("static")
    files = {}
    for entry in folder.iterdir():
        if entry.is_file() and not entry.name.startswith("."):
            files[entry.name] = entry.read_bytes()
    return files


def page_routes(*, token: str, session: tuple[str, str]) -> list[Any]:
    """The routes of the page: ``/`` (and the log-in by ``?token=``) and ``/static/{name}``."""
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from remaster.server.http import HTTPError

    files = _static_files()
    cookie, value = session

    def send(name: str) -> Response:
        media_type = _TYPES.get(Path(name).suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
        return Response(files[name], media_type=media_type, headers=SECURITY_HEADERS)

    async def index(request: Request) -> Response:
        supplied = request.query_params.get("token")
        if supplied is None:
            return send("index.html")
        headers = {**SECURITY_HEADERS}
        if hmac.compare_digest(supplied.encode(), token.encode()):
            headers["Location"] = "/"
            headers["Set-Cookie"] = f"{cookie}={value}; HttpOnly; SameSite=Strict; Path=/v1"
        else:
            headers["Location"] = "/#token-refused"
        return Response(b"", status_code=303, headers=headers)

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in files:
            raise HTTPError(404, f"no such file {request.url.path}", kind="NotFound")
        return send(name)

    async def favicon(request: Request) -> Response:
        return send("icon.svg")

    return [Route("/", index, methods=["GET", "HEAD"]),
            Route("/favicon.ico", favicon, methods=["GET", "HEAD"]),
            Route("/static/{name:str}", static, methods=["GET", "HEAD"])]


def _open_file(server_file: Path, port: int) -> Path:
    return server_file.with_name(f"{server_file.stem}-{port}-open.html")


def write_open_file(server_file: Path, port: int, url: str) -> Path:
    """What ``remaster serve --open`` hands the browser: a file (mode 0600, beside the server file) that moves on to
    the log-in address, so the token never appears in a command line that other users could list (Jupyter does the
    same)."""
    path = _open_file(server_file, port)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    quoted = html.escape(url, quote=True)
    text = (f'<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url={quoted}">'
            f'<title>remaster</title><p><a href="{quoted}">Open remaster</a></p>\n')
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "w", encoding="utf-8") as file:
        file.write(text)
    os.replace(temp, path)
    return path


def remove_open_file(server_file: Path, port: int) -> None:
    with suppress(OSError):
        _open_file(server_file, port).unlink()
