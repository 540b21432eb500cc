"""Issue 21: ``remaster serve`` admits a job from the image's header and a queue slot, and decodes it in the
worker, so that its memory is bounded by the queue, not by the number of requests; short data fails the job
with a 4xx status, never a full-size picture."""

from __future__ import annotations

import concurrent.futures
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from hostile_files import png_with_rows  # noqa: E402

MAX_QUEUE = 2


@pytest.fixture(scope="module")
def server(remaster_server):
    return remaster_server("--device", "cpu", "--max-queue", str(MAX_QUEUE))


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def submit(server, data: bytes, pipeline: str) -> tuple[int, dict]:
    status, _, body = server.raw("POST", "/v1/jobs", body=data, headers={
        "Content-Type": "image/png", "X-Remaster-Options": json.dumps({"pipeline": pipeline})})
    return status, json.loads(body)


def wait_done(server, job_id: str) -> dict:
    import time

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = server.client.job(job_id)
        if status["state"] in ("done", "failed", "cancelled"):
            return status
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's peak memory from /proc")
def test_a_burst_of_uploads_is_bounded_by_the_queue(server):
    """20 tiny PNGs declaring 2000x1500 at once: before, every body was decoded before the queue check (~80 MB
    each, 2.3 GB for 40 requests); now at most the queue's bodies wait, encoded, and one job runs at a time, so
    the burst costs no more than one job did."""
    body = png_with_rows(2000, 1500, 1500)  # complete data, a few KB compressed
    status, job = submit(server, body, "nearest")
    assert status == 202 and wait_done(server, job["id"])["state"] == "done"  # what one job costs, at its peak
    before = peak_rss_mib(server.process.pid)
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: submit(server, body, "nearest"), range(20)))
    accepted = [job for status, job in answers if status == 202]
    assert 1 <= len(accepted) <= MAX_QUEUE + 1 and all(status in (202, 503) for status, _ in answers)
    for job in accepted:
        assert wait_done(server, job["id"])["state"] == "done"
    growth = peak_rss_mib(server.process.pid) - before
    assert growth < 150, f"the burst took the server {growth:.0f} MiB past one job's peak"


def test_short_data_fails_its_job_with_a_4xx_status(server):
    status, job = submit(server, png_with_rows(400, 300, 10), "nearest")
    assert status == 202  # the header is fine: admitted
    final = wait_done(server, job["id"])
    assert final["state"] == "failed" and final["error"]["status"] == 422
    assert "truncated or corrupt" in final["error"]["message"]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's peak memory from /proc")
def test_a_header_bomb_is_refused_at_admission_without_decoding(server):
    """7000x7000 is within the input limit; x4 it is over the output limit: refused from the header (before, the
    49 MP were decoded first, about 0.6 GB)."""
    before = peak_rss_mib(server.process.pid)
    status, body = submit(server, png_with_rows(7000, 7000, 1), "nearest(scale=4)")
    assert status == 422 and "output would be 28000x28000" in body["error"]["message"]
    assert peak_rss_mib(server.process.pid) - before < 64
