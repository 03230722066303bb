"""Viewer responsiveness while the Base model widget predicts: the longest event-loop stall.

A 10 ms QTimer records the gaps between its ticks while the threshold model segments the
largest image of ../shared/data in a napari thread worker (the plugin's way): a first run that
creates the three layers, a re-run that updates them in place, and a synchronous re-run on the
GUI thread (CELLIST_SYNC=1) for comparison. What remains of the stall in worker mode is napari
building / updating the layers on the GUI thread, which napari requires. Run under a display or Xvfb:

    xvfb-run -a python -m benchmarks.bench_responsiveness
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import tifffile

from benchmarks._data import data_root, result_path


def measure(viewer, widget, sync: bool) -> dict:
    from qtpy.QtCore import QCoreApplication, QTimer

    os.environ["CELLIST_SYNC"] = "1" if sync else "0"
    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(10)
    for _ in range(20):
        QCoreApplication.processEvents()
        time.sleep(0.005)
    start = time.perf_counter()
    widget._on_run()
    widget.runner.wait(600_000)
    elapsed = time.perf_counter() - start
    end = time.perf_counter() + 0.2
    while time.perf_counter() < end:
        QCoreApplication.processEvents()
    timer.stop()
    gaps = np.diff([t for t in ticks if t >= start - 0.05]) * 1000
    return {
        "mode": "synchronous" if sync else "thread worker",
        "prediction_s": elapsed,
        "max_stall_ms": float(gaps.max()),
        "p95_gap_ms": float(np.percentile(gaps, 95)),
        "ticks": int(len(gaps)),
    }


def main() -> None:
    import napari

    from napari_cellist._widgets import BaseModelWidget

    path = max(data_root().glob("*/images/*.tif"), key=lambda p: tifffile.imread(p).size)
    viewer = napari.Viewer(show=True)
    viewer.add_image(tifffile.imread(path), name="image")
    widget = BaseModelWidget(viewer)
    widget.image.value = "image"
    first = measure(
        viewer, widget, sync=False
    )  # creates the layers (and imports napari's layer code)
    first["mode"] = "thread worker, first run (layers created)"
    rows = [first, measure(viewer, widget, sync=False), measure(viewer, widget, sync=True)]
    rows[1]["mode"] = "thread worker, re-run (layers updated in place)"
    rows[2]["mode"] = "synchronous re-run (CELLIST_SYNC=1), for comparison"
    print(f"image {path.name} {tifffile.imread(path).shape}")
    print("| mode | prediction (s) | longest stall (ms) | 95th pct gap (ms) |")
    print("|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['mode']} | {r['prediction_s']:.2f} | {r['max_stall_ms']:.0f} | {r['p95_gap_ms']:.0f} |"
        )
    out = result_path("responsiveness.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"image": path.name, "rows": rows}, indent=2))
    viewer.close()


if __name__ == "__main__":
    main()
