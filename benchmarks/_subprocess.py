"""Run one benchmark case in a fresh Python process, so that its peak memory is its own."""

from __future__ import annotations

import json
import subprocess
import sys


def run_case(module: str, *args: object) -> dict:
    """``python -m <module> <args>`` in a subprocess; the JSON object on its last stdout line.

    Parameters
    ----------
    module : str
        The benchmark module, e.g. ``"benchmarks.bench_tiled"``; it prints one JSON result as its
        last line when called with these arguments.
    *args
        Command-line arguments (converted with ``str``).
    """
    out = subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])
