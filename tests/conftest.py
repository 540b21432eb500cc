"""Fixtures shared by the test modules.

* the reliability helpers are importable and the fault plugin installable (test_corpus.py, test_batch.py);
* a real ``remaster serve`` process for the server contract tests and the editor tests.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/reliability_support.py (tests run with --import-mode=importlib)

import remaster  # noqa: E402
from reliability_support import FAULT_PLUGIN, install_fault_plugin  # noqa: E402
from remaster.server.client import Client  # noqa: E402


@pytest.fixture
def fault_host(process_host, tmp_path_factory, monkeypatch):
    """A fresh process-wide plugin host that also holds the fault plugin's stages."""
    site = install_fault_plugin(tmp_path_factory.mktemp("site"))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(FAULT_PLUGIN))
    process_host(None)
    host = remaster.plugin.host.get_host()
    assert "fault.raise" in host.stages, host.errors
    return host

class RemasterServer:
    """``remaster serve --port 0`` in a subprocess, its URL from the READY line and its token from the file."""

    def __init__(self, tmp: Path, args: tuple[str, ...] = (), server_file: Path | None = None):
        self.dir = tmp
        self.file = server_file or tmp / "state" / "server.json"
        self.cwd = tmp / "cwd"
        self.cwd.mkdir()
        env = {**os.environ, "REMASTER_SERVER_FILE": str(self.file)}
        self.process = subprocess.Popen([sys.executable, "-m", "remaster.cli", "serve", "--port", "0", *args],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=self.cwd,
                                        env=env)
        line = self.process.stdout.readline()
        if not line.startswith("READY "):
            self.process.kill()
            pytest.fail(f"no READY line: {line!r} {self.process.stderr.read()}")
        self.url = line.split()[1]
        self.token = json.loads(self.file.read_text())["token"]
        self.client = Client(self.url, self.token)

    def raw(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
            token: str | None = "default") -> tuple[int, dict[str, str], bytes]:
        """A request with exactly these headers (Host included), bypassing the client's checks."""
        parts = urlsplit(self.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        headers = {"Host": parts.netloc, **(headers or {})}
        if token is not None:
            headers.setdefault("Authorization", f"Bearer {self.token if token == 'default' else token}")
        if body is not None:
            headers.setdefault("Content-Length", str(len(body)))
        for key, value in headers.items():
            conn.putheader(key, value)
        conn.endheaders()
        if body is not None:
            conn.send(body)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def stop(self, how=signal.SIGINT) -> int:
        self.process.send_signal(how)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


@pytest.fixture(scope="session")
def remaster_server(tmp_path_factory):
    """Start servers with ``remaster_server(*serve_args, server_file=None)``; all are stopped at the end."""
    started: list[RemasterServer] = []

    def start(*args: str, server_file: Path | None = None) -> RemasterServer:
        started.append(RemasterServer(tmp_path_factory.mktemp("server"), args, server_file))
        return started[-1]

    yield start
    for server in started:
        if server.process.poll() is None:
            server.stop()
