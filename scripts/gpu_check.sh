#!/usr/bin/env bash
# GPU smoke check: a short search with one GPU worker (NCCL backend), then the epoch time and best metric.
# Run on a machine with a CUDA GPU and a CUDA build of torch:  bash scripts/gpu_check.sh [raysearch tune options]
# e.g. `bash scripts/gpu_check.sh --set mixed_precision=bf16`; SPACE=file picks another search space.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
storage="$(mktemp -d)"
space="${SPACE:-search_spaces/smoke.yaml}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -m raysearch tune --space "$space" --storage "$storage" --name gpu-check --use-gpu \
  --workers-per-trial 1 --set epochs=3 --download "$@"
python3 - "$storage/gpu-check" <<'PY'
import sys, pandas as pd, pathlib
experiment = pathlib.Path(sys.argv[1])
trials = pd.read_csv(experiment / "trials.csv")
seconds = pd.concat(pd.read_json(p, lines=True)["epoch_seconds"] for p in experiment.glob("run_trial_*/result.json"))
print(f"GPU smoke search: {len(trials)} trials, mean epoch {seconds.mean():.3f} s, "
      f"best valid ndcg@10 {trials['best_value'].max():.4f}")
PY
