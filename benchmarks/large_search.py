"""``search_spaces/large.yaml`` on the 5M synthetic set, run as a user runs it: does a search complete on 2 cores with
ASHA and write everything a search writes?

    python benchmarks/large_search.py [--data-dir DIR]

Makes the synthetic set with ``raysearch synthesize`` (its defaults: 30k users, 10k movies, 5M ratings, seed 0) in
``--data-dir`` unless it is there, runs ``raysearch tune --space search_spaces/large.yaml --num-cpus 2`` into a
temporary storage folder, and writes ``benchmarks/results/large_search_synthetic-5m.md``: the wall time, what the
experiment folder holds, and its ``summary.md`` as written (plot links dropped: the plots stay behind).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "large_search_synthetic-5m.md"
SPACE = ROOT / "search_spaces" / "large.yaml"


def raysearch(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "raysearch", *args], check=True, cwd=ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="parent folder of synthetic/ (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(args.data_dir or scratch) / "data"
        if not (data / "synthetic" / "ratings.csv").exists():
            raysearch("synthesize", "--data-dir", str(data))
        storage = Path(scratch) / "storage"
        started = time.time()
        raysearch("tune", "--space", str(SPACE), "--data-dir", str(data), "--storage", str(storage), "--num-cpus", "2")
        wall = time.time() - started
        experiment = storage / "large"
        held = ", ".join(sorted(f"{p.name}/" if p.is_dir() else p.name for p in experiment.iterdir()))
        summary = [line for line in (experiment / "summary.md").read_text().splitlines() if not line.startswith("![")]
    OUT.write_text("\n".join([
        "# search_spaces/large.yaml on the 5M synthetic set (2 cores)", "",
        f"Command: `python benchmarks/large_search.py` (`raysearch synthesize` with its defaults, then `raysearch tune "
        f"--space search_spaces/large.yaml --num-cpus 2`). Wall time of the search: **{wall / 60:.1f} min**.", "",
        f"The experiment folder held: {held}.", "", "Its summary.md as written, without the plot links:", "",
        *(line.replace("# ", "## ", 1) if line.startswith("# ") else line for line in summary), ""]))
    print(OUT.read_text())


if __name__ == "__main__":
    main()
