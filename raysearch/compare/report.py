"""The compare report: ``comparison.md`` (tables, findings, configs) and PNG plots from the run rows."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from raysearch.atomic_files import atomic_write, atomic_write_text  # noqa: E402
from raysearch.compare.plan import FULL  # noqa: E402
from raysearch.config import METRIC_NAMES  # noqa: E402
from raysearch.markdown import markdown_table  # noqa: E402

RUNS_FILE = "comparison.csv"  # every run: metrics, status, costs
WEIGHTS_FILE = "fusion_weights.csv"  # the full model's mean attention weight per field
INVOCATIONS_FILE = "invocations.csv"  # one row per invocation that ran jobs: the whole compare's wall time
METRICS = tuple(f"{name}@10" for name in METRIC_NAMES)
COSTS = {"train_seconds": "train s", "infer_ms_per_1k_users": "infer ms / 1k users", "peak_rss_mb": "peak RSS MB"}
COLLAPSED = 0.9  # mean weight at or above which one field has taken over a fusion (the others go nearly unused)


def invocation_header(dataset: str, seeds: dict[str, int], command: str, minutes: float,
                      invocations: pd.DataFrame, workers: int, threads: int, finished: int, planned: int) -> str:
    """The report's title and its first paragraph: the command, this invocation and all recorded ones, the
    machine, whether the report is partial, and how every run was scored and costed."""
    wall = (f"; {len(invocations)} recorded invocation(s) ran its jobs in {invocations['minutes'].sum():.1f} min "
            f"of wall time in all ({INVOCATIONS_FILE})" if len(invocations) else "")
    splits = ", ".join(f"{split} ({count} seed{'s' * (count > 1)})" for split, count in seeds.items())
    return (f"# Comparison: {dataset}: {splits}\n\n"
            f"Command: `raysearch compare {command}`; this invocation ran for {minutes:.1f} min "
            f"(runs already in {RUNS_FILE} were kept){wall}; {workers} runs at a time with {threads} torch "
            f"thread(s) each, on {os.cpu_count()} cores, torch {torch.__version__}. "
            f"{'**Partial report**: ' if finished < planned else ''}{finished} of {planned} planned runs "
            f"finished. Every model is scored by the same "
            f"full-ranking evaluation on the same seeded splits (test part; the validation part early-stops and "
            f"selects). Costs: training seconds include per-epoch validation; inference is the scoring time of the "
            f"test ranking per 1,000 users; peak RSS is the run's own process (Python and torch included).\n")


def summarize(runs: pd.DataFrame, group: list[str]) -> pd.DataFrame:
    """Mean and std (over seeds) of every metric and cost per group; n/a groups keep their status."""
    ok = runs[runs["status"] == "ok"]
    columns = [c for c in (*METRICS, *COSTS, "epochs_run") if c in ok]
    stats = ok.groupby(group, sort=False)[columns].agg(["mean", "std"])
    stats.columns = [f"{c}_{s}" for c, s in stats.columns]
    stats["seeds"] = ok.groupby(group, sort=False).size()
    na = runs[runs["status"] != "ok"].drop_duplicates(group).set_index(group)["status"]
    return pd.concat([stats, na.to_frame()], axis=0).reset_index()


def metric_table(summary: pd.DataFrame, label: str, costs: bool) -> str:
    """Markdown rows ``split | label | metrics (mean ± std, best per split in bold) [| costs]``."""
    head = ["split", label, *METRICS] + (list(COSTS.values()) + ["epochs"] if costs else [])
    lines = []
    for split, rows in summary.groupby("split", sort=False):
        best = {m: rows[f"{m}_mean"].max() for m in METRICS}
        for _, row in rows.iterrows():
            if pd.isna(row.get(f"{METRICS[0]}_mean")):
                cells = [row["status"]] * len(METRICS) + (["-"] * (len(COSTS) + 1) if costs else [])
            else:
                cells = [_cell(row, m, bold=np.isclose(row[f"{m}_mean"], best[m])) for m in METRICS]
                if costs:
                    cells += [f"{row[f'{c}_mean']:.{0 if c == 'peak_rss_mb' else 1}f}" for c in COSTS]
                    cells.append(f"{row['epochs_run_mean']:.0f}")
            lines.append([split, row[label], *cells])
    return markdown_table(head, lines)


def _cell(row: pd.Series, metric: str, bold: bool) -> str:
    std = row[f"{metric}_std"]
    text = f"{row[f'{metric}_mean']:.4f}" + (f" ± {std:.4f}" if pd.notna(std) else "")
    return f"**{text}**" if bold else text


def findings(models: pd.DataFrame, runs: pd.DataFrame) -> list[str]:
    """Plain statements, each paired seed by seed with the full model (same split, same initialisation): the
    full model against every other model and every ablation on NDCG@10, and against any model whose mean
    beats it on another metric."""
    notes = []
    for split, rows in models.groupby("split", sort=False):
        part = runs[runs["split"] == split]
        for study, kind in (("models", "model"), ("ablations", "ablation")):
            notes += [paired_finding(split, kind, variant, "ndcg@10", gaps)
                      for variant, gaps in paired_gaps(part, "ndcg@10", study).items()]
        full = rows[rows["variant"] == FULL]
        if full.empty or pd.isna(full.iloc[0].get("ndcg@10_mean")):
            continue
        for metric in METRICS[:1] + METRICS[2:]:
            best = rows.loc[rows[f"{metric}_mean"].idxmax()]
            if best["variant"] != FULL:
                notes.append(paired_finding(split, "model", best["variant"], metric,
                                            paired_gaps(part, metric, "models")[best["variant"]]))
    return notes


def paired_gaps(runs: pd.DataFrame, metric: str, study: str) -> dict[str, pd.Series]:
    """Per variant of ``study`` (``models``: every other model; ``ablations``), full model minus variant on
    ``metric`` for every seed both finished."""
    ok = runs[runs["status"] == "ok"]
    full = ok[(ok["study"] == "models") & (ok["variant"] == FULL)].set_index("seed")[metric]
    others = ok[(ok["study"] == study) & (ok["variant"] != FULL)]
    gaps = {variant: (full - rows.set_index("seed")[metric]).dropna()
            for variant, rows in others.groupby("variant", sort=False)}
    return {variant: gap for variant, gap in gaps.items() if not gap.empty}


def paired_finding(split: str, kind: str, variant: str, metric: str, gaps: pd.Series) -> str:
    """``full model beats|does not beat <kind> <variant>``, with the paired gap, wins per seed and whether the
    gap stands out from its seed-to-seed spread (mean gap larger than the gaps' std)."""
    mean, wins, n = gaps.mean(), int((gaps > 0).sum()), len(gaps)
    spread = ("one seed" if n == 1 else
              f"gap std {gaps.std():.4f}: {'larger than' if abs(mean) > gaps.std() else 'within'} the seed-to-seed spread")
    verdict = "beats" if mean > 0 else "does not beat"
    return (f"{split}: full model {verdict} {kind} {variant} on {metric} ({mean:+.4f} paired over {n} seed(s); "
            f"ahead on {wins} of {n}; {spread})")


def collapse_findings(weights: pd.DataFrame) -> list[str]:
    """Runs whose attention put nearly all of a side's weight on one field: the paper's failure signature
    of a fusion that outputs constants instead of adaptive weights, hidden by the averaged table."""
    top = weights[weights["segment"] == "all"].sort_values("weight").groupby(["split", "seed", "side"]).tail(1)
    return [f"{row.split} seed {row.seed}: the full model's {row.side} fusion collapsed onto {row.field} "
            f"({row.weight:.3f} of the mean weight; every other {row.side} field is nearly unused)"
            for row in top[top["weight"] >= COLLAPSED].sort_values(["split", "seed", "side"]).itertuples()]


def lr_plot(summary: pd.DataFrame, path: Path) -> None:
    """NDCG@10 and Hit@10 (mean ± std over seeds) against the learning rate, log x axis."""
    rates = summary["variant"].str.removeprefix("lr=").astype(float)
    order = np.argsort(rates.to_numpy())
    fig, ax = plt.subplots(figsize=(6, 4))
    for metric in ("ndcg@10", "hit@10"):
        ax.errorbar(rates.to_numpy()[order], summary[f"{metric}_mean"].to_numpy()[order],
                    yerr=summary[f"{metric}_std"].fillna(0).to_numpy()[order], marker="o", capsize=3, label=metric)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("test metric")
    ax.set_title(f"Learning-rate sensitivity ({', '.join(summary['split'].unique())})")
    ax.legend()
    _save(fig, path)


def weights_table(weights: pd.DataFrame) -> pd.DataFrame:
    """Mean fusion weight per (side, segment) row and field column, averaged over splits and seeds."""
    return weights.groupby(["side", "segment", "field"], sort=False)["weight"].mean().unstack("field")


def weights_plot(table: pd.DataFrame, path: Path) -> None:
    """One heatmap per side: segments x fields, annotated with the mean weight."""
    sides = table.index.get_level_values("side").unique()
    fig, axes = plt.subplots(1, len(sides), figsize=(6 * len(sides), 4), squeeze=False)
    for ax, side in zip(axes[0], sides):
        part = table.loc[side].dropna(axis=1, how="all")
        image = ax.imshow(part.to_numpy(), cmap="viridis", aspect="auto", vmin=0, vmax=1)
        ax.set_xticks(range(part.shape[1]), part.columns, rotation=30)
        ax.set_yticks(range(part.shape[0]), part.index)
        for (r, c), value in np.ndenumerate(part.to_numpy()):
            ax.text(c, r, f"{value:.2f}", ha="center", va="center", color="white" if value < 0.5 else "black")
        ax.set_title(f"{side} fields: mean attention weight")
        fig.colorbar(image, ax=ax)
    _save(fig, path)


def _without_run(label: str) -> str:
    """A config label without the split and seed, which vary per run."""
    return " ".join(p for p in label.split() if not p.startswith(("split=", "seed=")))


def _save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def write_report(runs: pd.DataFrame, weights: pd.DataFrame, out: Path, header: str) -> Path:
    """Write ``comparison.md`` and the PNG plots next to the CSVs; returns the markdown path."""
    models = summarize(runs[runs["study"] == "models"], ["split", "variant"])
    weights = weights[weights["key"].isin(runs["key"])] if not weights.empty else weights
    full = models[models["variant"] == FULL]
    ablations = summarize(runs[runs["study"] == "ablations"], ["split", "variant"])
    sections = [header, "## Models (test split, mean ± std over seeds; best per split in bold)\n",
                metric_table(models, "variant", costs=True)]
    if not ablations.empty:
        sections += ["\n## Ablations of the full model\n",
                     metric_table(pd.concat([full, ablations]), "variant", costs=False)]
    rates = runs[runs["study"] == "learning_rate"]
    if not rates.empty:
        lr = summarize(rates, ["split", "variant"])
        lr_plot(lr, out / "lr_sensitivity.png")
        sections += ["\n## Learning-rate sensitivity of the full model\n", metric_table(lr, "variant", costs=False),
                     "\n![learning rate](lr_sensitivity.png)"]
    if not weights.empty:
        table = weights_table(weights)
        weights_plot(table, out / "fusion_weights.png")
        sections += ["\n## Fusion weights of the full model (mean attention per field)\n",
                     markdown_table(["side", "segment", *table.columns],
                                    [[*index, *(f"{v:.3f}" if pd.notna(v) else "" for v in row)]
                                     for index, row in zip(table.index, table.to_numpy())]),
                     "\n![fusion weights](fusion_weights.png)"]
    notes = findings(models, runs) + (collapse_findings(weights) if not weights.empty else [])
    sections += ["\n## Findings\n", "\n".join(f"- {n}" for n in notes) or "- none",
                 "\n## Configs (keys that differ from the defaults)\n",
                 "\n".join(f"- {v}: `{_without_run(c)}`" for v, c in runs.drop_duplicates("variant")[["variant", "config"]]
                           .itertuples(index=False))]
    path = out / "comparison.md"
    atomic_write_text(path, "\n".join(sections) + "\n")
    return path
