"""``raysearch compare`` end to end on ML-100K with tiny settings: files, columns, plots, resume."""

from __future__ import annotations

import pandas as pd
import pytest
from matplotlib import image

from raysearch.cli import main
from raysearch.comparison import ABLATIONS, LEARNING_RATES

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


def test_markdown_report_has_every_section(report):
    out, _ = report
    text = (out / "comparison.md").read_text()
    for heading in ("## Models", "## Ablations", "## Learning-rate sensitivity", "## Fusion weights", "## Findings",
                    "## Configs"):
        assert heading in text
    assert "| item_cold | mf | n/a (needs interactions)" in text
    assert "infer ms / 1k users" in text and "peak RSS MB" in text


def test_plots_are_valid_png(report):
    out, _ = report
    for name in ("lr_sensitivity.png", "fusion_weights.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC)
        assert image.imread(out / name).shape[2] in (3, 4)


def test_fusion_weights_per_field_and_age_group(report):
    out, _ = report
    weights = pd.read_csv(out / "fusion_weights.csv")
    users = weights[(weights["side"] == "user") & (weights["segment"] == "all")]
    assert set(users["field"]) == {"gender", "age", "occupation", "zip_region"}
    assert users.groupby(["key"])["weight"].sum().round(6).eq(1).all()
    assert weights["segment"].str.startswith("age ").any()


def test_rerun_keeps_finished_runs(report):
    out, argv = report
    before = [(out / name).read_text() for name in ("comparison.csv", "invocations.csv")]
    assert main(argv) == 0
    assert [(out / name).read_text() for name in ("comparison.csv", "invocations.csv")] == before


def test_split_file_puts_every_model_on_that_split(tmp_path, data_root, ml100k):
    """``compare --split-file``: the run scores exactly the file's split (here a user_cold split of seed 7)."""
    from raysearch.baselines import popularity
    from raysearch.config import TrainConfig
    from raysearch.evaluation import evaluate
    from raysearch.split_files import read_split, write_split
    from raysearch.splits import eval_task, make_split

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


def test_ablation_findings_are_paired_by_seed():
    """Gaps are full minus ablation on the same seed (no_graph: +0.10, -0.04, +0.02 -> mean 0.0267, std 0.0702);
    the verdict says whether they stand out from their spread."""
    from raysearch.comparison_report import findings, summarize

    ndcg = {"fusion_gcn": [0.30, 0.31, 0.32], "mean_fusion": [0.31, 0.32, 0.33], "no_graph": [0.20, 0.35, 0.30]}
    runs = pd.DataFrame([{"study": "models" if variant == "fusion_gcn" else "ablations", "variant": variant,
                          "split": "item_cold", "seed": seed, "status": "ok", "recall@10": v, "ndcg@10": v,
                          "mrr@10": v, "hit@10": v}
                         for variant, values in ndcg.items() for seed, v in enumerate(values, 1)])
    notes = findings(summarize(runs[runs["study"] == "models"], ["split", "variant"]), runs)
    assert notes == [
        "item_cold: full model does not beat ablation mean_fusion on ndcg@10 (-0.0100 paired over 3 seed(s); "
        "ahead on 0 of 3; gap std 0.0000: larger than the seed-to-seed spread)",
        "item_cold: full model beats ablation no_graph on ndcg@10 (+0.0267 paired over 3 seed(s); "
        "ahead on 2 of 3; gap std 0.0702: within the seed-to-seed spread)"]


def test_collapsed_fusion_is_a_finding():
    """A run whose mean weight on one field is >= 0.9 (over all entities of a side) is named; segment rows,
    other runs and the item side (0.5 at most) are not."""
    from raysearch.comparison_report import collapse_findings

    user = {1: [0.95, 0.03, 0.01, 0.01], 2: [0.60, 0.20, 0.10, 0.10], 3: [0.04, 0.03, 0.03, 0.90]}
    rows = [{"split": "user_cold", "seed": seed, "side": "user", "segment": "all", "field": field, "weight": w}
            for seed, values in user.items() for field, w in zip(("gender", "age", "occupation", "zip_region"), values)]
    rows += [{"split": "user_cold", "seed": 2, "side": "user", "segment": "age 18-24", "field": "age", "weight": 0.99},
             *({"split": "user_cold", "seed": 1, "side": "item", "segment": "all", "field": field, "weight": w}
               for field, w in (("genres", 0.2), ("year", 0.3), ("title", 0.5)))]
    assert collapse_findings(pd.DataFrame(rows)) == [
        "user_cold seed 1: the full model's user fusion collapsed onto gender "
        "(0.950 of the mean weight; every other user field is nearly unused)",
        "user_cold seed 3: the full model's user fusion collapsed onto zip_region "
        "(0.900 of the mean weight; every other user field is nearly unused)"]
