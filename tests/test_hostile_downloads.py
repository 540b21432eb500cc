"""Issue 21: downloads are bounded: by the registered size (or a cap), by a minimum rate and a total time; a
server that sends an endless body, or a byte a second, is cut off."""

from __future__ import annotations

import http.server
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from reliability_support import tally  # noqa: E402
from remaster.errors import WeightsError  # noqa: E402
from remaster.plugin import WeightsSpec  # noqa: E402
from remaster.plugin.host import PluginHost  # noqa: E402
from remaster.weights import WeightsManager  # noqa: E402
from remaster.weights import download as download_module  # noqa: E402


class Endless(http.server.BaseHTTPRequestHandler):
    """No Content-Length, and a body that never ends; ``/slow`` sends a byte every 50 ms."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        slow = self.path == "/slow"
        try:
            for _ in range(100_000):  # bounded: about 100 MB, or 5000 s of trickle (the client stops long before)
                self.wfile.write(b"x" if slow else bytes(1024))
                self.wfile.flush()
                if slow:
                    time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endless() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


def manager(tmp_path, spec: WeightsSpec) -> WeightsManager:
    class Plugin:
        from remaster.plugin import hookimpl

        @hookimpl
        def remaster_register_weights(self, register):
            register(spec)

    host = PluginHost(load_entry_points=False, extra_plugins=(Plugin(),)).ensure_loaded()
    return WeightsManager(host.weights, root=tmp_path / "cache")


def test_an_endless_body_is_cut_at_the_registered_size(tmp_path, endless):
    weights = manager(tmp_path, WeightsSpec("m", "model.bin", url=f"{endless}/model.bin", size=50_000))
    started = time.monotonic()
    with pytest.raises(WeightsError, match="more than the 50,000 bytes"):
        weights.fetch("m")
    assert time.monotonic() - started < 30
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in leftovers) == 0  # nothing of it kept, in the cache or in quarantine
    tally("fault", "a download with an endless body")


def test_a_trickle_is_cut_off(tmp_path, endless, monkeypatch):
    monkeypatch.setattr(download_module, "RATE_GRACE_S", 1.0)  # the test's bound, not the real one (60 s)
    weights = manager(tmp_path, WeightsSpec("m", "model.bin", url=f"{endless}/slow"))
    started = time.monotonic()
    with pytest.raises(WeightsError, match="too slow"):
        weights.fetch("m")
    assert time.monotonic() - started < 30
    tally("fault", "a download that trickles")


def test_a_size_that_is_not_a_positive_whole_number_is_the_plugins_error():
    class Plugin:
        from remaster.plugin import hookimpl

        @hookimpl
        def remaster_register_weights(self, register):
            register(WeightsSpec("m", "model.bin", size=-1))

    host = PluginHost(load_entry_points=False, extra_plugins=(Plugin(),)).ensure_loaded()
    assert "m" not in host.weights and "size -1" in str(host.errors[0])


def test_the_quarantine_keeps_a_bounded_amount(tmp_path):
    from remaster.weights.quarantine import QUARANTINE_KEEP, quarantine

    folder = tmp_path / "quarantine"
    moved = []
    for number in range(QUARANTINE_KEEP + 3):
        bad = tmp_path / f"bad{number}.bin"
        bad.write_bytes(bytes(1000))
        moved.append(quarantine(bad, folder))
        time.sleep(0.01)  # distinct modification times: the oldest go first
    kept = sorted(folder.iterdir())
    assert len(kept) == QUARANTINE_KEEP and moved[-1] in kept and moved[0] not in kept
