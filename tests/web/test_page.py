"""The web page of ``remaster serve`` in a real browser: Debian's chromium, headless, driven by selenium against a
real ``remaster serve --port 0`` on loopback. Fast stages (``nearest``, ``lanczos``) stand in for the networks.

Every test's requests are collected from DevTools' Network events and its console from the browser's log; the
last tests check that none left the machine and that the console had no errors but the refusals the tests
provoked on purpose.
"""

from __future__ import annotations

import io as stdio
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image as PILImage
from web_browser import console_errors, off_machine, requested_urls, start_chromium, wait_for

from remaster import Remasterer, io

pytestmark = pytest.mark.slow

SEEN_URLS: list[str] = []
CONSOLE: list[dict] = []
#: Console errors the tests provoke: the page's health check without a cookie (401), an unreadable file (422), the
#: API opened by a link rather than by the page (403).
PROVOKED = ("status of 401", "status of 422", "status of 403")


@pytest.fixture(scope="module")
def server(remaster_server):
    return remaster_server("--device", "cpu")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    PILImage.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(folder / "photo.png")
    PILImage.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(folder / "cat.jpg", quality=95)
    (folder / "broken.png").write_bytes(b"this is not an image, whatever its name says")
    for n in range(8):  # for cancelling: big enough that lanczos x4 takes a moment on a CPU
        PILImage.fromarray(rng.integers(0, 256, (600, 800, 3), dtype=np.uint8)).save(folder / f"big{n}.png")
    return folder


@pytest.fixture(scope="module")
def downloads(tmp_path_factory):
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(browser_paths, downloads):
    driver = start_chromium(*browser_paths, downloads)
    yield driver
    driver.quit()


@pytest.fixture(autouse=True)
def _collect(request):
    """After each test, keep what its browsers asked for and logged."""
    yield
    if "browser" in request.fixturenames:
        keep(request.getfixturevalue("browser"))


def keep(driver) -> None:
    SEEN_URLS.extend(requested_urls(driver))
    CONSOLE.extend(console_errors(driver))


def page_state(browser) -> dict:
    return browser.execute_script(
        "return {login: !document.getElementById('login').hidden, app: !document.getElementById('app').hidden,"
        " reason: document.getElementById('login-reason').textContent}")


def log_in(browser, server) -> None:
    browser.get(f"{server.url}/?token={server.token}")
    wait_for(lambda: page_state(browser)["app"], "the page to log in")


def items(browser) -> list[dict]:
    return browser.execute_script(
        "return [...document.querySelectorAll('#items li')].map(li => ({state: li.dataset.state,"
        " name: li.querySelector('.name').textContent, detail: li.querySelector('.detail').textContent,"
        " error: li.querySelector('.error').hidden ? null : li.querySelector('.error').textContent,"
        " progress: li.querySelector('progress').value}))")


def choose(browser, model: str, scale: str | None = None) -> None:
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("id", "model")).select_by_value(model)
    if scale is not None:
        Select(browser.find_element("id", "scale")).select_by_value(scale)


def add(browser, *paths: Path) -> None:
    browser.find_element("id", "files").send_keys("\n".join(str(path) for path in paths))


def clear(browser) -> None:
    browser.execute_script("document.getElementById('clear').click()")
    wait_for(lambda: not browser.find_elements("css selector", "#items li"), "the list to clear")


def settled(browser) -> list[dict]:
    return wait_for(lambda: (lambda found: found if found and all(
        item["state"] in ("done", "failed", "cancelled") for item in found) else None)(items(browser)),
        "every item to finish")


def downloaded(folder: Path, name: str) -> Path:
    path = folder / name
    wait_for(lambda: path.exists() and not list(folder.glob("*.crdownload")), f"the download {name}")
    return path


# ---------------------------------------------------------------- getting in


def test_without_the_token_the_page_says_how_to_get_in_and_shows_no_data(browser, server):
    browser.get(f"{server.url}/")
    wait_for(lambda: page_state(browser)["login"], "the log-in help")
    state = page_state(browser)
    assert not state["app"] and "?token=" in browser.find_element("id", "login").text
    text = browser.find_element("tag name", "body").text
    assert "cpu" not in browser.find_element("id", "server-line").text and "nearest" not in text


def test_a_wrong_token_is_refused_in_words(browser, server):
    browser.get(f"{server.url}/?token=not-this-one")
    wait_for(lambda: "not this server's" in page_state(browser)["reason"], "the refusal")
    assert "token" not in urlsplit(browser.current_url).query and not page_state(browser)["app"]


def test_the_token_address_logs_in_and_the_token_leaves_the_address(browser, server):
    log_in(browser, server)
    assert browser.current_url == f"{server.url}/" and server.token not in browser.current_url
    assert browser.execute_script("return document.cookie") == ""  # HttpOnly: no script can read it
    assert browser.execute_script("return history.length") <= 4  # no page of the history was shown with it
    assert "cpu" in browser.find_element("id", "server-line").text


def test_the_choices_come_from_the_server_and_are_remembered(browser, server):
    values = browser.execute_script("return [...document.querySelectorAll('#model option')].map(o => o.value)")
    assert "preset:upscale-x4" in values and "stage:nearest" in values and "stage:lanczos" in values
    choose(browser, "stage:nearest", "4")
    browser.refresh()
    wait_for(lambda: page_state(browser)["app"], "the page")
    assert browser.execute_script("return [model.value, scale.value]") == ["stage:nearest", "4"]


# ---------------------------------------------------------------- doing the job


def test_upscale_compare_and_download(browser, server, images, downloads):
    choose(browser, "stage:nearest", "4")
    browser.execute_script(
        "window.__states = []; new MutationObserver(ms => ms.forEach(m => m.target.dataset && m.target.dataset.state"
        " && __states.push(m.target.dataset.state))).observe(document.getElementById('items'),"
        " {subtree: true, attributes: true, attributeFilter: ['data-state']})")
    add(browser, images / "photo.png", images / "cat.jpg")
    browser.find_element("id", "start").click()
    found = settled(browser)
    assert [item["state"] for item in found] == ["done", "done"], found
    assert all(item["progress"] == 1 for item in found)
    assert {"uploading", "queued", "fetching"} <= set(browser.execute_script("return window.__states"))
    assert "32 × 24 → 128 × 96" in found[0]["detail"] and "nearest" in found[0]["detail"] and " s" in found[0]["detail"]
    # The comparison: shown for the first result to finish, the input enlarged without smoothing to the result's
    # size. Both run at once on the server, so either may be first: the rest of this test looks at photo.png's.
    if "photo.png" not in browser.find_element("id", "viewer-title").text:
        browser.find_element("css selector", "#items li:first-child .compare").click()
    wait_for(lambda: browser.execute_script("return document.getElementById('after').naturalWidth") == 128,
             "the result in the viewer")
    viewer = browser.execute_script(
        "const b = document.getElementById('before'), a = document.getElementById('after');"
        "const rb = b.getBoundingClientRect(), ra = a.getBoundingClientRect();"
        "return {visible: !document.getElementById('viewer').hidden, before: [b.naturalWidth, b.naturalHeight],"
        " after: [a.naturalWidth, a.naturalHeight], same: rb.width === ra.width && rb.height === ra.height,"
        " pixelated: getComputedStyle(b).imageRendering, info: document.getElementById('viewer-info').textContent}")
    assert viewer["visible"] and viewer["before"] == [32, 24] and viewer["after"] == [128, 96] and viewer["same"]
    assert viewer["pixelated"] == "pixelated" and "128 × 96" in viewer["info"] and "fp32" in viewer["info"]
    browser.find_element("css selector", "[data-zoom='1']").click()
    assert browser.execute_script("return document.getElementById('stage').dataset.zoom") == "1"
    # Download one: named after the original with what ran, the library's pixels.
    browser.find_element("css selector", "#items li .download").click()
    path = downloaded(downloads, "photo_x4.png")
    expected = Remasterer("nearest(scale=4)", device="cpu").run_image(io.load(images / "photo.png"))
    np.testing.assert_array_equal(io.to_numpy(io.load(path), np.uint8), io.to_numpy(expected, np.uint8))
    # Download all: one zip holding both.
    browser.find_element("id", "download-all").click()
    archive = downloaded(downloads, "remaster-results.zip")
    with zipfile.ZipFile(archive) as zipped:
        assert zipped.testzip() is None and sorted(zipped.namelist()) == ["cat_x4.png", "photo_x4.png"]
        assert PILImage.open(stdio.BytesIO(zipped.read("cat_x4.png"))).size == (160, 120)
    clear(browser)


def test_an_unreadable_file_s_error_is_shown_in_words(browser, server, images):
    add(browser, images / "broken.png")
    browser.find_element("id", "start").click()
    [item] = settled(browser)
    assert item["state"] == "failed" and "not an image" in item["error"] and "PNG, JPEG" in item["error"]
    clear(browser)


def test_cancel_one_and_cancel_all(browser, server, images):
    choose(browser, "stage:lanczos", "4")
    add(browser, *(images / f"big{n}.png" for n in range(6)))
    browser.find_element("id", "start").click()
    # The page sends three at a time: the last waits in the page, and is cancelled there.
    browser.execute_script("document.querySelectorAll('#items li')[5].querySelector('.cancel').click()")
    wait_for(lambda: items(browser)[5]["state"] == "cancelled", "the last one to be cancelled")
    wait_for(lambda: any(item["state"] in ("queued", "running") for item in items(browser)), "a job on the server")
    browser.find_element("id", "cancel-all").click()
    found = settled(browser)
    assert all(item["state"] in ("cancelled", "done") for item in found) and \
        sum(item["state"] == "cancelled" for item in found) >= 3, found
    wait_for(lambda: server.client.health()["queue"]["waiting"] == 0, "the server's queue to empty")
    clear(browser)


# ---------------------------------------------------------------- quality of the page


def test_fifty_queued_images_keep_the_page_responsive(browser, server, images, tmp_path):
    data = (images / "big0.png").read_bytes()
    many = []
    for n in range(50):
        many.append(tmp_path / f"holiday{n:02}.png")
        many[-1].write_bytes(data)
    browser.execute_script("window.__long = []; new PerformanceObserver(list => list.getEntries().forEach("
                           "e => __long.push(e.duration))).observe({type: 'longtask', buffered: false})")
    add(browser, *many)
    wait_for(lambda: browser.execute_script(
        "return [...document.querySelectorAll('#items .thumb')].filter(t => t.naturalWidth === 160).length") == 50,
        "fifty thumbnails")
    longest = max(browser.execute_script("return window.__long") or [0])
    assert longest < 250, f"the page stalled for {longest:.0f} ms"
    assert browser.find_element("id", "start").text == "Remaster 50 images"
    clear_waiting = "document.querySelectorAll('#items li .remove').forEach(b => b.click())"
    browser.execute_script(clear_waiting)
    wait_for(lambda: not browser.find_elements("css selector", "#items li"), "the list to empty")


def test_every_control_has_a_name_and_the_page_fits_a_phone(browser, server):
    unnamed = browser.execute_script(
        "return [...document.querySelectorAll('#app button, #app input, #app select, #app a')].filter(e =>"
        " !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim()).map(e => e.id"
        " || e.outerHTML)")
    assert unnamed == []
    try:
        browser.set_window_size(390, 844)
        width = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], f"the page is {width[0]} px wide in a {width[1]} px window"
    finally:
        browser.set_window_size(1280, 900)


def test_the_keyboard_reaches_the_file_picker_and_the_choices(browser, server):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    browser.execute_script("document.activeElement.blur(); window.scrollTo(0, 0)")
    reached = []
    for _ in range(12):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        reached.append(browser.switch_to.active_element.get_attribute("id"))
    assert {"model", "scale", "files"} <= set(reached), reached


# ---------------------------------------------------------------- the cookie stays with the page


def test_the_cookie_alone_does_not_open_the_api_outside_the_page(browser, server):
    browser.get(f"{server.url}/v1/health")  # a top-level navigation carries the cookie, but is not the page
    assert '"Forbidden"' in browser.find_element("tag name", "body").text
    browser.get(f"{server.url}/")
    wait_for(lambda: page_state(browser)["app"], "the page")


@pytest.fixture
def stranger(browser_paths, tmp_path):
    driver = start_chromium(*browser_paths, tmp_path)
    yield driver
    keep(driver)
    driver.quit()


def test_no_access_without_the_cookie(stranger, server):
    stranger.get(f"{server.url}/")
    wait_for(lambda: page_state(stranger)["login"], "the log-in help")
    status = stranger.execute_script(
        "return fetch('/v1/jobs', {method: 'POST', body: new Blob(['x'], {type: 'image/png'}),"
        " headers: {'X-Remaster-Options': '{\"pipeline\": \"nearest\"}'}}).then(r => r.status)")
    assert status == 401
    stranger.get(f"{server.url}/v1/presets")
    assert "Unauthorized" in stranger.find_element("tag name", "body").text


class _Attacker(BaseHTTPRequestHandler):
    """A page of another local server (another port of 127.0.0.1: the same site, another origin)."""

    target = ""

    def do_GET(self):  # noqa: N802
        body = f"""<!doctype html><title>elsewhere</title>
<form id="f" method="POST" action="{self.target}/v1/jobs" enctype="text/plain">
<input name="x" value="y"></form>
<script>
fetch("{self.target}/v1/health", {{credentials: "include"}}).then(r => r.status, e => "blocked")
  .then(v => {{ document.title = "fetch:" + v; }});
</script>""".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_page_of_another_port_cannot_use_the_server_even_with_the_cookie(browser, server):
    _Attacker.target = server.url
    other = ThreadingHTTPServer(("127.0.0.1", 0), _Attacker)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        waiting = server.client.health()["queue"]["waiting"]
        browser.get(f"http://127.0.0.1:{other.server_address[1]}/")
        assert wait_for(lambda: browser.title.startswith("fetch:") and browser.title, "the foreign fetch") == \
            "fetch:blocked"  # no CORS headers: the answer never reaches the other page
        browser.execute_script("document.getElementById('f').submit()")
        wait_for(lambda: "/v1/jobs" in browser.current_url, "the form's answer")
        text = browser.find_element("tag name", "body").text
        assert '"status": 403' in text and "origin" in text
        assert server.client.health()["queue"]["waiting"] == waiting
        SEEN_URLS.extend(requested_urls(browser))
        browser.get_log("browser")  # the other page's CORS errors are what it gets, not the page's errors
    finally:
        other.shutdown()
        other.server_close()


# ---------------------------------------------------------------- across the tests above


def test_no_request_left_the_machine(browser_paths):
    assert SEEN_URLS, "no requests were recorded"
    assert off_machine(SEEN_URLS) == []


def test_no_console_errors_but_the_refusals_provoked(browser_paths):
    unexpected = [entry for entry in CONSOLE if not any(text in entry["message"] for text in PROVOKED)]
    assert unexpected == []
