"""Faults injected for real into a search: a SIGKILLed Train worker, a SIGKILLed `raysearch tune` driver,
a diverging config, storage that is read-only or full, and the bytes a search leaves on disk.

Nothing here is a hook in the product: the worker and the driver are killed from outside with SIGKILL,
divergence comes from a config, storage faults from the filesystem (a tmpfs mount where the sandbox
permits it). ``tests/test_faults.py`` asserts on small runs; ``benchmarks/reliability.py`` runs the same
scenarios, measures them and writes ``benchmarks/results/reliability.md``. Needs a checkout (``search_spaces/``).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import optuna
import pandas as pd
import psutil
import yaml

from raysearch.cli import main
from raysearch.data.movielens import Dataset
from raysearch.search.space import load_space
from raysearch.search.tuning import search

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "search_spaces" / "smoke.yaml"
SEARCHED = ["contrastive_weight", "learning_rate", "num_layers", "temperature"]  # smoke.yaml's params
DIVERGING_TEMPERATURE = 1e-40  # InfoNCE logits overflow float32: the loss is NaN in epoch 1
LOG_BYTES_PER_TRIAL, FIXED_BYTES = 256 * 1024, 256 * 1024  # the disk bound's allowance besides checkpoints


def space_file(folder: Path, name: str, num_samples: int, epochs: int, diverging: bool = False,
               num_to_keep: int = 2, workers: int = 1, warm_cold: bool = False) -> Path:
    """smoke.yaml with ``num_samples`` trials of ``epochs`` epochs, one at a time, of ``workers`` workers (2: a
    Ray Train run of half a CPU each); ``diverging`` makes temperature a choice between a sane value and one
    whose loss is NaN; ``warm_cold`` makes it a multi-objective search of the mixed split (warm and item-cold
    NDCG@10)."""
    space = yaml.safe_load(SMOKE.read_text())
    startup = min(num_samples, space["experiment"]["n_startup_trials"])
    space["experiment"].update(name=name, num_samples=num_samples, max_concurrent_trials=1, n_startup_trials=startup)
    space["config"].update(epochs=epochs, patience=epochs)
    space["resources"].update(num_to_keep=num_to_keep, workers_per_trial=workers, cpus_per_worker=1.0 / workers)
    if warm_cold:
        space["config"]["split"] = "mixed"
        space["objectives"] = [{"metric": "warm_ndcg@10", "mode": "max"}, {"metric": "item_cold_ndcg@10", "mode": "max"}]
    if diverging:
        space["params"]["temperature"] = {"type": "choice", "values": [0.2, DIVERGING_TEMPERATURE]}
        space["experiment"]["seed"] = 1  # TPE's first draws: 0.2, 1e-40, 0.2, 1e-40
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def result_lines(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a trial's result.json (a line being written is skipped)."""
    lines = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        with contextlib.suppress(json.JSONDecodeError):
            lines.append(json.loads(line))
    return lines


def trial_dirs(experiment: Path) -> list[Path]:
    """Tune's trial folders in start order (``run_trial_<id>_<n>_...``)."""
    return sorted(experiment.glob("run_trial_*"), key=lambda p: int(p.name.split("_")[3]))


def staging(experiment_name: str) -> Path:
    """Where the Tune driver writes trials' result.json as it goes (Ray syncs that folder to the storage only
    now and then): ``<Ray session>/artifacts/<run>/<experiment>/driver_artifacts`` of the newest run."""
    runs = sorted(Path("/tmp/ray/session_latest/artifacts").glob(f"*/{experiment_name}/driver_artifacts"),
                  key=lambda p: p.stat().st_mtime)
    return runs[-1] if runs else Path("/nonexistent")


TRAIN_WORKER, TRIAL = "ray::RayTrainWorker", "ray::ImplicitFunc"  # Ray's process titles: a Train worker, a trial


def workers(title: str = TRAIN_WORKER) -> list[int]:
    """PIDs of this machine's Ray processes titled ``title``: Ray Train workers, or the processes of Tune trials
    (a one-worker trial trains in its own)."""
    return [p.pid for p in psutil.process_iter(["cmdline"]) if " ".join(p.info["cmdline"] or []).startswith(title)]


@dataclass
class WorkerKill:
    """What :class:`WorkerKiller` did: the trial, the epoch last reported before the kill, and the seconds
    from the kill to that trial's next report (the restarted worker group's first epoch)."""

    trial: Path | None = None
    pid: int | None = None
    epoch_before: int | None = None
    killed_at: float | None = None
    recovery_seconds: float | None = None


class WorkerKiller(threading.Thread):
    """SIGKILLs one worker process (titled ``title``) of the search's first trial once it has reported epoch
    ``after_epoch`` (or a later one before its last; it is polled), so it dies during a later epoch; then
    waits for that trial's next report. The first trial is never stopped by ASHA: it is the first at every
    rung. Reports are read where the Tune driver writes them (:func:`staging`)."""

    def __init__(self, experiment: Path, after_epoch: int, last_epoch: int, title: str = TRAIN_WORKER,
                 timeout: float = 900) -> None:
        super().__init__(daemon=True)
        self.experiment, self.after_epoch, self.last_epoch, self.timeout = experiment, after_epoch, last_epoch, timeout
        self.title = title
        self.kill = WorkerKill()
        self.done = threading.Event()

    def run(self) -> None:
        deadline = time.time() + self.timeout
        while not self.done.is_set() and time.time() < deadline:
            trials = trial_dirs(staging(self.experiment.name))
            reported = [line["epoch"] for line in result_lines(trials[0] / "result.json")] if trials else []
            running = workers(self.title)
            if reported and self.after_epoch <= reported[-1] < self.last_epoch and running:
                self._kill(trials[0], reported[-1], len(reported), min(running), deadline)
                return
            time.sleep(0.05)

    def _kill(self, staged: Path, epoch: int, reports: int, pid: int, deadline: float) -> None:
        self.kill = WorkerKill(self.experiment / staged.name, pid, epoch, time.time())
        os.kill(self.kill.pid, signal.SIGKILL)
        while time.time() < deadline and not self.done.is_set():
            if len(result_lines(staged / "result.json")) > reports:
                self.kill.recovery_seconds = time.time() - self.kill.killed_at
                return
            time.sleep(0.1)


def search_with_worker_kill(space: Path, dataset: Dataset, storage: Path, after_epoch: int,
                            title: str = TRAIN_WORKER) -> tuple[Path, WorkerKill]:
    """Run the search in-process while a :class:`WorkerKiller` SIGKILLs one process titled ``title`` once."""
    document = yaml.safe_load(space.read_text())
    name = document["experiment"]["name"]
    killer = WorkerKiller(storage / name, after_epoch, document["config"]["epochs"], title)
    killer.start()
    try:
        experiment = Path(search(load_space(space), dataset, storage, name).path)
    finally:
        killer.done.set()
        killer.join()
    return experiment, killer.kill


@dataclass
class DriverKill:
    """The counts of a driver killed with SIGKILL and resumed with `raysearch tune --resume`."""

    finished_before: dict[str, list[dict]]  # trial folder -> its result.json lines when the driver died
    trials: pd.DataFrame  # trials.csv after the resume
    trial_folders: int  # run_trial_* folders after the resume
    study_trials: int  # trials in the Optuna journal after the resume
    resume_seconds: float  # `raysearch tune --resume` wall time, Ray already running
    finished_after: dict[str, list[dict]] = field(default_factory=dict)  # the same folders after the resume

    @property
    def lost(self) -> int:
        """Trials finished before the kill that are gone or changed after the resume."""
        return sum(self.finished_after.get(name) != lines for name, lines in self.finished_before.items())

    @property
    def duplicated(self) -> int:
        return len(self.trials) - self.trials["trial_id"].nunique()


def reported(experiment_name: str, index: int) -> bool:
    """Whether trial ``index`` (0-based, in start order) has reported an epoch, read where the driver writes."""
    staged = trial_dirs(staging(experiment_name))
    return len(staged) > index and bool(result_lines(staged[index] / "result.json"))


def tune_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "raysearch", "tune", *args]


def kill_driver_and_resume(space: Path, storage: Path, address: str, data_root: Path,
                           finished_before_kill: int) -> DriverKill:
    """Start `raysearch tune` (one trial at a time), SIGKILL it once ``finished_before_kill`` trials have
    finished and the next one has reported an epoch, then `raysearch tune --resume` the experiment to the end."""
    env = {**os.environ, "RAYSEARCH_DATA_DIR": str(data_root)}
    driver = subprocess.Popen(tune_command("--space", str(space), "--storage", str(storage), "--address", address),
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    experiment = storage / yaml.safe_load(space.read_text())["experiment"]["name"]
    deadline = time.time() + 900
    while not reported(experiment.name, finished_before_kill) and time.time() < deadline and driver.poll() is None:
        time.sleep(0.5)  # trial n + 1 starts once trial n has finished (one trial at a time)
    running = driver.poll() is None
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    if not running or len(trial_dirs(experiment)) <= finished_before_kill:
        raise AssertionError(f"the driver ended or no {finished_before_kill} trial(s) finished in time")
    finished = {p.name: result_lines(p / "result.json") for p in trial_dirs(experiment)[:finished_before_kill]}
    assert not (experiment / "trials.csv").exists()
    started = time.perf_counter()
    resumed = subprocess.run(tune_command("--resume", str(experiment), "--address", address), env=env,
                             capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - started
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    study = optuna.load_study(study_name=experiment.name, storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(experiment / "optuna.journal"))))
    return DriverKill(finished, pd.read_csv(experiment / "trials.csv"), len(trial_dirs(experiment)),
                      len(study.trials), seconds,
                      {name: result_lines(experiment / name / "result.json") for name in finished})


def best_config_matches(experiment: Path, params: list[str]) -> bool:
    """best_config.yaml names the best finished trial of trials.csv and holds its (finite) params."""
    trials = pd.read_csv(experiment / "trials.csv")
    ranked = trials[trials["error"].isna()].sort_values("best_value", ascending=False)
    best = ranked.iloc[0]
    header, _, body = (experiment / "best_config.yaml").read_text().partition("\n")
    config = yaml.safe_load(body)
    numbers = [v for v in config.values() if isinstance(v, float)]
    return (f"best trial {best['trial_id']}:" in header and f"= {best['best_value']:.6f}" in header
            and all(math.isfinite(v) for v in numbers)
            and all(math.isclose(config[p], best[f"param_{p}"], rel_tol=1e-9) for p in params))


@dataclass(frozen=True)
class DiskUse:
    """Bytes under an experiment folder, split by what holds them."""

    total: int
    checkpoints: int  # train_runs/*/checkpoint_*
    best_checkpoint: int
    largest_checkpoint: int
    checkpoints_per_run: dict[str, int]

    def bound(self, trials: int, num_to_keep: int, max_failures: int, other_per_trial: int, fixed: int) -> int:
        """The documented bound: every trial keeps its best ``num_to_keep`` checkpoints plus the latest
        (Ray Train never deletes the latest), plus one Ray may leave when the run ends or is stopped (seen
        without any failure), plus one per worker failure survived (a checkpoint being written when a worker
        dies is never registered, so never deleted); one more copy is the global best; logs cost at most
        ``other_per_trial`` bytes per trial plus ``fixed`` bytes of the experiment's own."""
        per_trial = num_to_keep + 2 + max_failures
        return (trials * per_trial + 1) * self.largest_checkpoint + trials * other_per_trial + fixed


def disk_use(experiment: Path) -> DiskUse:
    def size(folder: Path) -> int:
        return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())

    checkpoints = list(experiment.glob("train_runs/*/checkpoint_*"))
    runs = {run.name: len(list(run.glob("checkpoint_*"))) for run in experiment.glob("train_runs/*")}
    return DiskUse(size(experiment), sum(size(c) for c in checkpoints), size(experiment / "best_checkpoint"),
                   max((size(c) for c in checkpoints), default=0), runs)


@contextlib.contextmanager
def tmpfs(folder: Path, size: str, read_only: bool = False) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``folder`` (``mount`` needs root or CAP_SYS_ADMIN; raises OSError
    where the sandbox forbids it), unmounted afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        raise OSError(f"cannot mount a tmpfs on {folder}: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path, leave: int) -> None:
    """Fill the filesystem of ``folder`` until ``leave`` bytes are free."""
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with open(folder / "filler", "wb") as f:
        f.write(b"\0" * max(0, free - leave))


def cli(*argv: str) -> tuple[int, list[str]]:
    """Run the CLI in-process: its exit code and the lines it printed on stderr (``raysearch: ...``; the
    rest of stderr is Ray's log, which Ray forwards to the process that started it)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, [line for line in err.getvalue().splitlines() if line.startswith("raysearch:")]


@dataclass(frozen=True)
class FullDisk:
    """`raysearch tune --resume` of a finished experiment whose outputs are gone, on a full disk, then freed."""

    exit_code: int  # on the full disk
    errors: list[str]  # the CLI's own stderr lines
    left: list[str]  # outputs (or temp copies) present after the failed run
    resume_exit_code: int  # once the disk has room again
    resume_seconds: float


OUTPUTS = ("trials.csv", "summary.md", "best_config.yaml", "best_checkpoint")


def fill_and_resume(experiment: Path, mount: Path, leave: int = 512 * 1024) -> FullDisk:
    """Remove the experiment's outputs, fill ``mount`` to ``leave`` free bytes (room for trials.csv and
    Tune's state, not for a checkpoint), resume; then free the disk and resume again."""
    for name in OUTPUTS:
        subprocess.run(["rm", "-rf", str(experiment / name)], check=True)
    fill(mount, leave)
    try:
        code, errors = cli("tune", "--resume", str(experiment))
        left = sorted(p.name for p in experiment.iterdir() if p.name in OUTPUTS[2:] or p.name.startswith(".best_"))
    finally:
        (mount / "filler").unlink()
    started = time.perf_counter()
    resumed, _ = cli("tune", "--resume", str(experiment))
    return FullDisk(code, errors, left, resumed, time.perf_counter() - started)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def s3_server(bucket: str) -> Iterator[tuple[str, Any]]:
    """`moto_server` (a real S3-compatible server) on a free local port with one bucket: its URL and a boto3
    client. The AWS credentials must already be in the environment (the server accepts any)."""
    import boto3

    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=url)
    deadline = time.time() + 30
    try:
        while True:
            try:
                client.create_bucket(Bucket=bucket)
                break
            except Exception:  # the server is still starting
                if time.time() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        yield url, client
    finally:
        server.terminate()
        server.wait(timeout=30)


class Endpoint:
    """A TCP forwarder in front of an S3 server. While ``down()``, every connection it accepts is reset at once
    (as an endpoint that is gone or restarting answers) and counted in ``dropped``; open ones are cut too.
    Runs its own event loop thread."""

    def __init__(self, target_port: int, port: int) -> None:
        self.target_port, self.port = target_port, port
        self.url = f"http://127.0.0.1:{port}"
        self.is_down, self.dropped = False, 0
        self._open: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._forward, "127.0.0.1", port, reuse_address=True), self._loop).result()

    def down(self) -> None:
        self._loop.call_soon_threadsafe(self._cut)

    def up(self) -> None:
        self.is_down = False

    def _cut(self) -> None:
        self.is_down = True
        for writer in list(self._open):
            writer.transport.abort()

    async def _forward(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        if self.is_down:
            self.dropped += 1
            client_out.transport.abort()
            return
        server_in, server_out = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._open |= {client_out, server_out}
        await asyncio.gather(_pipe(client_in, server_out), _pipe(server_in, client_out), return_exceptions=True)
        self._open -= {client_out, server_out}


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    finally:
        sink.close()


@dataclass
class S3Outage:
    """A search whose S3 endpoint went away for ``down_seconds`` mid-search, then `raysearch tune --resume`."""

    exit_code: int  # the search's, through the outage
    errors: list[str]  # its own stderr lines (``raysearch: ...``)
    log: str  # the end of its stderr
    finished_before: int  # trials TERMINATED in trials.csv after the first run (0 if it wrote none)
    down_seconds: float
    dropped: int  # connections the endpoint reset while down
    trials: pd.DataFrame  # trials.csv after the resume
    resume_exit_code: int
    resume_seconds: float
    resume_log: str  # the end of the resume's stderr


def _objects(client: Any, bucket: str, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def _trials_csv(client: Any, bucket: str, prefix: str) -> pd.DataFrame | None:
    if not _objects(client, bucket, prefix + "trials.csv"):
        return None
    return pd.read_csv(client.get_object(Bucket=bucket, Key=prefix + "trials.csv")["Body"])


def search_through_outage(space: Path, bucket: str, client: Any, endpoint: Endpoint, address: str, data_root: Path,
                          down_seconds: float, max_attempts: int | None = None) -> S3Outage:
    """Run `raysearch tune --storage s3://<bucket>/outage` through ``endpoint``; take the endpoint down for
    ``down_seconds`` once the first trial has stored a checkpoint (``client`` talks to the server directly,
    around the endpoint), bring it back, let the search end, then `raysearch tune --resume` it. ``max_attempts``
    sets the search's ``RAYSEARCH_S3_MAX_ATTEMPTS`` (Ray's workers too: the policy travels with the filesystem)."""
    env = {**os.environ, "RAYSEARCH_DATA_DIR": str(data_root), "AWS_ENDPOINT_URL": endpoint.url}
    if max_attempts is not None:
        env["RAYSEARCH_S3_MAX_ATTEMPTS"] = str(max_attempts)
    prefix = "outage/" + yaml.safe_load(space.read_text())["experiment"]["name"] + "/"
    experiment = f"s3://{bucket}/{prefix}"
    driver = subprocess.Popen(tune_command("--space", str(space), "--storage", f"s3://{bucket}/outage",
                                           "--address", address),
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 900
    while driver.poll() is None and time.time() < deadline and not any(
            key.endswith("/checkpoint.pt") and "/best_checkpoint/" not in key for key in _objects(client, bucket, prefix)):
        time.sleep(0.2)
    endpoint.down()
    time.sleep(down_seconds)
    endpoint.up()
    _, stderr = driver.communicate(timeout=900)
    before = _trials_csv(client, bucket, prefix)
    env.pop("RAYSEARCH_S3_MAX_ATTEMPTS", None)
    started = time.perf_counter()
    resumed = subprocess.run(tune_command("--resume", experiment, "--address", address), env=env,
                             capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - started
    return S3Outage(driver.returncode, [line for line in stderr.splitlines() if line.startswith("raysearch:")],
                    stderr[-5000:],
                    0 if before is None else int((before["status"] == "TERMINATED").sum()), down_seconds,
                    endpoint.dropped,
                    _trials_csv(client, bucket, prefix), resumed.returncode, seconds, resumed.stderr[-3000:])
