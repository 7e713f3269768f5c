"""The search, resume, export and `recommend` on S3, against a real S3-compatible server (moto) on 127.0.0.1.

The module starts its own Ray after setting the AWS credentials, as a user's shell or a cluster node
would: Ray's workers read them from the environment Ray started in (they are never written anywhere).
"""

import io
import os
import secrets
from pathlib import Path

import boto3
import optuna
import pandas as pd
import pytest
import yaml

from raysearch import load_model
from raysearch.cli import main
from raysearch.config import TrainConfig
from raysearch.errors import RaysearchError
from raysearch.search.storage import resolve
from raysearch.testing.faults import Endpoint, free_port, s3_server, search_through_outage, space_file

pytestmark = [pytest.mark.own_ray, pytest.mark.ray, pytest.mark.slow]

SMOKE = Path(__file__).resolve().parents[1] / "search_spaces" / "smoke.yaml"
BUCKET = "raysearch-test"
SECRET = f"secret-{secrets.token_hex(12)}"  # the moto server accepts any key; the test checks it leaks nowhere


@pytest.fixture(scope="module")
def endpoint():
    """`moto_server` on a free local port, with the AWS credentials in the environment and one bucket."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "raysearch-test-key")
        env.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        env.delenv("AWS_ENDPOINT_URL", raising=False)
        with s3_server(BUCKET) as (url, _):
            yield url


@pytest.fixture(scope="module")
def local_ray(endpoint):
    """Ray started after the credentials are set (2 logical CPUs), shut down with the module."""
    import ray

    assert not ray.is_initialized(), "another Ray is running in this process"
    os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "60")
    ray.init(address="local", num_cpus=2)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def bucket(endpoint):
    return boto3.client("s3", endpoint_url=endpoint)


def keys(bucket, prefix: str) -> list[str]:
    pages = bucket.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def read(bucket, key: str) -> bytes:
    return bucket.get_object(Bucket=BUCKET, Key=key)["Body"].read()


@pytest.fixture(scope="module")
def experiment(local_ray, endpoint, tmp_path_factory):
    """A 2-trial smoke search written to s3://raysearch-test/runs/smoke through the CLI (`--storage-endpoint`)."""
    space = yaml.safe_load(SMOKE.read_text())
    space["experiment"]["num_samples"] = 2
    path = tmp_path_factory.mktemp("space") / "smoke2.yaml"
    path.write_text(yaml.safe_dump(space))
    assert main(["tune", "--space", str(path), "--storage", f"s3://{BUCKET}/runs",
                 "--storage-endpoint", endpoint, "--set", "epochs=2"]) == 0
    return "runs/smoke"


def test_search_lands_results_best_config_and_checkpoint_in_the_bucket(experiment, bucket):
    names = keys(bucket, experiment + "/")
    for name in ("trials.csv", "summary.md", "best_config.yaml", "best_checkpoint/checkpoint.pt",
                 "search_space.yaml", "optuna.journal", "experiment_state"):
        assert any(k.startswith(f"{experiment}/{name}") for k in names), name
    assert sum(k.endswith("/result.json") for k in names) == 2
    assert any("/run_trial_" in k and k.endswith("/checkpoint.pt") for k in names)  # one-worker trials keep their own
    trials = pd.read_csv(io.BytesIO(read(bucket, f"{experiment}/trials.csv")))
    assert len(trials) == 2 and (trials["status"] == "TERMINATED").all() and trials["worker_nodes"].notna().all()
    header, _, body = read(bucket, f"{experiment}/best_config.yaml").decode().partition("\n")
    assert trials.loc[trials["best_value"].idxmax(), "trial_id"] in header
    assert TrainConfig.from_dict(yaml.safe_load(body)).epochs == 2


def study_trials(bucket, experiment: str, folder: Path) -> list[optuna.trial.FrozenTrial]:
    """The study in the bucket's journal, read by Optuna's own file backend."""
    journal = folder / "optuna.journal"
    journal.write_bytes(read(bucket, f"{experiment}/optuna.journal"))
    return optuna.load_study(study_name="smoke", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal)))).trials


def test_optuna_journal_in_the_bucket_is_a_regular_journal_file(experiment, bucket, tmp_path):
    """Optuna's own file backend reads it: one finished trial per Tune trial, ASHA-stopped ones pruned."""
    trials = study_trials(bucket, experiment, tmp_path)
    rows = pd.read_csv(io.BytesIO(read(bucket, f"{experiment}/trials.csv")))
    recorded = sorted((t.state.name, round(t.value, 9)) for t in trials)
    expected = sorted(("PRUNED" if row.stopped_by == "asha" else "COMPLETE", round(row.best_value, 9))
                      for row in rows.itertuples())
    assert recorded == expected


def test_no_secret_is_written_to_the_bucket(experiment, bucket):
    """Tune's pickled state holds the S3 filesystem, which keeps no credentials it read from the environment.
    (Ray's own runtime-env agent does log the AWS variables Tune forwards to trials; see the README.)"""
    names = keys(bucket, "")
    assert any(k.endswith(".pkl") for k in names)
    assert not [k for k in names if SECRET.encode() in read(bucket, k)]


def test_export_reads_the_best_checkpoint_from_the_bucket(experiment, endpoint, bucket, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)  # the standard variable instead of --storage-endpoint
    assert main(["export", f"s3://{BUCKET}/{experiment}", "--out", str(tmp_path / "model")]) == 0
    trials = pd.read_csv(io.BytesIO(read(bucket, f"{experiment}/trials.csv")))
    local = load_model(tmp_path / "model")
    assert local.checkpoint["metrics"]["best_value"] == pytest.approx(trials["best_value"].max())
    assert main(["export", f"s3://{BUCKET}/{experiment}", "--out", f"s3://{BUCKET}/models/best"]) == 0
    assert keys(bucket, "models/best/") == ["models/best/config.yaml", "models/best/metrics.json", "models/best/model.pt"]
    capsys.readouterr()
    assert main(["recommend", f"s3://{BUCKET}/models/best", "--user", "196", "-k", "5"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [r.split("|")[2].strip() for r in rows] == [str(r.item_id) for r in local.recommend(196, 5)]
    assert main(["export", f"s3://{BUCKET}/{experiment}", "--out", f"s3://{BUCKET}/models/best"]) == 2
    assert "output folder already holds files" in capsys.readouterr().err


def test_resume_from_the_bucket_rewrites_the_outputs_and_keeps_the_study(experiment, endpoint, bucket, monkeypatch,
                                                                         tmp_path):
    before = read(bucket, f"{experiment}/trials.csv")
    bucket.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": f"{experiment}/{name}"} for name in (
        "trials.csv", "summary.md", "best_config.yaml", "best_checkpoint/checkpoint.pt")]})
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    assert main(["tune", "--resume", f"s3://{BUCKET}/{experiment}"]) == 0
    after = pd.read_csv(io.BytesIO(read(bucket, f"{experiment}/trials.csv")))
    first = pd.read_csv(io.BytesIO(before))
    assert sorted(after["trial_id"]) == sorted(first["trial_id"])
    assert after.set_index("trial_id")["best_value"].to_dict() == pytest.approx(first.set_index("trial_id")["best_value"].to_dict())
    assert f"{experiment}/best_checkpoint/checkpoint.pt" in keys(bucket, experiment)
    assert len(study_trials(bucket, experiment, tmp_path)) == 2



def test_endpoint_going_away_mid_search_is_ridden_out(local_ray, endpoint, bucket, data_root, tmp_path):
    """The S3 endpoint resets every connection for 20 s while the first trial runs (a forwarder in front of
    the server, which keeps its objects), then comes back: the retries carry the search through."""
    import ray

    proxy = Endpoint(int(endpoint.rsplit(":", 1)[1]), free_port())
    space = space_file(tmp_path, "outage", 3, 2)
    outage = search_through_outage(space, BUCKET, bucket, proxy, ray.get_runtime_context().gcs_address, data_root, 20)
    assert outage.dropped >= 1  # requests did meet the outage
    assert outage.exit_code == 0 and outage.errors == [], outage.log
    assert outage.finished_before == 3
    assert outage.resume_exit_code == 0, outage.resume_log
    assert len(outage.trials) == 3 and (outage.trials["status"] == "TERMINATED").all()


def test_an_unreachable_endpoint_is_one_clear_error_after_the_retries(monkeypatch):
    monkeypatch.setenv("RAYSEARCH_S3_MAX_ATTEMPTS", "2")
    target = resolve(f"s3://{BUCKET}/gone/best_config.yaml", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(RaysearchError, match=r"^s3://raysearch-test/gone/best_config.yaml: storage request failed \("):
        target.write_text("lr: 0.01\n")
