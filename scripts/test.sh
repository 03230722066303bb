#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite; pytest-xvfb gives napari a virtual X server.
# Extra arguments go to pytest. The exit code is pytest's own (5 = no tests is a failure).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m ruff check src tests benchmarks examples
exec .venv/bin/python -m pytest "$@"
