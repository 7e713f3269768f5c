#!/usr/bin/env bash
# Creates .venv (if missing) and installs raysearch with its test extra. Sourced by demo.sh and test.sh.
# CPU torch is pinned first: an unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check "torch==2.13.0"
.venv/bin/pip install --quiet --disable-pip-version-check -e ".[test]"
export PATH="$PWD/.venv/bin:$PATH"
# Tests and the demo read the shared MovieLens copy when it sits next to the checkout.
if [ -z "${RAYSEARCH_DATA_DIR:-}" ] && [ -d ../shared/data/ml-100k ]; then
  export RAYSEARCH_DATA_DIR="$(cd ../shared/data && pwd)"
fi
