"""Issue 21: the server opens no file a client names, unless it was started with ``--allow-files FOLDER``.

Before, a client with the token could make the server load any readable model file by path, read a settings file
by path (telling existing from missing files), or point ``config`` at ``/dev/zero`` (3 GB in under a second)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

sys.path.insert(0, str(Path(__file__).parent))


def png() -> bytes:
    import io

    buffer = io.BytesIO()
    PILImage.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def submit(server, pipeline: str) -> tuple[int, dict]:
    status, _, body = server.raw("POST", "/v1/jobs", body=png(), headers={
        "Content-Type": "image/png", "X-Remaster-Options": json.dumps({"pipeline": pipeline})})
    return status, json.loads(body)


@pytest.fixture(scope="module")
def allowed(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("allowed")
    (folder / "settings.json").write_text("{}")
    return folder


@pytest.fixture(scope="module")
def server(remaster_server, allowed):
    return remaster_server("--device", "cpu", "--allow-files", str(allowed))


@pytest.fixture(scope="module")
def closed_server(remaster_server):
    return remaster_server("--device", "cpu")


@pytest.mark.parametrize("pipeline", [
    "'/etc/passwd.pth'(scale=2)",
    "'/no/such/model.pth'",
    "degrade.realesrgan(config='/dev/zero')",
    "degrade.realesrgan(config='/etc/hostname')",
    "degrade.realesrgan(config='/no/such.json')",
])
def test_a_path_from_a_client_is_refused_alike_whether_or_not_it_exists(closed_server, pipeline):
    status, body = submit(closed_server, pipeline)
    assert status == 403 and body["error"]["type"] == "FileNotAllowed"
    assert "opens no file a client names" in body["error"]["message"]
    assert "no such" not in json.dumps(body).lower()  # nothing said about whether the file is there


def test_stage_names_in_file_parameters_still_work(closed_server):
    pytest.importorskip("remaster_gfpgan")
    status, body = submit(closed_server, "gfpgan(upscale=2, background='lanczos')")
    assert status != 403, body
    status, body = submit(closed_server, "gfpgan(upscale=2, background='/tmp/x.pth')")
    assert status == 403


def test_files_in_an_allowed_folder_may_be_named(server, allowed):
    status, body = submit(server, f"degrade.realesrgan(config={str(allowed / 'settings.json')!r}, seed=1)")
    assert status == 202, body
    status, body = submit(server, "degrade.realesrgan(config='/etc/hostname')")  # outside it: still refused
    assert status == 403


def test_a_config_that_is_a_device_is_refused_before_reading(tmp_path):
    from remaster.errors import UsageError
    from remaster.stages.highorder import load_settings

    with pytest.raises(UsageError, match="not a regular file"):
        load_settings("/dev/zero")
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (1 << 20))
    with pytest.raises(UsageError, match="not a settings file"):
        load_settings(big)


@pytest.mark.parametrize("suffix", ["@evil.example", "@127.0.0.1", "#x", " evil"])
def test_the_host_header_is_parsed_strictly(closed_server, suffix):
    from urllib.parse import urlsplit

    host = urlsplit(closed_server.url).netloc + suffix
    status, _, body = closed_server.raw("GET", "/v1/health", headers={"Host": host})
    assert status == 403 and "refused" in json.loads(body)["error"]["message"]
