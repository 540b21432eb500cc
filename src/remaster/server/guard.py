"""The guard of ``remaster serve``: :class:`Guard`, the ASGI middleware that checks the Host header (loopback
names only, against DNS rebinding), the ``Origin`` and the bearer token before anything else runs; and
:func:`is_loopback`, whether a listening address names only this machine.
"""

from __future__ import annotations

import hmac
import re
import socket
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from remaster.server.http import HTTPError, json_response

__all__ = ["Guard", "is_loopback", "LOOPBACK_NAMES"]

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
            return await json_response(refusal.body(), refusal.status, refusal.headers)(scope, receive, send)
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


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine."""
    with suppress(OSError):
        return all(str(info[4][0]) in ("127.0.0.1", "::1") or str(info[4][0]).startswith("127.")
                   for info in socket.getaddrinfo(host.strip("[]"), None))
    return False
