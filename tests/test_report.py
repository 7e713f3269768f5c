"""The compare report's findings, from hand-made run rows."""

import pandas as pd

from raysearch.compare.report import collapse_findings, findings, invocation_header, summarize


def test_ablation_findings_are_paired_by_seed():
    """Gaps are full minus ablation on the same seed (no_graph: +0.10, -0.04, +0.02 -> mean 0.0267, std 0.0702);
    the verdict says whether they stand out from their spread."""
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


def test_model_findings_are_paired_by_seed_and_name_any_metric_a_baseline_leads():
    """lightgbm: ndcg gaps +0.05, +0.07, -0.01 (mean +0.0367, std 0.0416); it leads on hit@10 by 0.02 a seed."""
    rows = []
    for seed, (full, gbdt) in enumerate([(0.25, 0.20), (0.30, 0.23), (0.20, 0.21)], 1):
        rows += [{"study": "models", "variant": "fusion_gcn", "split": "item_cold", "seed": seed, "status": "ok",
                  "recall@10": full, "ndcg@10": full, "mrr@10": full, "hit@10": 0.5},
                 {"study": "models", "variant": "lightgbm", "split": "item_cold", "seed": seed, "status": "ok",
                  "recall@10": gbdt, "ndcg@10": gbdt, "mrr@10": gbdt, "hit@10": 0.52},
                 {"study": "models", "variant": "mf", "split": "item_cold", "seed": seed,
                  "status": "n/a (needs interactions)"}]
    runs = pd.DataFrame(rows)
    assert findings(summarize(runs, ["split", "variant"]), runs) == [
        "item_cold: full model beats model lightgbm on ndcg@10 (+0.0367 paired over 3 seed(s); "
        "ahead on 2 of 3; gap std 0.0416: within the seed-to-seed spread)",
        "item_cold: full model does not beat model lightgbm on hit@10 (-0.0200 paired over 3 seed(s); "
        "ahead on 0 of 3; gap std 0.0000: larger than the seed-to-seed spread)"]


def test_collapsed_fusion_is_a_finding():
    """A run whose mean weight on one field is >= 0.9 (over all entities of a side) is named; segment rows,
    other runs and the item side (0.5 at most) are not."""
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


def test_summary_gives_mean_and_sample_std_over_seeds_and_keeps_n_a_rows():
    runs = pd.DataFrame([{"split": "warm", "variant": "a", "status": "ok", "ndcg@10": v} for v in (0.1, 0.2, 0.3)]
                        + [{"split": "warm", "variant": "b", "status": "n/a (needs interactions)"}])
    summary = summarize(runs, ["split", "variant"]).set_index("variant")
    assert round(summary.loc["a", "ndcg@10_mean"], 9) == 0.2 and round(summary.loc["a", "ndcg@10_std"], 9) == 0.1  # ddof=1
    assert summary.loc["a", "seeds"] == 3 and summary.loc["b", "status"] == "n/a (needs interactions)"


def test_header_names_the_command_the_invocations_and_a_partial_report():
    invocations = pd.DataFrame({"minutes": [10.0, 2.5]})
    text = invocation_header("ml-100k", {"warm": 3, "item_cold": 1}, "--seeds 3,item_cold=1", 1.0, invocations, 2, 1, 5, 6)
    assert text.startswith("# Comparison: ml-100k: warm (3 seeds), item_cold (1 seed)\n\n"
                           "Command: `raysearch compare --seeds 3,item_cold=1`")
    assert "2 recorded invocation(s) ran its jobs in 12.5 min" in text and "**Partial report**: 5 of 6 planned" in text
