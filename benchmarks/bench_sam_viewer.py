"""Viewer responsiveness while the SAM widget computes an embedding, and click -> preview latency.

A real napari viewer (run under Xvfb) with the DSB2018 image and the Segment Anything dock
widget; a 10 ms QTimer records when the event loop gets to run while the widget loads a
vit_b-size checkpoint (random weights) and embeds the image in its worker. The longest gap between
ticks is the longest stall a user would feel. Run::

    xvfb-run -a python -m benchmarks.bench_sam_viewer   # writes benchmarks/results/sam_viewer.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from benchmarks._data import data_folder, result_path


class TickRecorder:
    """Timestamps of a 10 ms QTimer: the event loop's heartbeat."""

    def __init__(self, interval_ms: int = 10) -> None:
        from qtpy.QtCore import QTimer

        self.ticks: list[float] = []
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(lambda: self.ticks.append(time.perf_counter()))

    def gaps_ms(self) -> np.ndarray:
        return 1e3 * np.diff(np.asarray(self.ticks)) if len(self.ticks) > 1 else np.zeros(1)


def run_until(condition, timeout_s: float) -> None:
    """Process Qt events until ``condition()`` is true."""
    from qtpy.QtCore import QCoreApplication

    end = time.perf_counter() + timeout_s
    while not condition() and time.perf_counter() < end:
        QCoreApplication.processEvents()
        time.sleep(0.001)


def measure(checkpoint: Path, image: np.ndarray, timeout_s: float, idle_s: float = 10.0) -> dict:
    import napari

    from napari_cellist._widgets import SamWidget

    viewer = napari.Viewer(show=True)
    viewer.add_image(image, name="nuclei")
    widget = SamWidget(viewer)
    viewer.window.add_dock_widget(widget)
    run_until(lambda: False, 1.0)  # let the window settle
    recorder = TickRecorder()
    recorder.timer.start()
    run_until(lambda: False, idle_s)  # baseline: the same heartbeat with nothing computing
    idle = recorder.gaps_ms()
    recorder.ticks.clear()
    handler = []  # GUI-thread work of the widget: creating the prompt layers, taking the result

    def timed(method):
        def wrapper(*args):
            t0 = time.perf_counter()
            method(*args)
            handler.append((t0, time.perf_counter()))

        return wrapper

    widget._ensure_prompt_layers = timed(widget._ensure_prompt_layers)
    widget._on_embedded = timed(widget._on_embedded)
    start = time.perf_counter()
    widget.image.value = "nuclei"
    widget.checkpoint.value = str(checkpoint)  # starts the worker: load weights + embed
    run_until(lambda: not widget.runner.busy, timeout_s)
    busy_s = time.perf_counter() - start
    ticks = np.asarray(recorder.ticks)
    during = recorder.gaps_ms()
    in_handler = np.zeros(len(during), bool)
    for t0, t1 in handler:  # gaps overlapping the handler: the GUI thread's own work
        in_handler |= (ticks[1:] > t0) & (ticks[:-1] < t1)
    worker_gaps = during[~in_handler] if (~in_handler).any() else np.zeros(1)
    recorder.ticks.clear()
    clicks = []
    points = viewer.layers["nuclei sam points"]
    for row, col in ((100, 100), (250, 300), (400, 150)):
        widget.reject()
        t0 = time.perf_counter()
        points.add([row, col])  # the preview is computed on the GUI thread
        clicks.append(1e3 * (time.perf_counter() - t0))
    recorder.timer.stop()
    viewer.close()
    return {
        "embedding_job_s": busy_s,
        "embedded": widget._embedded_for is not None,
        "ticks": int(len(during)),
        "max_stall_ms": float(during.max()),
        "max_stall_while_worker_runs_ms": float(worker_gaps.max()),
        "p99_gap_ms": float(np.percentile(during, 99)),
        "median_gap_ms": float(np.median(during)),
        "gui_handler_ms": [1e3 * (t1 - t0) for t0, t1 in handler],
        "first_tick_after_layers_ms": float(1e3 * (ticks[0] - handler[0][1]))
        if len(ticks)
        else None,
        "ticks_inside_gui_handler": [
            int(((ticks > t0) & (ticks < t1)).sum()) for t0, t1 in handler
        ],
        "gui_handler_window_s": [(t0 - start, t1 - start) for t0, t1 in handler],
        "worst_gaps_ms_at_s": [
            (float(during[i]), float(ticks[i] - start)) for i in np.argsort(during)[::-1][:5]
        ],
        "ticks_window_s": [float(ticks[0] - start), float(ticks[-1] - start)] if len(ticks) else [],
        "idle_baseline_max_gap_ms": float(idle.max()),
        "idle_baseline_p99_gap_ms": float(np.percentile(idle, 99)),
        "click_to_preview_ms": clicks,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", choices=("vit_b", "tiny"), default="vit_b")
    parser.add_argument("--runs", type=int, default=3, help="cold runs, each with a new viewer")
    parser.add_argument("--out", default=str(result_path("sam_viewer.json")))
    args = parser.parse_args()
    import torch

    from napari_cellist.models.sam.architecture import (
        TINY_CONFIG,
        SamConfig,
        write_random_checkpoint,
    )

    torch.set_num_threads(args.threads)
    vit_b = SamConfig(768, 12, 12, (2, 5, 8, 11))
    image = tifffile.imread(sorted((data_folder("dsb2018_stardist") / "images").glob("*.tif"))[0])
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        config = vit_b if args.model == "vit_b" else TINY_CONFIG
        checkpoint = write_random_checkpoint(Path(tmp) / f"{args.model}.pth", config)
        for run in range(args.runs):
            os.environ["CELLIST_SAM_CACHE"] = str(Path(tmp) / f"cache{run}")  # cold every run
            result = measure(checkpoint, image, timeout_s=900)
            result["load_average_1min_at_end"] = os.getloadavg()[0]
            runs.append(result)
    summary = {
        "model": args.model,
        "image": list(image.shape),
        "threads": args.threads,
        "runs": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    print(
        "| run | embedding job s | ticks | prompt layers created + first draw, GUI thread ms "
        "| longest gap while "
        "the worker runs ms | p99 gap ms | idle baseline longest / p99 gap ms | click -> preview ms "
        "| load avg |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for i, r in enumerate(runs, start=1):
        print(
            f"| {i} | {r['embedding_job_s']:.1f} | {r['ticks']} | {r['gui_handler_ms'][0]:.0f} + "
            f"{r['first_tick_after_layers_ms']:.0f} "
            f"| {r['max_stall_while_worker_runs_ms']:.0f} | {r['p99_gap_ms']:.0f} "
            f"| {r['idle_baseline_max_gap_ms']:.0f} / {r['idle_baseline_p99_gap_ms']:.0f} "
            f"| {', '.join(f'{c:.0f}' for c in r['click_to_preview_ms'])} "
            f"| {r['load_average_1min_at_end']:.1f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
