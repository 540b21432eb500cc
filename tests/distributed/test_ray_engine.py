"""``--engine ray`` on one local cluster that remaster starts (module-scoped: a start costs seconds).

Every test is bounded by pytest-timeout: a Ray failure shows up as a hang, not an exception.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import remaster
from ray_support import (
    NEEDS_RAY,
    is_loopback,
    listening_sockets,
    outputs,
    process_tree,
    tiny_folder,
    worker_environment,
)
from reliability_support import temp_files
from remaster import PipelineOptions
from remaster.cli import main

pytestmark = [NEEDS_RAY, pytest.mark.ray, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A 2-CPU local cluster started by remaster's own code, with the fault plugin visible to its workers."""
    from remaster.runs.ray.cluster import connected

    # S3 settings a worker inherits: fake credentials for the loopback server, and no cloud metadata lookups.
    fake_s3 = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
               "AWS_EC2_METADATA_DISABLED": "true"}
    with worker_environment(tmp_path_factory.mktemp("site"), **fake_s3):
        with connected(None, num_cpus=2) as ray:
            yield ray


def local_run(source: Path, out: Path, stages: list[str]) -> dict[str, bytes]:
    pipeline = remaster.Remasterer(stages, device="cpu", precision="fp32")
    for path in sorted(source.glob("*.png")):
        pipeline.run_file(path, out / path.name)
    return outputs(out)


def test_every_listener_of_the_cluster_remaster_starts_is_on_loopback(cluster):
    sockets = listening_sockets(process_tree(os.getpid()))
    assert len(sockets) >= 2, sockets  # at least the GCS and the raylet, or nothing was looked at
    assert all(is_loopback(address) for _, address, _ in sockets), sockets
    assert {node["NodeManagerAddress"] for node in cluster.nodes()} == {"127.0.0.1"}


def test_outputs_are_bit_identical_to_the_in_process_run(cluster, tmp_path):
    from remaster.runs.ray import run_folder

    source = tiny_folder(tmp_path / "in", 3)
    stages = ["realesr-animevideov3"]
    expected = local_run(source, tmp_path / "local", stages)
    summary = run_folder(str(source), str(tmp_path / "ray"), stages=stages,
                         options=PipelineOptions(precision="fp32"), workers=2)
    assert (summary["ok"], summary["failed"]) == (3, 0)
    assert outputs(tmp_path / "ray") == expected


def test_a_broken_file_is_reported_the_rest_done_and_skip_existing_resumes(cluster, tmp_path, capsys):
    source = tiny_folder(tmp_path / "in", 4, broken=True)
    local, ray_out, report = tmp_path / "local", tmp_path / "ray", tmp_path / "report.json"
    assert main(["run", "bicubic(scale=2)", str(source), "-o", str(local), "-q"]) == 1
    capsys.readouterr()
    assert main(["run", "bicubic(scale=2)", str(source), "-o", str(ray_out), "--engine", "ray",
                 "--report", str(report)]) == 1
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("remaster: error:")] == [
        f"remaster: error: {source / 'broken.png'}: not an image (or a format remaster cannot read) "
        "(use PNG, JPEG, WebP, TIFF, BMP or GIF)"]
    assert outputs(ray_out) == outputs(local)
    summary = json.loads(report.read_text())
    assert (summary["ok"], summary["failed"], summary["interrupted"]) == (4, 1, False)
    assert [item["input"] for item in summary["items"]] == sorted(str(p) for p in source.iterdir())  # the plan's order

    (ray_out / "img01.png").unlink()  # resume: only what is missing is done again
    assert main(["run", "bicubic(scale=2)", str(source), "-o", str(ray_out), "--engine", "ray", "--resume",
                 "--report", str(report)]) == 1
    summary = json.loads(report.read_text())
    assert (summary["ok"], summary["skipped"], summary["failed"]) == (1, 3, 1)
    assert outputs(ray_out) == outputs(local)


def test_a_worker_killed_mid_run_loses_nothing_and_reports_no_false_failure(cluster, fault_host, tmp_path):
    from remaster.runs.ray import run_folder

    source = tiny_folder(tmp_path / "in", 6)
    marker = tmp_path / "crashed-once"
    summary = run_folder(str(source), str(tmp_path / "out"), workers=2,
                         stages=[f"fault.crash(marker={str(marker)!r})", "nearest(scale=2)"])
    assert marker.exists()  # a worker did die, mid-item
    assert (summary["ok"], summary["failed"], summary["not_done"]) == (6, 0, 0)
    assert sorted(item["input"] for item in summary["items"]) == sorted(str(p) for p in source.iterdir())
    assert sorted(outputs(tmp_path / "out")) == [f"img{i:02d}.png" for i in range(6)]
    assert temp_files(tmp_path / "out") == []


def test_an_item_that_keeps_killing_its_worker_becomes_an_error_row(cluster, fault_host, tmp_path):
    from remaster.runs.ray import run_folder

    source = tiny_folder(tmp_path / "in", 2)
    Image.fromarray(np.zeros((16, 17, 3), np.uint8)).save(source / "poison.png")
    summary = run_folder(str(source), str(tmp_path / "out"), stages=["fault.crash(width=17)"], workers=2,
                         max_attempts=2)
    assert (summary["ok"], summary["failed"]) == (2, 1)
    [failed] = [item for item in summary["items"] if item["error"]]
    assert failed["input"] == str(source / "poison.png")
    assert "its worker died 2 times" in failed["error"]


def test_a_cluster_without_room_for_one_worker_says_so_instead_of_waiting(cluster, tmp_path, capsys):
    source = tiny_folder(tmp_path / "in", 2)
    started = time.monotonic()
    code = main(["run", "nearest(scale=2)", str(source), "-o", str(tmp_path / "out"), "--engine", "ray",
                 "--gpus-per-worker", "1"])
    assert code == 1 and time.monotonic() - started < 30
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("remaster: error: the cluster has 2 CPU and 0 GPU in all, but one worker asks for "
                              "1 CPU and 1 GPU"), err
    assert not (tmp_path / "out").exists()


def test_s3_round_trip_against_a_loopback_server_keeps_every_byte(cluster, tmp_path, monkeypatch):
    from moto.server import ThreadedMotoServer
    from pyarrow import fs

    from remaster.runs.ray import run_folder

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        assert host == "127.0.0.1"
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        s3 = fs.S3FileSystem(endpoint_override=f"http://127.0.0.1:{port}", region="us-east-1",
                               allow_bucket_creation=True)
        s3.create_dir("scans")
        source = tiny_folder(tmp_path / "in", 2)
        rgba = np.random.default_rng(1).integers(0, 256, (16, 16, 4), dtype=np.uint8)
        Image.fromarray(rgba, "RGBA").save(source / "alpha.png")
        for path in source.iterdir():
            with s3.open_output_stream(f"scans/in/{path.name}") as stream:
                stream.write(path.read_bytes())
        expected = local_run(source, tmp_path / "local", ["nearest(scale=2)"])

        summary = run_folder("s3://scans/in/", "s3://scans/out/", stages=["nearest(scale=2)"], workers=2)
        assert (summary["ok"], summary["failed"]) == (3, 0), summary
        got = {}
        for name in expected:
            with s3.open_input_stream(f"scans/out/{name}") as stream:
                got[name] = stream.read()
        assert got == expected
        assert summary["items"][0]["output"] == "s3://scans/out/alpha.png"

        again = run_folder("s3://scans/in/", "s3://scans/out/", stages=["nearest(scale=2)"], skip_existing=True)
        assert (again["ok"], again["skipped"]) == (0, 3)
    finally:
        server.stop()


# --------------------------------------------------------------------------- videos: segments on the workers
def _video_support():
    import sys

    pytest.importorskip("av")
    sys.path.insert(0, str(Path(__file__).parent.parent / "video"))
    import clips

    return clips


#: Twelve seconds at 8 fps, a keyframe every two seconds: two or three segments of five seconds or more.
_TWELVE_SECONDS = tuple(125 * i for i in range(96))


def test_a_video_on_ray_is_the_video_the_local_run_makes(cluster, tmp_path, capsys):
    clips = _video_support()
    (tmp_path / "in").mkdir()
    source = clips.make_clip(tmp_path / "in" / "film.mkv", pts=_TWELVE_SECONDS, gop=16)
    clips.make_clip(tmp_path / "in" / "short.mp4")  # several videos: all their segments share the workers
    report = tmp_path / "report.json"
    assert main(["run", "nearest(scale=2)", str(tmp_path / "in"), "-o", str(tmp_path / "local"), "-q"]) == 0
    assert main(["run", "nearest(scale=2)", str(tmp_path / "in"), "-o", str(tmp_path / "ray"), "--engine", "ray",
                 "--workers", "2", "--report", str(report), "-q"]) == 0
    capsys.readouterr()
    rows = {Path(item["input"]).name: item for item in json.loads(report.read_text())["items"]}
    assert rows["film.mkv"]["video"]["segments"] >= 2 and rows["film.mkv"]["video"]["frames"] == len(_TWELVE_SECONDS)
    for name in ("film.mkv", "short.mp4"):
        local, ray = clips.frames_of(tmp_path / "local" / name), clips.frames_of(tmp_path / "ray" / name)
        assert [t for t, _ in ray] == [t for t, _ in local]  # same frame count and timestamps
        for (_, one), (_, other) in zip(local, ray, strict=True):
            error = np.mean((one.astype(float) - other.astype(float)) ** 2)
            assert error == 0 or 10 * np.log10(255.0**2 / error) >= 45
    assert clips.packets_of(tmp_path / "ray" / "film.mkv", "audio") == clips.packets_of(source, "audio")
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == ["film.mkv", "short.mp4"]  # no side files


def test_a_worker_killed_in_a_segment_gives_the_same_video(cluster, fault_host, tmp_path):
    from remaster.runs.ray import run_folder

    clips = _video_support()
    (tmp_path / "in").mkdir()
    source = clips.make_clip(tmp_path / "in" / "film.mkv", pts=_TWELVE_SECONDS, gop=16)
    marker = tmp_path / "crashed-once"
    summary = run_folder(str(tmp_path / "in"), str(tmp_path / "out"), workers=2,
                         stages=[f"fault.crash(marker={str(marker)!r})", "nearest(scale=2)"])
    assert marker.exists()  # a worker did die, in a segment
    assert (summary["ok"], summary["failed"]) == (1, 0)
    assert [t for t, _ in clips.frames_of(tmp_path / "out" / "film.mkv")] == list(_TWELVE_SECONDS)
    assert clips.packets_of(tmp_path / "out" / "film.mkv", "audio") == clips.packets_of(source, "audio")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["film.mkv"]
