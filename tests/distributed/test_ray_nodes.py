"""A node removed and another added mid-run (``ray.cluster_utils.Cluster``: several raylets on this machine)."""

from __future__ import annotations

import threading
import time

import pytest

from ray_support import NEEDS_RAY, outputs, tiny_folder, worker_environment
from reliability_support import temp_files

pytestmark = [NEEDS_RAY, pytest.mark.ray, pytest.mark.timeout(150)]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    """A head without CPUs (so no worker runs there) and two 1-CPU nodes, all on loopback."""
    from remaster.runs.ray.cluster import import_ray

    import_ray(local=True)  # the variable that keeps every raylet on 127.0.0.1 is read when ray is imported
    from ray.cluster_utils import Cluster

    with worker_environment(tmp_path_factory.mktemp("site")):
        cluster = Cluster(initialize_head=True, connect=True, head_node_args={"num_cpus": 0})
        try:
            first = cluster.add_node(num_cpus=1)
            cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            yield cluster, first
        finally:
            import ray

            ray.shutdown()
            cluster.shutdown()


def test_a_node_removed_and_another_added_mid_run_loses_nothing(nodes, fault_host, tmp_path):
    from remaster.runs.ray import run_folder

    cluster, first = nodes
    source = tiny_folder(tmp_path / "in", 8)
    out = tmp_path / "out"
    result = {}

    def run() -> None:
        result["summary"] = run_folder(str(source), str(out), stages=["fault.slow(seconds=0.4)", "nearest(scale=2)"],
                                       address=cluster.address, workers=2, wait_for_workers=60)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while not any(out.glob("*.png")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(out.glob("*.png")), "no output within 60 s"
    cluster.remove_node(first)  # its worker dies mid-item
    cluster.add_node(num_cpus=1)
    thread.join(timeout=90)
    assert not thread.is_alive()
    summary = result["summary"]
    assert (summary["ok"], summary["failed"], summary["not_done"]) == (8, 0, 0), summary
    assert sorted(item["input"] for item in summary["items"]) == sorted(str(p) for p in source.iterdir())
    assert sorted(outputs(out)) == [f"img{i:02d}.png" for i in range(8)]
    assert temp_files(out) == []
