"""The guard of ``remaster serve``: :class:`Guard`, the ASGI middleware that checks the Host header (loopback
names only, against DNS rebinding), the ``Origin`` and the bearer token or the web page's session cookie before
anything else runs; and :func:`is_loopback`, whether a listening address names only this machine.

The cookie is only half of a browser's credentials: SameSite does not separate the ports of 127.0.0.1, so a page of
another local server is "same-site" and its requests would carry the cookie. What separates them is the origin:
every request whose ``Origin`` is not the server's own is refused, and a request that authenticates with the
cookie must also say, by the browser's ``Sec-Fetch-Site`` header, that it comes from the server's own page
(``same-origin``), which covers the requests that carry no ``Origin`` (an ``<img>``, a top-level link).
"""

from __future__ import annotations

import hmac
import re
import socket
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from remaster.server.http import HTTPError, json_response

__all__ = ["Guard", "is_loopback", "cookie_value", "LOOPBACK_NAMES"]

#: Names a Host header may carry: loopback only, so a DNS-rebinding page cannot reach the server.
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


#: A Host header as RFC 9110 has it: a name or an IPv4 address, or an IPv6 address in brackets, then an optional
#: port; nothing else (``127.0.0.1:8765@evil.example`` is no host of this server).
_HOST = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9.-]+))(?::\d{1,5})?")


def _hostname(host_header: str) -> str:
    """The name in a Host header, or ``""`` for one that is not a plain host and port (refused)."""
    match = _HOST.fullmatch(host_header.strip())
    if match is None:
        return ""
    return match["v6"] or match["name"]


def cookie_value(header: str, name: str) -> str | None:
    """The value of cookie ``name`` in a ``Cookie`` header, or ``None``."""
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value
    return None


class Guard:
    """ASGI middleware that checks Host, Origin and the bearer token (or the page's cookie) before anything else runs.

    Args:
        app: The application behind it.
        token: The bearer token every request must carry.
        hostnames: Names the Host header may use.
        origins: Origins a request may come from (the server's own; browsers
            send ``Origin`` on cross-site requests, plug-ins send none).
        session: The session cookie's ``(name, value)`` that the web page's requests may carry instead of the
            token; none by default.
        public: Paths that need no credentials (the page's static files, which hold no data); ``GET`` and
            ``HEAD`` only. A path ending in ``/*`` stands for every path under it.
    """

    def __init__(self, app: Any, *, token: str, hostnames: set[str], origins: set[str],
                 session: tuple[str, str] | None = None, public: frozenset[str] = frozenset()):
        self.app = app
        self.expected = f"Bearer {token}".encode()
        self.hostnames = hostnames
        self.origins = origins
        self.session = session
        self.public = public

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        refusal = self.check(headers, scope.get("method", "GET"), scope.get("path", ""))
        if refusal is not None:
            return await json_response(refusal.body(), refusal.status, refusal.headers)(scope, receive, send)
        return await self.app(scope, receive, send)

    def is_public(self, method: str, path: str) -> bool:
        return method in ("GET", "HEAD") and (path in self.public or any(
            pattern.endswith("/*") and path.startswith(pattern[:-1]) for pattern in self.public))

    def check(self, headers: dict[str, str], method: str = "GET", path: str = "") -> HTTPError | None:
        if _hostname(headers.get("host", "")).lower() not in self.hostnames:
            return HTTPError(403, f"requests for host {headers.get('host', '(none)')!r} are refused",
                             hint="use http://127.0.0.1:PORT", kind="Forbidden")
        origin = headers.get("origin")
        if origin is not None and origin not in self.origins:
            return HTTPError(403, f"requests from origin {origin!r} are refused", kind="Forbidden",
                             hint="the server takes requests from local programs, not web pages")
        if self.is_public(method, path):
            return None
        supplied = headers.get("authorization", "").encode("latin-1")
        if not supplied and self.session is not None:
            name, expected = self.session
            cookie = cookie_value(headers.get("cookie", ""), name)
            if cookie is not None and hmac.compare_digest(cookie.encode("latin-1"), expected.encode()):
                return self.check_page(headers)
        if not hmac.compare_digest(supplied, self.expected):
            what = "a wrong token" if supplied else "no token"
            return HTTPError(401, f"the request carries {what}", kind="Unauthorized",
                             hint="send 'Authorization: Bearer TOKEN' with the token from the server file, or "
                                  "open the page's address that remaster serve printed (it ends in ?token=...)",
                             headers={"WWW-Authenticate": "Bearer"})
        return None

    def check_page(self, headers: dict[str, str]) -> HTTPError | None:
        """A request with the session cookie must come from the server's own page: ``Sec-Fetch-Site:
        same-origin``, or, from a browser that sends no fetch metadata, an ``Origin`` of the server's own."""
        site = headers.get("sec-fetch-site")
        if site == "same-origin" or (site is None and headers.get("origin") in self.origins):
            return None
        return HTTPError(403, f"a request with the session cookie from {site or 'an unknown page'!r} is refused",
                         kind="Forbidden", hint="only the server's own page may use its cookie; use a browser "
                                                "that sends Sec-Fetch-Site (any current one)")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine."""
    with suppress(OSError):
        return all(str(info[4][0]) in ("127.0.0.1", "::1") or str(info[4][0]).startswith("127.")
                   for info in socket.getaddrinfo(host.strip("[]"), None))
    return False
