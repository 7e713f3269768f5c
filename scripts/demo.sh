#!/usr/bin/env bash
# The main job: set up, then search the model's hyperparameters on ML-100K with an embedded local Ray.
# Data: $RAYSEARCH_DATA_DIR, else ~/.cache/raysearch (downloaded from GroupLens and checksum-verified).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
raysearch tune --space search_spaces/default.yaml --storage runs/tune --download \
  --name "default-$(date +%Y%m%d-%H%M%S)" "$@"
