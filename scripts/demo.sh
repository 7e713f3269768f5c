#!/usr/bin/env bash
# The main job: set up, then train and evaluate the model on ML-100K (item cold start).
# Data: $RAYSEARCH_DATA_DIR, else ~/.cache/raysearch (downloaded from GroupLens and checksum-verified).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
raysearch train --dataset ml-100k --split item_cold --download "$@"
