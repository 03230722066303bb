"""Longest GUI stall while clicking SAM prompts rapidly: decoding on the GUI thread vs the worker.

A real napari viewer (under Xvfb) with the DSB2018 image and the Segment Anything dock widget; a
10 ms QTimer records when the event loop runs while ``--clicks`` points are added 50 ms apart
(as fast as a person clicks). The SAM has a small random encoder (fast to embed) and the official
mask decoder at the official 1024 px input, so a click costs what it costs with vit_b/l/h.

* ``gui thread``: every click decoded in the click handler (``CELLIST_SYNC=1``, the old way);
* ``worker``: clicks go to :class:`~napari_cellist.models.sam.clicks.LatestClickWorker`, which
  answers the newest and drops older pending ones.

Run::

    xvfb-run -a python -m benchmarks.bench_sam_clicks   # writes benchmarks/results/sam_clicks.json
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
from benchmarks.bench_sam_viewer import TickRecorder, run_until


def measure(checkpoint: Path, image: np.ndarray, clicks: int, synchronous: bool) -> dict:
    import napari

    from napari_cellist._widgets import SamWidget

    os.environ["CELLIST_SYNC"] = "1" if synchronous else "0"
    viewer = napari.Viewer(show=True)
    viewer.add_image(image, name="nuclei")
    widget = SamWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.image.value = "nuclei"
    widget.checkpoint.value = str(checkpoint)
    run_until(lambda: widget._embedded_for is not None and not widget.runner.busy, 600)
    points = viewer.layers["nuclei sam points"]
    rng = np.random.default_rng(0)
    targets = rng.integers(20, min(image.shape) - 20, (clicks, 2))
    recorder = TickRecorder()
    recorder.timer.start()
    run_until(lambda: False, 0.5)
    recorder.ticks.clear()
    start = time.perf_counter()
    handler_ms = []
    for row, col in targets:
        t0 = time.perf_counter()
        points.add([int(row), int(col)])
        handler_ms.append(1e3 * (time.perf_counter() - t0))
        run_until(lambda: False, 0.05)
    last = tuple(float(v) for v in targets[-1])

    def answered() -> bool:
        result = widget.last_result
        return result is not None and len(points.data) == clicks and widget._n_points == clicks

    run_until(lambda: answered() and widget._clicks.wait_idle(0), 60)
    done_s = time.perf_counter() - start
    run_until(lambda: False, 0.2)
    recorder.timer.stop()
    gaps = recorder.gaps_ms()
    dropped = widget._clicks.dropped
    viewer.close()
    return {
        "mode": "gui thread" if synchronous else "worker",
        "clicks": clicks,
        "last_click": last,
        "longest_stall_ms": float(gaps.max()),
        "p99_gap_ms": float(np.percentile(gaps, 99)),
        "click_handler_ms_max": float(max(handler_ms)),
        "click_handler_ms_median": float(np.median(handler_ms)),
        "all_answered_after_s": done_s,
        "clicks_dropped": int(dropped),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    from napari_cellist.models.sam.architecture import SamConfig, write_random_checkpoint

    torch.set_num_threads(args.threads)
    # small encoder (fast embedding), official prompt encoder / mask decoder at 1024 px
    config = SamConfig(32, 2, 2, (1,), img_size=1024)
    image = tifffile.imread(sorted((data_folder("dsb2018_stardist") / "images").glob("*.tif"))[0])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = write_random_checkpoint(Path(tmp) / "decoder_1024.pth", config)
        os.environ["CELLIST_SAM_CACHE"] = str(Path(tmp) / "cache")
        for synchronous in (True, False):
            rows.append(measure(checkpoint, image, args.clicks, synchronous))
    print(
        "| mode | clicks | longest stall ms | p99 gap ms | click handler max ms | all answered after s | dropped |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['mode']} | {r['clicks']} | {r['longest_stall_ms']:.0f} | {r['p99_gap_ms']:.0f} "
            f"| {r['click_handler_ms_max']:.0f} | {r['all_answered_after_s']:.2f} | {r['clicks_dropped']} |"
        )
    path = result_path("sam_clicks.json")
    path.write_text(
        json.dumps({"image": list(image.shape), "threads": args.threads, "runs": rows}, indent=2)
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
