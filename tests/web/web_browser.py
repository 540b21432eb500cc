"""A headless Chromium for the page's tests: its downloads in a folder of the test, its console and network
events kept (performance log: the DevTools Network events), and nothing but loopback reachable by design of the
page (which the tests check from those events)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

WAIT = 60.0  # seconds any one wait may take


def start_chromium(chromium: str, driver: str, downloads: Path, width: int = 1280, height: int = 900) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={width},{height}", "--no-first-run", "--no-default-browser-check",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-features=Translate,OptimizationHints,MediaRouter", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False,
                                              "profile.default_content_setting_values.automatic_downloads": 1})
    browser = webdriver.Chrome(service=Service(driver), options=options)
    browser.set_page_load_timeout(WAIT)
    browser.set_script_timeout(WAIT)
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads),
                                                            "eventsEnabled": True})
    return browser


def wait_for(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except Exception as exc:  # a stale element between two polls: try again
            last = exc
        else:
            if last:
                return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def requested_urls(browser: Any) -> list[str]:
    """Every URL the browser asked for since the last call (DevTools Network.requestWillBeSent)."""
    urls = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def off_machine(urls: list[str]) -> list[str]:
    """Those of ``urls`` that would leave the machine (anything but loopback, blob: and data:)."""
    away = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme in ("blob", "data", "about", "chrome", "devtools"):
            continue
        if parts.scheme == "file" or parts.hostname in ("127.0.0.1", "localhost", "::1"):
            continue
        away.append(url)
    return away


def console_errors(browser: Any, allowed: tuple[str, ...] = ()) -> list[dict]:
    """The console's errors since the last call, less those naming one of ``allowed``."""
    return [entry for entry in browser.get_log("browser")
            if entry["level"] == "SEVERE" and not any(text in entry["message"] for text in allowed)]
