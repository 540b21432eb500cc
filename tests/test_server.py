"""Contract tests of ``remaster serve``: a real server process on loopback, driven over HTTP.

The fast built-in stages (bicubic, lanczos) and the example sepia plugin stand in for the networks: the contract
is the same whatever the pipeline runs.
"""

from __future__ import annotations

import io as stdio
import json
import os
import signal
import stat
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image as PILImage

from remaster import Remasterer, io
from remaster.plugin import Preset, hookimpl
from remaster.plugin.host import PluginHost
from remaster.server.client import FALLBACK_PRESETS, Client, ServerError, dialog_presets, encode_png, preset_pipeline
from remaster.server.presets import available_presets

MAX_PIXELS = 4_200_000
MAX_OUTPUT_PIXELS = 20_000_000
MAX_REQUEST_BYTES = 20_000_000
MAX_QUEUE = 2


@pytest.fixture(scope="module")
def server(remaster_server):
    return remaster_server("--device", "cpu", "--max-pixels", str(MAX_PIXELS),
                           "--max-output-pixels", str(MAX_OUTPUT_PIXELS),
                           "--max-request-bytes", str(MAX_REQUEST_BYTES), "--max-queue", str(MAX_QUEUE))


def png(array: np.ndarray) -> bytes:
    buffer = stdio.BytesIO()
    PILImage.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def random_rgb(height=24, width=32, seed=0, dtype=np.uint8) -> np.ndarray:
    top = 256 if dtype == np.uint8 else 65536
    return np.random.default_rng(seed).integers(0, top, (height, width, 3), dtype=dtype)


def wait(client: Client, job_id: str, until=("done", "failed", "cancelled"), timeout=120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.job(job_id)
        if status["state"] in until:
            return status
        time.sleep(0.05)
    pytest.fail(f"job {job_id} still {status['state']} after {timeout} s")


def error_of(body: bytes) -> dict:
    error = json.loads(body)["error"]
    assert error["message"] and "Traceback" not in error["message"]
    return error


# ---------------------------------------------------------------- start-up


def test_ready_line_and_token_file_is_user_only(server):
    assert server.url.startswith("http://127.0.0.1:") and not server.url.endswith(":0")
    assert stat.S_IMODE(server.file.stat().st_mode) == 0o600
    info = json.loads(server.file.read_text())
    assert info["url"] == server.url and len(info["token"]) >= 32 and info["pid"] == server.process.pid


def test_health_and_stages(server):
    health = server.client.health()
    assert health["status"] == "ok" and health["device"].startswith("cpu") and health["version"]
    assert health["limits"]["max_pixels"] == MAX_PIXELS
    stages = {stage["name"]: stage for stage in server.client.stages()}
    assert {"bicubic", "lanczos", "sepia"} <= set(stages)
    assert any(param["name"] == "scale" for param in stages["bicubic"]["params"])


# ---------------------------------------------------------------- editor presets


def test_presets_need_the_token(server):
    status, headers, body = server.raw("GET", "/v1/presets", token=None)
    assert status == 401 and headers.get("www-authenticate") == "Bearer" and "token" in error_of(body)["message"]


def test_presets_list_the_installed_plugins_presets_in_dialog_order(server):
    presets = server.client.presets()
    assert [(p["id"], p["plugin"], p["faces_of"]) for p in presets] == [
        ("upscale-x4", "realesrgan", None), ("upscale-x4-faces", "gfpgan", "upscale-x4"),
        ("upscale-x2", "realesrgan", None), ("upscale-x2-faces", "gfpgan", "upscale-x2")]
    assert all(p["label"] and p["pipeline"] and p["description"] for p in presets)
    # What the dialogs ran before the server listed presets: the built-in fallback is the same list.
    assert [{k: v for k, v in p.items() if k not in ("ready", "why")} for p in presets] == FALLBACK_PRESETS
    # This machine has no GFPGAN weights: the face presets are listed, marked as not ready, with the fix.
    faces = {p["id"]: p for p in presets if p["faces_of"]}
    assert all(not p["ready"] and "remaster weights fetch gfpgan-1.4" in p["why"] for p in faces.values())
    assert all(p["ready"] for p in presets if not p["faces_of"])
    assert preset_pipeline(presets, "upscale-x2", faces=True) == "gfpgan(upscale=2.0, background='realesrgan-x4plus')"


def test_presets_whose_stages_are_missing_are_not_listed():
    class Plugin:
        @hookimpl
        def remaster_register_presets(self, register):
            register(Preset("half", "half size", "bicubic(scale=0.5) | lanczos"))
            register(Preset("missing", "missing", "bicubic | no-such-stage"))
            register(Preset("missing-required", "missing", "bicubic", requires=("no-such-stage",)))
            register(Preset("half-faces", "half, faces", "bicubic(scale=0.5)", faces_of="half"))
            register(Preset("orphan-faces", "faces of a missing preset", "bicubic", faces_of="missing"))
            register(Preset("unreadable", "unreadable", "bicubic ||"))

    host = PluginHost(load_entry_points=False, extra_plugins=(Plugin(),)).ensure_loaded()
    assert not host.errors and len(host.presets) == 6
    assert [(p["id"], p["plugin"]) for p in available_presets(host)] == [("half", "Plugin"), ("half-faces", "Plugin")]


class _OldServer(BaseHTTPRequestHandler):
    """Answers every GET as a server from before GET /v1/presets does for an unknown path."""

    def do_GET(self):  # noqa: N802 (the name http.server calls)
        body = json.dumps({"error": {"message": f"no such endpoint {self.path}", "type": "RequestError"}}).encode()
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_server_without_the_presets_endpoint_gives_the_built_in_list():
    old = ThreadingHTTPServer(("127.0.0.1", 0), _OldServer)
    thread = threading.Thread(target=old.serve_forever, daemon=True)
    thread.start()
    try:
        presets = Client(f"http://127.0.0.1:{old.server_port}", "token", timeout=10).presets()
    finally:
        old.shutdown()
        old.server_close()
    assert presets == FALLBACK_PRESETS and presets is not FALLBACK_PRESETS
    assert [p["label"] for p in dialog_presets(presets)] == ["upscale x4", "upscale x2"]


def test_other_errors_of_the_presets_endpoint_are_not_hidden(server):
    with pytest.raises(ServerError) as caught:
        Client(server.url, "wrong-token").presets()
    assert caught.value.status == 401


# ---------------------------------------------------------------- auth, Host, Origin, CORS


@pytest.mark.parametrize("token", [None, "wrong-token", ""])
def test_missing_or_wrong_token_is_401(server, token):
    headers = {"Authorization": ""} if token == "" else {}
    status, response_headers, body = server.raw("GET", "/v1/health", headers=headers, token=token)
    assert status == 401 and response_headers.get("www-authenticate") == "Bearer"
    assert "token" in error_of(body)["message"]


def test_a_token_in_another_scheme_is_401(server):
    status, _, _ = server.raw("GET", "/v1/health", headers={"Authorization": f"Basic {server.token}"})
    assert status == 401


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "192.168.1.10", "127.0.0.1.nip.io"])
def test_foreign_host_header_is_refused(server, host):
    status, _, body = server.raw("GET", "/v1/health", headers={"Host": host})
    assert status == 403 and "host" in error_of(body)["message"]


@pytest.mark.parametrize("host", ["localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}", "LOCALHOST"])
def test_loopback_host_names_are_accepted(server, host):
    status, _, _ = server.raw("GET", "/v1/health", headers={"Host": host.format(port=urlsplit(server.url).port)})
    assert status == 200


@pytest.mark.parametrize("origin", ["null", "http://evil.example", "http://localhost:1"])
def test_null_or_foreign_origin_is_refused_even_with_the_token(server, origin):
    status, headers, body = server.raw("GET", "/v1/health", headers={"Origin": origin})
    assert status == 403 and "origin" in error_of(body)["message"]
    assert not any(key.startswith("access-control-") for key in headers)


def test_no_cors_headers_on_any_answer(server):
    for method, token in (("OPTIONS", None), ("GET", "default")):
        _, headers, _ = server.raw(method, "/v1/health", token=token,
                                   headers={"Access-Control-Request-Method": "POST"})
        assert not any(key.startswith("access-control-") for key in headers)


# ---------------------------------------------------------------- results


def library_result(data: bytes, pipeline: str, fmt: str = "png") -> bytes:
    remasterer = Remasterer(pipeline, device="cpu")
    return io.encode(remasterer.run_image(io.load(data)), fmt)


def pixels(data: bytes) -> tuple[np.ndarray, int]:
    image = io.load(data)
    return io.to_numpy(image, np.uint16 if image.meta.bit_depth == 16 else np.uint8), image.meta.bit_depth


@pytest.mark.parametrize("pipeline", ["bicubic(scale=2)", "lanczos(scale=1.5) | sepia"])
def test_result_equals_the_library_output(server, pipeline):
    data = png(random_rgb(seed=1))
    result = server.client.run(data, pipeline)
    ours, depth = pixels(result)
    expected, _ = pixels(library_result(data, pipeline))
    assert depth == 8 and ours.shape == expected.shape
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.parametrize("fmt", ["png", "tiff"])
def test_sixteen_bit_input_gives_sixteen_bit_result(server, fmt):
    array = random_rgb(20, 18, seed=2, dtype=np.uint16)
    data = encode_png(array.astype("=u2").tobytes(), 18, 20, 3, 16)  # the plug-ins' own encoder
    np.testing.assert_array_equal(io.to_numpy(io.load(data), np.uint16), array)
    result = server.client.run(data, "bicubic(scale=2)", result_format=fmt)
    assert result.startswith(b"\x89PNG" if fmt == "png" else (b"II*\x00", b"MM\x00*"))
    ours, depth = pixels(result)
    assert depth == 16 and ours.shape == (40, 36, 3)
    np.testing.assert_array_equal(ours, pixels(library_result(data, "bicubic(scale=2)", fmt))[0])


def test_alpha_is_kept(server):
    rgba = np.random.default_rng(3).integers(0, 256, (16, 16, 4), dtype=np.uint8)
    result = PILImage.open(stdio.BytesIO(server.client.run(png(rgba), "bicubic(scale=2)")))
    assert result.mode == "RGBA" and result.size == (32, 32)


@pytest.mark.parametrize("mode, channels", [("RGBA", 4), ("LA", 2)])
def test_job_output_channels_count_alpha(server, mode, channels):
    pixels = np.random.default_rng(5).integers(0, 256, (10, 12, channels), dtype=np.uint8)
    job_id = server.client.submit(png(pixels), "bicubic(scale=2)")
    assert server.client.job(job_id)["output"]["channels"] == channels  # planned, before the job has run
    status = wait(server.client, job_id)
    assert status["state"] == "done" and status["output"] == {"width": 24, "height": 20, "channels": channels}
    result = PILImage.open(stdio.BytesIO(server.client.result(job_id)))
    assert result.mode == mode and len(result.getbands()) == channels  # what was announced is what came back


def test_progress_reaches_one_and_job_reports_output_size(server):
    job_id = server.client.submit(png(random_rgb(seed=4)), "bicubic(scale=2) | sepia")
    status = wait(server.client, job_id)
    assert status["state"] == "done" and status["progress"] == 1.0
    assert status["output"] == {"width": 64, "height": 48, "channels": 3}
    # what ran, per stage: plain filters are fp32 on any machine, whatever auto picks for networks
    assert status["stages"] == [{"stage": "bicubic(scale=2.0)", "device": "cpu", "precision": "fp32"},
                                {"stage": "sepia", "device": "cpu", "precision": "fp32"}]
    server.client.cancel(job_id)  # forgets the finished job
    with pytest.raises(ServerError) as caught:
        server.client.job(job_id)
    assert caught.value.status == 404


def test_concurrent_jobs_each_get_their_own_result(server):
    images = {seed: png(random_rgb(seed=seed)) for seed in range(6)}
    results: dict[int, bytes] = {}
    errors: list[BaseException] = []

    def one(seed: int) -> None:
        try:
            while True:
                try:
                    results[seed] = server.client.run(images[seed], f"bicubic(scale={1 + seed % 2})")
                    return
                except ServerError as exc:  # queue full: what Retry-After asks for
                    if exc.status != 503:
                        raise
                    time.sleep(0.2)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(seed,)) for seed in images]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and len(results) == len(images)
    for seed, data in images.items():
        expected = pixels(library_result(data, f"bicubic(scale={1 + seed % 2})"))[0]
        np.testing.assert_array_equal(pixels(results[seed])[0], expected)


# ---------------------------------------------------------------- bad requests


def test_bad_image_is_a_clear_json_error(server):
    status, _, body = server.raw("POST", "/v1/jobs", body=b"this is not a png",
                                 headers={"Content-Type": "image/png",
                                          "X-Remaster-Options": json.dumps({"pipeline": "bicubic"})})
    assert status == 422
    assert "not an image" in error_of(body)["message"]


def submit_raw(server, data: bytes, options: dict | str, content_type="image/png"):
    text = options if isinstance(options, str) else json.dumps(options)
    return server.raw("POST", "/v1/jobs", body=data, headers={"Content-Type": content_type,
                                                               "X-Remaster-Options": text})


@pytest.mark.parametrize(("options", "status", "words"), [
    ({"pipeline": "bicubik(scale=2)"}, 422, "bicubik"),
    ({"pipeline": "bicubic(scale=2, sharpness=3)"}, 422, "sharpness"),
    ({"pipeline": "bicubic |"}, 422, "empty stage"),
    ({"pipeline": "bicubic", "format": "gif"}, 400, "format"),
    ({"pipeline": "bicubic", "tile": -1}, 400, "tile"),
    ({"pipeline": "bicubic", "path": "/etc/passwd"}, 400, "unknown option"),
    ({}, 400, "pipeline"),
    ("{not json", 400, "JSON"),
])
def test_bad_options_are_json_errors(server, options, status, words):
    got, _, body = submit_raw(server, png(random_rgb()), options)
    assert got == status and words in error_of(body)["message"]


def test_wrong_content_type_is_415(server):
    got, _, body = submit_raw(server, b"{}", {"pipeline": "bicubic"}, content_type="application/json")
    assert got == 415 and "must be an image" in error_of(body)["message"]


def test_request_bytes_limit_is_413_before_reading(server):
    got, _, body = submit_raw(server, b"\0" * (MAX_REQUEST_BYTES + 1), {"pipeline": "bicubic"})
    assert got == 413 and "bytes" in error_of(body)["message"]


def test_input_pixel_limit_is_413(server):
    flat = np.zeros((2100, 2100, 3), np.uint8)  # 4.4 MP, a few kB as PNG
    got, _, body = submit_raw(server, png(flat), {"pipeline": "bicubic"})
    assert got == 413 and "over the limit" in error_of(body)["message"]


def test_output_pixel_limit_is_422_before_running(server):
    flat = np.zeros((1000, 1000, 3), np.uint8)
    got, _, body = submit_raw(server, png(flat), {"pipeline": "bicubic(scale=5)"})
    error = error_of(body)
    assert got == 422 and "output would be 5000x5000" in error["message"]


def test_unknown_paths_and_jobs_are_json_404(server):
    for path in ("/v1/nothing", "/v1/jobs/../../etc/passwd", "/v1/jobs/0123456789abcdef"):
        status, _, body = server.raw("GET", path)
        assert status == 404 and error_of(body)
    status, _, body = server.raw("PUT", "/v1/health", body=b"")
    assert status == 405 and error_of(body)


def test_result_of_an_unfinished_or_failed_job_is_409(server):
    job_id = server.client.submit(png(random_rgb(1200, 1200, seed=5)), "bicubic(scale=1)", tile=16)
    status, _, body = server.raw("GET", f"/v1/jobs/{job_id}/result")
    assert status in (409, 200)
    server.client.cancel(job_id)
    wait(server.client, job_id)


# ---------------------------------------------------------------- cancel, queue


def test_cancel_a_running_job_and_a_full_queue_is_503(server):
    big = png(random_rgb(2000, 2000, seed=6))  # 4 MP in 16-px tiles: many progress calls, several seconds
    running = server.client.submit(big, "bicubic(scale=1)", tile=16)
    wait(server.client, running, until=("running",))
    waiting = [server.client.submit(png(random_rgb(seed=7)), "bicubic") for _ in range(MAX_QUEUE)]
    status, headers, body = submit_raw(server, png(random_rgb(seed=8)), {"pipeline": "bicubic"})
    assert status == 503 and int(headers["retry-after"]) >= 1 and "queue is full" in error_of(body)["message"]

    assert server.client.cancel(waiting[0])["state"] == "cancelled"  # a waiting job ends at once
    assert server.client.cancel(running)["state"] in ("cancelling", "cancelled")
    stopped = wait(server.client, running)
    assert stopped["state"] == "cancelled" and stopped["progress"] < 1.0
    with pytest.raises(ServerError) as caught:
        server.client.result(running)
    assert caught.value.status == 409
    assert wait(server.client, waiting[1])["state"] == "done"  # the worker goes on with the next job


def test_nothing_was_written_and_the_server_survived(server):
    """Runs after the bad requests and cancels above: no files anywhere but the server file."""
    assert server.client.health()["status"] == "ok"
    left = sorted(p.relative_to(server.dir) for p in server.dir.rglob("*") if p.is_file())
    assert left == [Path("state/server.json")]


def test_stopping_removes_the_server_file(server):
    assert server.stop() == 0
    assert not server.file.exists()
    assert not any(p.is_file() for p in server.dir.rglob("*"))


def test_sigterm_also_stops_cleanly(remaster_server):
    server = remaster_server()
    assert server.client.health()["status"] == "ok"
    assert server.stop(signal.SIGTERM) == 0
    assert not server.file.exists()


def test_client_cancel_callback_cancels_on_the_server(remaster_server):
    server = remaster_server("--device", "cpu")
    asked = []

    def should_cancel() -> bool:
        asked.append(True)
        return len(asked) > 1  # after the first poll, as a plug-in's Cancel button would

    job_id = server.client.submit(png(random_rgb(1500, 1500, seed=9)), "bicubic(scale=1)", tile=16)
    with pytest.raises(ServerError, match="cancelled"):
        server.client.wait(job_id, should_cancel=should_cancel)
    assert wait(server.client, job_id)["state"] == "cancelled"


def test_connect_starts_a_server_when_none_answers(tmp_path, monkeypatch):
    """What the plug-ins do on first use: no server file, so connect() runs 'remaster serve --port 0'."""
    from remaster.server.client import connect, read_server_file

    monkeypatch.setenv("REMASTER_SERVER_FILE", str(tmp_path / "server.json"))
    client = connect([sys.executable, "-m", "remaster.cli"], timeout=120)
    info = read_server_file()
    try:
        assert client.health()["status"] == "ok" and info["url"] == client.url
        assert connect(None).url == client.url  # the next call finds it through the file
    finally:
        os.kill(info["pid"], signal.SIGTERM)
    deadline = time.monotonic() + 30
    while (tmp_path / "server.json").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not (tmp_path / "server.json").exists()
    with pytest.raises(ServerError, match="no remaster server is running"):
        connect(None)


def test_a_busy_port_is_a_one_line_error_and_writes_no_token(tmp_path, monkeypatch, capsys):
    import socket

    from remaster.cli import main

    monkeypatch.setenv("REMASTER_SERVER_FILE", str(tmp_path / "server.json"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code = main(["serve", "--port", str(busy.getsockname()[1])])
    assert code == 2
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err
    assert not (tmp_path / "server.json").exists()
