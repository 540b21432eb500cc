"""The browser for tests/web: Debian's chromium driven headless by selenium through Debian's chromedriver.

``make browser-env`` (run by ``.ci/run``) installs them where it can; without them these tests skip and say why.
The driver's path is always given (``REMASTER_CHROMEDRIVER`` or ``/usr/bin/chromedriver``, then ``PATH``), so that
Selenium Manager never tries to download one; ``REMASTER_CHROMIUM`` overrides the browser's.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # web_browser.py (tests run with --import-mode=importlib)


def _find(variable: str, *names: str) -> str | None:
    if os.environ.get(variable):
        return os.environ[variable] if Path(os.environ[variable]).is_file() else None
    for name in names:
        if Path(name).is_absolute() and Path(name).is_file():
            return name
        found = shutil.which(name)
        if found:
            return found
    return None


def browser_parts() -> tuple[str, str]:
    """Chromium's and chromedriver's paths, or a skip that says what is missing and how to get it."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed: make install (remaster[test]) brings it")
    chromium = _find("REMASTER_CHROMIUM", "/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
    driver = _find("REMASTER_CHROMEDRIVER", "/usr/bin/chromedriver", "chromedriver")
    missing = [name for name, path in (("chromium", chromium), ("chromium-driver", driver)) if path is None]
    if missing:
        pytest.skip(f"no {' or '.join(missing)}: run make browser-env (apt-get install chromium chromium-driver)")
    assert chromium is not None and driver is not None
    return chromium, driver


@pytest.fixture(scope="module")
def browser_paths():
    return browser_parts()
