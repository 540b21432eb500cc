"""docs/images/web-page.png: the web page of ``remaster serve`` with a result, as headless Chromium draws it.

Starts ``remaster serve --port 0`` (its own server file in a temporary folder), logs in by the printed address,
uploads the astronaut that scikit-image ships (reduced to 128x128), runs the "upscale x4" preset (Real-ESRGAN
x4plus; ``--model stage:lanczos`` for another where its weights are missing) and saves the whole page, the
comparison's divider through the face. Needs chromium and chromium-driver (``make browser-env``) and selenium.

    python scripts/web_screenshot.py [--out docs/images/web-page.png] [--model preset:upscale-x4]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image
from skimage import data

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "web"))

from web_browser import start_chromium, wait_for  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "web-page.png")
    parser.add_argument("--model", default="preset:upscale-x4", help="a value of the page's Model list")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        photo = tmp / "astronaut.png"
        Image.fromarray(data.astronaut()).resize((128, 128), Image.LANCZOS).save(photo)
        env = {**os.environ, "REMASTER_SERVER_FILE": str(tmp / "server.json")}
        server = subprocess.Popen([sys.executable, "-m", "remaster.cli", "serve", "--port", "0", "--device", "cpu"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        browser = None
        try:
            line = server.stdout.readline() if server.stdout else ""
            if not line.startswith("READY "):
                raise SystemExit(f"web_screenshot: the server did not start: {line!r}")
            url = line.split()[1]
            token = json.loads((tmp / "server.json").read_text())["token"]
            browser = start_chromium(args.chromium, args.chromedriver, tmp, width=1000, height=900)
            browser.get(f"{url}/?token={token}")
            wait_for(lambda: browser.execute_script("return !document.getElementById('app').hidden"), "log-in")
            browser.execute_script("const m = document.getElementById('model'); m.value = arguments[0];"
                                   "m.dispatchEvent(new Event('change'))", args.model)
            browser.find_element("id", "files").send_keys(str(photo))
            browser.find_element("id", "start").click()
            wait_for(lambda: browser.execute_script(
                "return document.getElementById('after').naturalWidth > 0"), "the result", timeout=300)
            browser.execute_script("const r = document.getElementById('split'); r.value = 47;"
                                   "r.dispatchEvent(new Event('input')); window.scrollTo(0, 0)")
            time.sleep(0.5)
            size = browser.execute_script("return [document.documentElement.scrollWidth,"
                                          " document.documentElement.scrollHeight]")
            shot = browser.execute_cdp_cmd("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1}})
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_bytes(base64.b64decode(shot["data"]))
            print(f"web_screenshot: wrote {args.out}")
        finally:
            if browser is not None:
                browser.quit()
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
