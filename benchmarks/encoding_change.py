"""What a change of data encoding does to every model: two `raysearch compare` reports on the same seeded splits,
paired model by model and seed by seed.

    python benchmarks/encoding_change.py [--base reports/ml-100k] [--changed reports/ml-100k-years]

``--changed`` is a report run with one data key changed for every model (its ``comparison.md`` gives the command,
e.g. ``--set year_spans=[1,5]``); ``--base`` the report with the defaults. Writes ``CHANGED/paired.md``: per split
and model, both means of NDCG@10 and the paired change (changed minus base), its std over seeds, and on how many
seeds the model gained.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from raysearch.markdown import markdown_table

ROOT = Path(__file__).resolve().parents[1]
METRIC = "ndcg@10"


def model_runs(report: Path) -> pd.DataFrame:
    """The finished model runs (not ablations) of a report: metric by split, model and seed."""
    runs = pd.read_csv(report / "comparison.csv")
    runs = runs[(runs["study"] == "models") & (runs["status"] == "ok")]
    return runs.set_index(["split", "variant", "seed"])[METRIC]


def paired_rows(base: pd.Series, changed: pd.Series) -> list[list]:
    """One row per (split, model) of ``changed`` that ``base`` also ran, on the seeds both finished."""
    both = pd.concat({"base": base, "changed": changed}, axis=1, join="inner")
    both["change"] = both["changed"] - both["base"]
    rows = []
    for (split, model), part in both.groupby(level=["split", "variant"], sort=False):
        rows.append([split, model, f"{part['base'].mean():.4f}",
                     f"{part['changed'].mean():.4f} ± {part['changed'].std():.4f}",
                     f"{part['change'].mean():+.4f}", f"{part['change'].std():.4f}",
                     f"{int((part['change'] > 0).sum())} of {len(part)}"])
    return sorted(rows, key=lambda row: (row[0], -float(row[3].split()[0])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, default=ROOT / "reports" / "ml-100k")
    parser.add_argument("--changed", type=Path, default=ROOT / "reports" / "ml-100k-years")
    args = parser.parse_args()
    out = args.changed / "paired.md"
    table = markdown_table(["split", "model", f"base {METRIC}", f"changed {METRIC}", "paired change",
                            "change std", "seeds gained"], paired_rows(model_runs(args.base), model_runs(args.changed)))
    out.write_text("\n".join([
        f"# {args.changed.name} against {args.base.name}, model by model", "",
        f"Command: `python benchmarks/encoding_change.py --base {args.base.resolve().relative_to(ROOT)} --changed "
        f"{args.changed.resolve().relative_to(ROOT)}`. Test {METRIC} of each model in both reports (same seeded splits; the "
        "changed report's command is in its `comparison.md`), paired seed by seed: a change is beyond the "
        "seed-to-seed spread when its mean exceeds its std.", "", table, ""]))
    print(out.read_text())


if __name__ == "__main__":
    main()
