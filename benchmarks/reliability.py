"""Reliability benchmark: faults injected for real into searches on ML-100K, counted and timed.

    python benchmarks/reliability.py [--trials 16] [--epochs 4] [--down-seconds 20]

The scenarios are the test suite's (``raysearch/testing/faults.py``), on larger runs: a Train worker SIGKILLed during
epoch 2, a config whose loss is NaN, the `raysearch tune` driver SIGKILLed and resumed, an S3 endpoint
(``moto_server``) cut mid-search, read-only and full storage (tmpfs mounts; needs root or
CAP_SYS_ADMIN), and the bytes a ``--trials`` search leaves on
disk against the documented bound. Writes ``benchmarks/results/reliability.md`` with the fuzz figures of
``reliability_fuzz.md`` (``benchmarks/fuzz.py``). Starts one embedded local Ray (2 logical CPUs).
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path

import pandas as pd

from raysearch.data.downloads import data_root, dataset_dir
from raysearch.data.movielens import load_dataset
from raysearch.markdown import markdown_table
from raysearch.search.space import load_space
from raysearch.search.tuning import init_ray, search
from raysearch.testing import faults
from raysearch.testing.faults import FIXED_BYTES, LOG_BYTES_PER_TRIAL, SEARCHED

RESULTS = Path(__file__).resolve().parent / "results"
HEADER = ["fault", "injected how", "trials finished before", "trials finished after", "trials lost (must be 0)",
          "recovery seconds", "outcome"]
BUCKET = "raysearch-reliability"


def finished(experiment: Path) -> int:
    return int((pd.read_csv(experiment / "trials.csv")["status"] == "TERMINATED").sum())


def worker_and_nan(work: Path, dataset, epochs: int) -> tuple[list[list], Path]:
    """4 trials, temperature 0.2 or 1e-40 (NaN), one Train worker SIGKILLed during epoch 2."""
    space = faults.space_file(work, "faulty", 4, epochs, diverging=True)
    experiment, kill = faults.search_with_worker_kill(space, dataset, work / "storage", after_epoch=1)
    trials = pd.read_csv(experiment / "trials.csv")
    row = trials.set_index("path").loc[str(kill.trial)]
    epochs_seen = [line["epoch"] for line in faults.result_lines(kill.trial / "result.json")]
    started = trials["path"].tolist().index(str(kill.trial))
    worker = ["Train worker killed mid-trial", f"SIGKILL to one of 2 DDP workers (pid {kill.pid}) after epoch "
              f"{kill.epoch_before} was reported; `max_failures: 1`", started, len(trials),
              4 - len(trials) + int(epochs_seen != list(range(1, epochs + 1)) or row["status"] != "TERMINATED"),
              f"{kill.recovery_seconds:.1f}",
              f"reported epochs {epochs_seen}, trial {row['status']} ({row['stopped_by']})"]
    diverged = trials[trials["stopped_by"] == "diverged"]
    best_ok = faults.best_config_matches(experiment, SEARCHED)
    nan = ["NaN loss", f"`temperature` searched over [0.2, {faults.DIVERGING_TEMPERATURE}]: the InfoNCE loss is NaN in "
           "epoch 1", "-", f"{len(trials) - len(diverged)} + {len(diverged)} diverged", 4 - len(trials), "-",
           f"{len(diverged)} trial(s) ERROR, stopped_by diverged, error `{diverged['error'].iloc[0][:60]}...`; "
           f"best config from a finished trial: {best_ok}"]
    return [worker, nan], experiment


def driver(work: Path, address: str, data: Path) -> list:
    space = faults.space_file(work, "driver", 4, 2)
    killed = faults.kill_driver_and_resume(space, work / "storage", address, data, finished_before_kill=2)
    consistent = faults.best_config_matches(work / "storage" / "driver", SEARCHED)
    return ["`raysearch tune` driver killed mid-search", "SIGKILL to the driver process while trial 3 of 4 ran; "
            "then `raysearch tune --resume`", len(killed.finished_before),
            int((killed.trials["status"] == "TERMINATED").sum()),
            killed.lost, f"{killed.resume_seconds:.1f} (the whole resume)",
            f"{killed.duplicated} duplicated, {killed.trial_folders} trial folders, {killed.study_trials} Optuna "
            "trials, "
            f"best_config.yaml matches trials.csv: {consistent}"]


def read_only(work: Path) -> list:
    space = faults.space_file(work, "readonly", 1, 1)
    with faults.tmpfs(work / "ro", "1m", read_only=True) as target:
        started = time.perf_counter()
        code, errors = faults.cli("tune", "--space", str(space), "--storage", str(target))
        seconds = time.perf_counter() - started
        left = (target / "readonly").exists()
    return ["read-only storage", "`--storage` on a read-only tmpfs", 0, 0, 0, f"{seconds:.1f} (to the error)",
            f"exit {code}, `{' / '.join(errors)}`; experiment folder left: {left}"]


def s3_outage(work: Path, address: str, data: Path, client, url: str, down_seconds: float,
              max_attempts: int | None) -> list:
    """A 3-trial search on S3 whose endpoint resets connections for ``down_seconds`` mid-trial, then resumed."""
    space = faults.space_file(work, f"outage{max_attempts or ''}", 3, 2)
    endpoint = faults.Endpoint(int(url.rsplit(":", 1)[1]), faults.free_port())
    out = faults.search_through_outage(space, BUCKET, client, endpoint, address, data, down_seconds, max_attempts)
    after = int((out.trials["status"] == "TERMINATED").sum()) if out.trials is not None else 0
    retries = f"`RAYSEARCH_S3_MAX_ATTEMPTS={max_attempts}`" if max_attempts else "default retries (10 attempts)"
    return [f"S3 endpoint gone mid-search, {retries}", f"the endpoint (a forwarder in front of `moto_server`) "
            f"resets every connection for {down_seconds:.0f} s once trial 1 stored a checkpoint ({out.dropped} "
            "reset), then returns; then `raysearch tune --resume`", out.finished_before, after, 3 - after,
            f"{out.resume_seconds:.1f} (the resume)",
            f"search exit {out.exit_code}{', `' + ' / '.join(out.errors)[:200] + '`' if out.errors else ''}; "
            f"resume exit {out.resume_exit_code}"]


def full_disk(experiment: Path, mount: Path, trials_before: int) -> list:
    full = faults.fill_and_resume(experiment, mount)
    return ["storage full", "tmpfs filled to 512 KiB free, outputs removed, `raysearch tune --resume`",
            trials_before, finished(experiment), trials_before - finished(experiment), f"{full.resume_seconds:.1f}",
            f"exit {full.exit_code}, `{' / '.join(full.errors)}`; left behind: {full.left or 'nothing'}; "
            f"resume after freeing space: exit {full.resume_exit_code}"]


def disk_bound(work: Path, dataset, trials: int, epochs: int) -> tuple[str, list]:
    space_path = faults.space_file(work, "disk", trials, epochs)
    space = load_space(space_path)
    started = time.perf_counter()
    experiment = Path(search(space, dataset, work / "storage", "disk").path)
    minutes = (time.perf_counter() - started) / 60
    use = faults.disk_use(experiment)
    keep, failures = space.resources.num_to_keep, space.resources.max_failures
    bound = use.bound(trials, keep, failures, LOG_BYTES_PER_TRIAL, FIXED_BYTES)
    mib = lambda b: f"{b / 2**20:.1f} MiB"  # noqa: E731
    text = (f"A {trials}-trial search (`search_spaces/smoke.yaml`, {epochs} epochs, `num_to_keep: {keep}`, "
            f"{minutes:.1f} min): **{mib(use.total)}** under the experiment folder, of which checkpoints "
            f"{mib(use.checkpoints)} in `train_runs/` (at most {max(use.checkpoints_per_run.values())} per trial, "
            f"{sum(use.checkpoints_per_run.values())} in all) and {mib(use.best_checkpoint)} in `best_checkpoint/`; "
            f"one checkpoint is at most {mib(use.largest_checkpoint)}.\n\nDocumented bound: bytes <= "
            f"(trials x (num_to_keep + 2 + max_failures) + 1) x checkpoint + trials x 256 KiB + 256 KiB = ({trials} x "
            f"{keep + 2 + failures} + 1) x {mib(use.largest_checkpoint)} + {trials} x 256 KiB + 256 KiB = "
            f"**{mib(bound)}**: each trial's Ray Train run keeps its `num_to_keep` best checkpoints plus the latest "
            f"(Ray never deletes the latest, the one a restart resumes from), plus one Ray may leave when the run "
            f"ends or is stopped (seen without any failure: {max(use.checkpoints_per_run.values())} in one run with "
            f"`num_to_keep: {keep}`), plus at most one per worker failure (a checkpoint being written when a worker "
            f"is killed is never registered, so never deleted: seen in `tests/test_faults.py`), `best_checkpoint/` "
            f"is one more copy, and the logs (result.json, progress.csv, "
            f"TensorBoard events, Tune and Train state) stay under 256 KiB per trial at these epochs. "
            f"Measured / bound = {use.total / bound:.2f}.")
    return text, [f"{trials}-trial search", mib(use.total), mib(bound)]


def fuzz_summary() -> str:
    text = (RESULTS / "reliability_fuzz.md").read_text() if (RESULTS / "reliability_fuzz.md").is_file() else ""
    total = re.search(r"\| \*\*all\*\* \|  \| (\d+) \| \d+ \| \d+ \| (\d+) \| (\d+) \|", text)
    if not total:
        return "Fuzz figures: run `python benchmarks/fuzz.py` (see `reliability_fuzz.md`)."
    return (f"Fuzzed input (`benchmarks/fuzz.py`, details in [reliability_fuzz.md](reliability_fuzz.md)): "
            f"**{total[1]} cases tried, {total[2]} tracebacks, {total[3]} unclear errors**.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16, help="trials of the disk-bound search")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--down-seconds", type=float, default=20, help="length of the S3 outage")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "120")
    root = data_root(args.data_dir)
    dataset = load_dataset("ml-100k", dataset_dir("ml-100k", root))
    os.environ.update(AWS_ACCESS_KEY_ID="reliability", AWS_SECRET_ACCESS_KEY="reliability",
                      AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")  # for the S3 case
    init_ray(None, 2)
    import ray

    address = ray.get_runtime_context().gcs_address
    rows = []
    with tempfile.TemporaryDirectory() as folder, faults.s3_server(BUCKET) as (url, client):
        work = Path(folder)
        (work / "faulty").mkdir()
        with faults.tmpfs(work / "faulty" / "storage", "512m") as mount:
            scenario_rows, experiment = worker_and_nan(work / "faulty", dataset, args.epochs)
            rows += scenario_rows
            print(*rows, sep="\n", flush=True)
            rows.append(full_disk(experiment, mount, finished(experiment)))
            print(rows[-1], flush=True)
        (work / "driver").mkdir()
        rows.append(driver(work / "driver", address, root))
        print(rows[-1], flush=True)
        for attempts in (None, 2):
            (work / f"outage{attempts}").mkdir()
            rows.append(s3_outage(work / f"outage{attempts}", address, root, client, url, args.down_seconds, attempts))
            print(rows[-1], flush=True)
        (work / "readonly").mkdir()
        rows.append(read_only(work / "readonly"))
        print(rows[-1], flush=True)
        (work / "disk").mkdir()
        disk_text, _ = disk_bound(work / "disk", dataset, args.trials, args.epochs)
        print(disk_text, flush=True)
    ray.shutdown()
    lost = sum(int(r[4]) for r in rows)
    command = f"`python benchmarks/reliability.py --trials {args.trials} --epochs {args.epochs}`"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "reliability.md").write_text(
        f"# Reliability: faults injected for real\n\n{command} on ML-100K (scenarios in `raysearch/testing/faults.py`, "
        f"asserted on smaller runs by `tests/test_faults.py`), one embedded local Ray with 2 logical CPUs on "
        f"{os.cpu_count()} cores; trials run one at a time with 2 DDP workers of 0.5 CPU each "
        f"(`search_spaces/smoke.yaml`). Recovery seconds: from the kill to the trial's next reported epoch (worker), "
        f"the wall time of `raysearch tune --resume` (driver, full disk, S3 outage), or to the error (read-only).\n\n"
        + markdown_table(HEADER, rows) + f"\n\nTrials lost in all: **{lost}**.\n\n"
        "A diverged trial is recorded, not retried to success: Ray Train retries every worker error up to "
        "`max_failures` times (it has no per-exception policy), so the trial re-runs once from its last checkpoint, "
        "diverges again at the same epoch (the run is seeded) and ends ERROR with `stopped_by = diverged` and the "
        "`TrainingDiverged` message in `error`; the loss is checked before the epoch is reported, so no NaN reaches "
        "result.json, TensorBoard or the HParams, and the best trial is chosen among finished trials only.\n\n"
        "The S3 rows cut the endpoint for real (connections reset while it is down, counted in the row): with the "
        "default 10 attempts every request rides the outage out; with 2 attempts the failed requests were absorbed "
        "by Ray's own failure handling and that search completed as well. Where an outage outlasts both, the search "
        "stops with `raysearch: error: s3://...: storage request failed (...)` and the `raysearch tune --resume` "
        "command to run once the store is back.\n\n"
        f"## Disk bound\n\n{disk_text}\n\n## Fuzzing\n\n{fuzz_summary()}\n")
    print(f"wrote {RESULTS / 'reliability.md'}")


if __name__ == "__main__":
    main()
