"""Fuzz benchmark: the test suite's fuzz targets (``raysearch/testing/fuzzing.py``) with many more cases, counted.

    python benchmarks/fuzz.py [--cases 1000] [--seed 0] [--targets data_files,model_files]

Every case must be accepted or rejected with the project's own error naming the file; anything else is a
traceback (any other exception) or an unclear error (an own error without the file, a line that does not
exist, a YAML tag that ran code). Writes ``benchmarks/results/reliability_fuzz.md``: per target the cases
tried, how they ended and the first failure of each kind. Exits 1 if any case failed.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
import warnings
from pathlib import Path

import hypothesis
from hypothesis import HealthCheck, Phase, given, settings

from raysearch.markdown import markdown_table
from raysearch.testing import fuzzing

RESULTS = Path(__file__).resolve().parent / "results"


def run(target: fuzzing.Target, cases: int, seed: int) -> tuple[collections.Counter, dict[str, str], float]:
    """Run ``cases`` generated cases through the target's check; count outcomes, keep the first failures."""
    counts: collections.Counter = collections.Counter()
    first: dict[str, str] = {}

    @hypothesis.seed(seed)
    @settings(max_examples=cases, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(target.cases)
    def probe(case):
        try:
            counts[target.check(case)] += 1
        except AssertionError as err:
            counts["unclear"] += 1
            first.setdefault("unclear", f"{err} <- {case!r:.200}")
        except Exception as err:  # noqa: BLE001 - counting them is the point
            counts["traceback"] += 1
            first.setdefault("traceback", f"{type(err).__name__}: {err} <- {case!r:.200}")

    started = time.perf_counter()
    probe()
    return counts, first, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000, help="cases per target")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--targets", default=",".join(t.name for t in fuzzing.TARGETS))
    args = parser.parse_args()
    warnings.simplefilter("ignore", UserWarning)  # torch comments on the odd pickle protocols of damaged files
    rows, failures = [], []
    for target in (t for t in fuzzing.TARGETS if t.name in args.targets.split(",")):
        counts, first, seconds = run(target, args.cases, args.seed)
        tried = sum(counts.values())
        rows.append([target.name, target.what, tried, counts["accepted"], counts["rejected"], counts["traceback"],
                     counts["unclear"], f"{seconds:.0f}"])
        failures += [f"- {target.name}, first {kind}: `{text}`" for kind, text in first.items()]
        print(f"{target.name}: {tried} cases, {counts['traceback']} tracebacks, {counts['unclear']} unclear "
              f"({seconds:.0f} s)", flush=True)
    total = [sum(r[i] for r in rows) for i in (2, 3, 4, 5, 6)]
    table = markdown_table(["target", "what is fuzzed", "cases tried", "accepted", "rejected with own error",
                            "tracebacks (must be 0)", "unclear errors (must be 0)", "seconds"],
                           rows + [["**all**", "", *total, f"{sum(float(r[7]) for r in rows):.0f}"]])
    command = f"`python benchmarks/fuzz.py --cases {args.cases} --seed {args.seed}`"
    about = (f"(hypothesis {hypothesis.__version__}, targets in `raysearch/testing/fuzzing.py`; the test suite runs "
             "the same targets with 60 derandomized cases each). A case is accepted, or rejected with a "
             "`ConfigError`/`DataError` naming the file (and a line that exists); anything else counts as a traceback "
             "or an unclear error.")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "reliability_fuzz.md").write_text(f"# Reliability: fuzzed input\n\n{command} {about}\n\n{table}\n\n"
                                                 + ("\n".join(failures) or "No case failed.") + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
