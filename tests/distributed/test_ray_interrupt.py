"""Ctrl-C of a real ``remaster ... --engine ray`` process: the local run's behaviour, and the cluster it started
gone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ray_support import NEEDS_RAY, process_tree, tiny_folder, worker_environment
from reliability_support import decodes_completely, temp_files

pytestmark = [NEEDS_RAY, pytest.mark.ray, pytest.mark.timeout(150)]


def test_ctrl_c_keeps_finished_outputs_writes_the_report_and_stops_the_cluster(tmp_path):
    source = tiny_folder(tmp_path / "in", 12)
    out, report = tmp_path / "out", tmp_path / "report.json"
    with worker_environment(tmp_path / "site") as env:
        process = subprocess.Popen(
            [sys.executable, "-m", "remaster.cli", "run", "fault.slow(seconds=0.5) | nearest(scale=2)", str(source),
             "-o", str(out), "--engine", "ray", "--workers", "2", "--report", str(report)],
            stderr=subprocess.PIPE, text=True, env={**os.environ, **env})
    try:
        deadline = time.monotonic() + 90
        while not any(out.glob("*.png")) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert any(out.glob("*.png")), "no output within 90 s"
        cluster = process_tree(process.pid) - {process.pid}
        assert cluster, "the run started no cluster processes"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "remaster: interrupted" in err
    summary = json.loads(report.read_text())
    assert summary["interrupted"] is True and summary["failed"] == 0
    assert 1 <= summary["ok"] < 12 and summary["not_done"] == 12 - summary["ok"], summary
    written = sorted(p.name for p in out.glob("*.png"))
    assert written == sorted(item["output"].rsplit("/", 1)[-1] for item in summary["items"] if item["ok"])
    assert all(decodes_completely(out / name) for name in written)
    assert temp_files(out) == []
    deadline = time.monotonic() + 20
    while any(map(_running, cluster)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in cluster if _running(pid)], "the cluster the run started is still running"


def _running(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
