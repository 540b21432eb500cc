"""The web page's side of ``remaster serve``, over plain HTTP: the log-in address on stderr, the token exchanged
for a cookie by a redirect, the cookie accepted only from the server's own page, the page public but holding no
data, ``--open``, and every format :mod:`remaster.io` reads accepted as a job's body (the browser tests are
tests/web/).
"""

from __future__ import annotations

import io as stdio
import json
import os
import queue
import re
import stat
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image as PILImage

from remaster import Remasterer, io

PIPELINE = "bicubic(scale=2)"


@pytest.fixture(scope="module")
def server(remaster_server):
    return remaster_server("--device", "cpu")


def stderr_line(server, starts: str, timeout: float = 30) -> str:
    """The first line of the server's stderr that starts with ``starts`` (waiting at most ``timeout`` seconds)."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in server.process.stderr:
            lines.put(line)
            if line.startswith(starts):
                return

    threading.Thread(target=read, daemon=True).start()
    deadline, seen = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=max(0.01, deadline - time.monotonic())))
        except queue.Empty:
            break
        if seen[-1].startswith(starts):
            return seen[-1].strip()
    pytest.fail(f"no stderr line starting {starts!r}: {seen}")


def cookie_of(server) -> tuple[str, str]:
    """Log in by the token address: the cookie's name and value from the redirect."""
    status, headers, _ = server.raw("GET", f"/?token={server.token}", token=None)
    assert status == 303
    name, _, rest = headers["set-cookie"].partition("=")
    return name, rest.split(";")[0]


def page_request(server, method: str, path: str, *, site: str | None = "same-origin", origin: str | None = None,
                 cookie: str | None = "default", body: bytes | None = None, headers: dict | None = None):
    """A request as a browser with the cookie sends it (no Authorization header)."""
    headers = dict(headers or {})
    if cookie is not None:
        name, value = cookie_of(server)
        headers["Cookie"] = f"other=1; {name}={value if cookie == 'default' else cookie}"
    if site is not None:
        headers["Sec-Fetch-Site"] = site
    if origin is not None:
        headers["Origin"] = origin
    return server.raw(method, path, body=body, headers=headers, token=None)


def png(array: np.ndarray, fmt: str = "PNG", **params) -> bytes:
    buffer = stdio.BytesIO()
    PILImage.fromarray(array).save(buffer, format=fmt, **params)
    return buffer.getvalue()


# ---------------------------------------------------------------- the address and the log-in


def test_the_log_in_address_is_on_stderr_and_ready_stays_first_on_stdout(server):
    line = stderr_line(server, "remaster: the web page: ")
    assert line.endswith(f"{server.url}/?token={server.token}")  # the server file's token


def test_the_page_is_public_and_holds_no_data(server):
    status, headers, body = server.raw("GET", "/", token=None)
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in headers["content-security-policy"] and "connect-src 'self'" in \
        headers["content-security-policy"]
    assert headers["referrer-policy"] == "no-referrer" and headers["x-content-type-options"] == "nosniff"
    assert server.token.encode() not in body and b"version" not in body
    assert not any(key.startswith("access-control-") for key in headers)
    for path in ("/v1/health", "/v1/presets", "/v1/stages"):
        assert server.raw("GET", path, token=None)[0] == 401


def test_the_token_address_sets_a_strict_http_only_cookie_and_redirects_it_away(server):
    status, headers, body = server.raw("GET", f"/?token={server.token}", token=None)
    assert status == 303 and headers["location"] == "/" and body == b""
    cookie = [part.strip() for part in headers["set-cookie"].split(";")]
    name, value = cookie[0].split("=", 1)
    assert name == f"remaster-{urlsplit(server.url).port}"  # cookies do not separate ports: the name does
    assert value and value != server.token and server.token not in headers["set-cookie"]
    assert {"HttpOnly", "SameSite=Strict", "Path=/v1"} <= set(cookie)
    assert not any(part.lower().startswith(("expires", "max-age", "domain")) for part in cookie)  # a session cookie


def test_a_wrong_token_sets_no_cookie(server):
    status, headers, _ = server.raw("GET", "/?token=not-the-token", token=None)
    assert status == 303 and headers["location"] == "/#token-refused" and "set-cookie" not in headers


def test_the_cookie_works_from_the_page_itself(server):
    status, _, body = page_request(server, "GET", "/v1/health")
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, _, _ = page_request(server, "GET", "/v1/health", site=None, origin=server.url)  # no fetch metadata
    assert status == 200


@pytest.mark.parametrize(("site", "origin"), [
    ("same-site", None),          # another port of 127.0.0.1 is the same site: SameSite lets the cookie through
    ("cross-site", None),
    ("none", None),               # typed into the address bar or a bookmark: not the page
    (None, None),                 # neither fetch metadata nor an Origin
    ("same-origin", "http://127.0.0.1:1"),
])
def test_the_cookie_from_anywhere_else_is_refused(server, site, origin):
    status, headers, body = page_request(server, "GET", "/v1/health", site=site, origin=origin)
    assert status == 403 and "access-control-allow-origin" not in headers
    assert json.loads(body)["error"]["type"] == "Forbidden"


def test_a_cross_origin_post_with_the_cookie_is_refused_and_queues_nothing(server):
    before = server.client.health()["queue"]["waiting"]
    origin = f"http://127.0.0.1:{urlsplit(server.url).port + 1}"
    status, headers, _ = page_request(server, "POST", "/v1/jobs", site="same-site", origin=origin,
                                      body=png(np.zeros((8, 8, 3), np.uint8)),
                                      headers={"Content-Type": "image/png",
                                               "X-Remaster-Options": json.dumps({"pipeline": PIPELINE})})
    assert status == 403 and not any(key.startswith("access-control-") for key in headers)
    assert server.client.health()["queue"]["waiting"] == before


def test_a_wrong_cookie_is_401(server):
    assert page_request(server, "GET", "/v1/health", cookie="forged")[0] == 401


@pytest.mark.parametrize("path", ["/static/../server.json", "/static/nothing.js", "/static/%2e%2e%2fapp.py"])
def test_only_the_page_s_own_files_are_served(server, path):
    status, _, body = server.raw("GET", path, token=None)
    assert status == 404 and b"token" not in body


def test_the_page_s_files_are_served_with_their_types(server):
    for name, media in (("app.js", "text/javascript"), ("style.css", "text/css"), ("icon.svg", "image/svg+xml")):
        status, headers, _ = server.raw("GET", f"/static/{name}", token=None)
        assert status == 200 and headers["content-type"].startswith(media), name
        assert "content-security-policy" in headers


def test_the_page_has_no_address_outside_the_server():
    static = Path(__file__).parents[1] / "src" / "remaster" / "server" / "static"
    elsewhere = re.compile(r"(?:https?:)?//(?!127\.0\.0\.1[:/]|www\.w3\.org/2000/svg)[\w.-]+\.\w|@import|url\(")
    for path in static.iterdir():
        if path.suffix in (".html", ".js", ".css", ".svg"):
            found = elsewhere.search(path.read_text(encoding="utf-8"))
            assert found is None, (path.name, found)


# ---------------------------------------------------------------- any format io reads


@pytest.mark.parametrize(("fmt", "content_type"), [
    ("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("BMP", "image/bmp"), ("GIF", "image/gif"),
    ("JPEG", "image/png"),                # the type only claims an image: the bytes say which
    ("PNG", "application/octet-stream"),
])
def test_every_format_io_reads_is_accepted_from_its_bytes(server, fmt, content_type):
    array = np.random.default_rng(7).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    data = png(array, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    job = server.client.submit(data, PIPELINE, content_type=content_type)
    result = server.client.result(job) if _done(server, job) else None
    assert result is not None
    expected = io.encode(Remasterer(PIPELINE, device="cpu").run_image(io.load(data)), "png")
    np.testing.assert_array_equal(io.to_numpy(io.load(result), np.uint8), io.to_numpy(io.load(expected), np.uint8))


def _done(server, job: str, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = server.client.job(job)["state"]
        if state in ("done", "failed", "cancelled"):
            return state == "done"
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "image/", ""])
def test_a_body_that_claims_no_image_is_415(server, content_type):
    status, _, body = server.raw("POST", "/v1/jobs", body=b"{}", headers={
        "Content-Type": content_type, "X-Remaster-Options": json.dumps({"pipeline": PIPELINE})})
    assert status == 415 and "image" in json.loads(body)["error"]["hint"]


def test_an_unreadable_image_says_so_in_words(server):
    status, _, body = server.raw("POST", "/v1/jobs", body=b"GIF89a but not really", headers={
        "Content-Type": "image/gif", "X-Remaster-Options": json.dumps({"pipeline": PIPELINE})})
    error = json.loads(body)["error"]
    assert status == 422 and ("corrupt" in error["message"] or "not an image" in error["message"])


# ---------------------------------------------------------------- --open


def test_open_hands_the_browser_a_private_file_that_moves_on_to_the_log_in_address(remaster_server, tmp_path,
                                                                                     monkeypatch):
    record = tmp_path / "browser.txt"
    browser = tmp_path / "browser.py"
    browser.write_text(f"import sys\nopen({str(record)!r}, 'w').write(sys.argv[1])\n")
    monkeypatch.setenv("BROWSER", f"{sys.executable} {browser} %s")
    server = remaster_server("--device", "cpu", "--open")
    deadline = time.monotonic() + 30
    while not record.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    opened = record.read_text()
    assert opened.startswith("file://") and server.token not in opened  # no token in a command line
    path = Path(urlsplit(opened).path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.parent == server.file.parent
    assert f"{server.url}/?token={server.token}" in path.read_text()
    assert server.stop() == 0 and not path.exists() and not os.path.exists(server.file)
