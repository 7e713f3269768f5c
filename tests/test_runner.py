"""``raysearch compare`` end to end on ML-100K with tiny settings: files, columns, plots, resume."""

from __future__ import annotations

import pandas as pd
import pytest
from matplotlib import image

from raysearch.baselines import popularity
from raysearch.cli import main
from raysearch.compare.plan import ABLATIONS, LEARNING_RATES, Job
from raysearch.compare.runner import compare, run_job
from raysearch.config import TrainConfig
from raysearch.data.protocols import eval_task, make_split
from raysearch.data.split_files import read_split, write_split
from raysearch.evaluation.scoring import evaluate

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = ["--set", "epochs=1", "--set", "embedding_dim=8", "--set", "num_layers=1", "--set", "batch_size=8192",
        "--set", "num_negatives=4"]


@pytest.fixture(scope="module")
def report(tmp_path_factory, data_root):
    out = tmp_path_factory.mktemp("compare")
    argv = ["compare", "--dataset", "ml-100k", "--splits", "item_cold", "--lr-split", "item_cold", "--models",
            "fusion_gcn,mf,popularity", "--seeds", "1", "--workers", "2", "--data-dir", str(data_root), "--out", str(out),
            *TINY]
    assert main(argv) == 0
    return out, argv


@pytest.mark.slow
def test_every_run_is_a_row_with_metrics_and_costs(report):
    out, _ = report
    runs = pd.read_csv(out / "comparison.csv")
    assert len(runs) == 3 + len(ABLATIONS) + len(LEARNING_RATES)
    assert {"study", "variant", "model", "split", "seed", "config", "status", "recall@10", "ndcg@10", "mrr@10",
            "hit@10", "train_seconds", "infer_ms_per_1k_users", "peak_rss_mb"} <= set(runs.columns)
    na = runs[(runs["split"] == "item_cold") & runs["variant"].isin(["mf", "popularity", "no_attributes"])]
    assert set(na["status"]) == {"n/a (needs interactions)"} and na["ndcg@10"].isna().all()
    ok = runs[runs["status"] == "ok"]
    assert ok["ndcg@10"].between(0, 1).all() and (ok["train_seconds"] > 0).all() and (ok["peak_rss_mb"] > 100).all()
    invocations = pd.read_csv(out / "invocations.csv")
    assert invocations[["runs_finished", "workers", "threads"]].values.tolist() == [[len(runs), 2, 1]]
    assert invocations["minutes"].iloc[0] > 0
    assert "1 recorded invocation(s) ran its jobs in" in (out / "comparison.md").read_text()


@pytest.mark.slow
def test_markdown_report_has_every_section(report):
    out, _ = report
    text = (out / "comparison.md").read_text()
    for heading in ("## Models", "## Ablations", "## Learning-rate sensitivity", "## Fusion weights", "## Findings",
                    "## Configs"):
        assert heading in text
    assert "| item_cold | mf | n/a (needs interactions)" in text
    assert "infer ms / 1k users" in text and "peak RSS MB" in text


@pytest.mark.slow
def test_plots_are_valid_png(report):
    out, _ = report
    for name in ("lr_sensitivity.png", "fusion_weights.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC)
        assert image.imread(out / name).shape[2] in (3, 4)


@pytest.mark.slow
def test_fusion_weights_per_field_and_age_group(report):
    out, _ = report
    weights = pd.read_csv(out / "fusion_weights.csv")
    users = weights[(weights["side"] == "user") & (weights["segment"] == "all")]
    assert set(users["field"]) == {"gender", "age", "occupation", "zip_region"}
    assert users.groupby(["key"])["weight"].sum().round(6).eq(1).all()
    assert weights["segment"].str.startswith("age ").any()


@pytest.mark.slow
def test_rerun_keeps_finished_runs(report):
    out, argv = report
    before = [(out / name).read_text() for name in ("comparison.csv", "invocations.csv")]
    assert main(argv) == 0
    assert [(out / name).read_text() for name in ("comparison.csv", "invocations.csv")] == before


@pytest.mark.slow
def test_split_file_puts_every_model_on_that_split(tmp_path, data_root, ml100k):
    """``compare --split-file``: the run scores exactly the file's split (here a user_cold split of seed 7)."""
    path = tmp_path / "published.json"
    write_split(make_split(ml100k, "user_cold", 7), ml100k, path)
    out = tmp_path / "report"
    assert main(["compare", "--models", "popularity", "--seeds", "1", "--no-ablations", "--lr-split", "none",
                 "--split-file", str(path), "--data-dir", str(data_root), "--workers", "1", "--out", str(out)]) == 0
    row = pd.read_csv(out / "comparison.csv").iloc[0]
    assert row["split"] == "user_cold" and f"split_file={path}" in row["config"]
    split = read_split(path, ml100k)
    fitted = popularity.train(TrainConfig(model="popularity", split="user_cold"), ml100k, split)
    expected = evaluate(fitted.scorer, eval_task(split, "test"), ml100k.num_items, (10, 20), 512)
    assert row["ndcg@10"] == pytest.approx(expected["ndcg@10"], abs=1e-12)


def test_runs_already_in_the_csv_are_kept_whatever_the_order_of_their_key(tmp_path):
    """A row written before the model's own keys moved to the end of the label is the same run: not rerun."""
    job = Job("models", "mf", TrainConfig.from_dict({"model": "mf", "seed": 1}))
    row = {"key": "models|mf|model=mf rec_loss=bpr num_negatives=4 seed=1", "study": "models", "variant": "mf",
           "status": "ok", "ndcg@10": 0.25}
    pd.DataFrame([row]).to_csv(tmp_path / "comparison.csv", index=False)
    runs = compare([job], tmp_path, workers=1)
    assert runs.to_dict("records") == [row] and not (tmp_path / "invocations.csv").exists()


@pytest.mark.parametrize("model, split, status", [("lightgbm", "mixed", "n/a (no mixed protocol)"),
                                                  ("mf", "mixed", "n/a (needs interactions)"),
                                                  ("popularity", "item_cold", "n/a (needs interactions)")])
def test_a_model_that_cannot_serve_a_protocol_is_a_row_saying_why(model, split, status):
    job = Job("models", model, TrainConfig.from_dict({"model": model, "split": split}))
    row, weights = run_job(job, None, 1)
    assert row["status"] == status and weights == []
