#!/usr/bin/env bash
# Set up, then run the whole test suite (real MovieLens files from $RAYSEARCH_DATA_DIR or ../shared/data).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
python -m pytest -q "$@"
