#!/usr/bin/env bash
# The main job: napari with the Cellist widgets and the nuclei sample, the base model already run.
# Without a display it runs the whole loop headless (predict -> correct -> commit -> fit ->
# predict again) under a virtual X server and writes the results and screenshots to
# cellist-demo/ (or the folder given as the first argument).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out="${1:-cellist-demo}"
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
    exec .venv/bin/cellist demo --out "$out"
fi
exec xvfb-run -a -s "-screen 0 1600x1200x24" .venv/bin/cellist demo --headless --out "$out"
