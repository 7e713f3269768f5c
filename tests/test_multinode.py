"""A real 2-node Ray cluster on this machine (`ray start --head` plus a second `ray start --address`, one
logical CPU each), a smoke search submitted to it with `ray job submit --working-dir`, and its results on
the storage both nodes share.

The module runs before any test that uses the session's local Ray (``own_ray``, see conftest.py):
only one Ray may be alive on a machine, and it stops every process its cluster started, whatever happens.
"""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml

from raysearch import load_model
from raysearch.config import TrainConfig

pytestmark = [pytest.mark.own_ray, pytest.mark.ray, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).parent / "ray")


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@dataclass(frozen=True)
class Cluster:
    dashboard: str  # http://127.0.0.1:PORT, for `ray job submit` and `ray list`
    node_ids: frozenset[str]
    env: dict[str, str]  # the environment the nodes run in (and the CLI calls need)


def alive_nodes(dashboard: str, env: dict[str, str]) -> list[str]:
    """Node ids of the alive nodes, from `ray list nodes` (the CLI reads the cluster's auth token)."""
    listed = subprocess.run([RAY, "list", "nodes", "--address", dashboard, "--filter", "state=ALIVE", "--format", "json"],
                            env=env, capture_output=True, text=True, timeout=60)
    ok = listed.returncode == 0 and listed.stdout.lstrip().startswith("[")  # else "No resource in the cluster"
    return [node["node_id"] for node in json.loads(listed.stdout)] if ok else []


def stop(processes: list[subprocess.Popen]) -> None:
    """SIGTERM then SIGKILL every process the `ray start --block` commands started (and themselves)."""
    victims = []
    for process in processes:
        try:
            parent = psutil.Process(process.pid)
            victims += [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    for victim in victims:
        try:
            victim.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(victims, timeout=20)
    for victim in alive:
        victim.kill()
    psutil.wait_procs(alive, timeout=10)
    for process in processes:
        process.wait(timeout=10)


def forget_cluster(gcs_port: int) -> None:
    """`ray start --head` records its address for later `ray.init()` calls and only `ray stop` (which stops
    every Ray on the machine) removes it: remove the record here if it names this cluster."""
    from ray._private.utils import get_ray_address_file

    record = Path(get_ray_address_file(None))
    if record.is_file() and record.read_text().strip().endswith(f":{gcs_port}"):
        record.unlink()


@pytest.fixture(scope="module")
def cluster(data_root, tmp_path_factory):
    import ray

    assert not ray.is_initialized(), "a Ray instance is alive in this process; this test must run first"
    gcs, dashboard_port, client, head_agent, worker_agent = free_ports(5)
    dashboard = f"http://127.0.0.1:{dashboard_port}"
    env = {**os.environ, "RAYSEARCH_DATA_DIR": str(data_root), "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": "60",
           "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32)}  # the cluster's own token: a fresh HOME has no ~/.ray/auth_token
    logs = tmp_path_factory.mktemp("ray-start")
    # The second node's own temp dir, as on a separate machine: sharing the head's /tmp/ray, its runtime-env
    # agent would unpack the job's working dir over the one the driver runs in. Short: it holds sockets.
    node2_temp = tempfile.mkdtemp(prefix="rs-node2-", dir="/tmp")
    commands = [
        [RAY, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={gcs}", "--num-cpus=1", "--num-gpus=0",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}", f"--ray-client-server-port={client}",
         f"--dashboard-agent-listen-port={head_agent}"],
        [RAY, "start", "--block", "--node-ip-address=127.0.0.1", f"--address=127.0.0.1:{gcs}", "--num-cpus=1", "--num-gpus=0",
         f"--dashboard-agent-listen-port={worker_agent}", f"--temp-dir={node2_temp}"],
    ]
    processes = []
    try:
        for count, command in enumerate(commands, 1):
            with open(logs / f"node{count}.log", "w") as log:
                processes.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
            deadline = time.time() + 120
            while len(alive_nodes(dashboard, env)) < count:
                assert time.time() < deadline and all(p.poll() is None for p in processes), \
                    f"node {count} did not start: " + (logs / f"node{count}.log").read_text()[-2000:]
                time.sleep(1)
        yield Cluster(dashboard, frozenset(alive_nodes(dashboard, env)), env)
    finally:
        stop(processes)
        forget_cluster(gcs)
        shutil.rmtree(node2_temp, ignore_errors=True)


@pytest.fixture(scope="module")
def submitted(cluster, tmp_path_factory):
    """The smoke search (4 trials, 2 workers x 0.5 CPU, workers spread over the nodes) as a Ray job."""
    folder = tmp_path_factory.mktemp("two-node")
    space = yaml.safe_load((ROOT / "search_spaces" / "smoke.yaml").read_text())
    space["resources"].update(workers_per_trial=2, cpus_per_worker=0.5, placement_strategy="SPREAD")
    space["experiment"]["max_concurrent_trials"] = 1
    (folder / "space.yaml").write_text(yaml.safe_dump(space))
    storage = folder / "shared"
    job = subprocess.run(
        [RAY, "job", "submit", "--address", cluster.dashboard, "--working-dir", str(ROOT),
         "--runtime-env-json", json.dumps({"excludes": [".git", "tests", "benchmarks"]}), "--",
         "python", "clusters/raysearch_tune.py", "--space", str(folder / "space.yaml"), "--storage", str(storage)],
        env=cluster.env, capture_output=True, text=True, timeout=900)
    assert job.returncode == 0, job.stdout[-4000:] + job.stderr[-2000:]
    assert "succeeded" in job.stdout.lower()
    return storage / "smoke"


def test_trials_ran_on_both_nodes(cluster, submitted):
    trials = pd.read_csv(submitted / "trials.csv")
    assert len(trials) == 4 and (trials["status"] == "TERMINATED").all()
    nodes = [set(n.split(",")) for n in trials["worker_nodes"]]
    assert len(cluster.node_ids) == 2
    assert all(n == cluster.node_ids for n in nodes)  # SPREAD: each trial's two DDP workers on both nodes


def test_results_best_config_and_checkpoint_are_on_the_shared_storage(submitted):
    trials = pd.read_csv(submitted / "trials.csv")
    best = trials.loc[trials["best_value"].idxmax()]
    assert best["trial_id"] in (submitted / "best_config.yaml").read_text().splitlines()[0]
    assert TrainConfig.from_yaml(submitted / "best_config.yaml").epochs == 3
    model = load_model(submitted / "best_checkpoint" / "checkpoint.pt")
    assert model.checkpoint["metrics"]["best_value"] == pytest.approx(best["best_value"])
    assert len(list(submitted.glob("run_trial_*/result.json"))) == 4
    assert len(list(submitted.glob("train_runs/train-*/checkpoint_*/checkpoint.pt"))) >= 4
