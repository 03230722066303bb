"""Live sync in a real napari viewer: edit latency and the GUI stall of Commit, by object count.

**Edit latency** (issue 18, point 4). A grid of square objects (1,024 / 5,041 by default) is
shown as the Labels, Shapes and Points layers of a napari viewer (``show=True``: run under a
display or Xvfb). Strokes of ``--dabs`` brush dabs each grow one object; per dab the time of
``Labels.paint`` (napari's paint and, when linked, the :class:`LiveLink` handler: label map,
index, the touched objects' outlines and centres) plus the Qt event processing that draws it
(what happens between two mouse moves) is measured, and per stroke the deferred update of the
Shapes / Points layers (``LiveLink.flush``, what the 150 ms stroke-end timer runs) and its
drawing. Three modes in the same viewer:

* ``napari alone``: no link (the reference);
* ``live, deferred``: the link as the Project panel uses it (layers updated once per stroke);
* ``live, per dab``: ``defer_ms=0``, the layers updated within every paint event (the former
  behaviour).

**Commit stall** (point 5). A project whose one image (an ``images/`` + ``masks/`` folder) has
1k / 5k / 20k objects is opened in the Project panel (napari worker threads, as for a user);
while **Commit** runs, a 10 ms QTimer on the GUI thread records the gaps between its ticks, as
``bench_responsiveness`` does; the longest gap is the longest stall. ``--hidden`` repeats it
with a hidden viewer (no canvas drawn), to separate napari's rendering from the commit's work.

    xvfb-run -a python -m benchmarks.bench_live_edit [--objects 1024 5041] \\
        [--commit-objects 1024 5041 20164] [--hidden] [--dabs 8 --strokes 6]

Prints two tables and writes ``benchmarks/results/live_edit.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._data import result_path

CELL = 28  # pixels per grid cell in the edit benchmark (objects of 18 x 18)


def grid_labels(n_objects: int, cell: int = CELL, size: int = 18) -> np.ndarray:
    """A label map ``(Y, X)`` int32 with ``ceil(sqrt(n))^2`` square objects, ids 1..n_side^2."""
    n_side = math.ceil(math.sqrt(n_objects))
    labels = np.zeros((cell * n_side, cell * n_side), np.int32)
    offset = (cell - size) // 2
    for k in range(n_side * n_side):
        r, c = divmod(k, n_side)
        labels[
            cell * r + offset : cell * r + offset + size,
            cell * c + offset : cell * c + offset + size,
        ] = k + 1
    return labels


def _process_for(seconds: float) -> None:
    from qtpy.QtCore import QCoreApplication

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QCoreApplication.processEvents()
        time.sleep(0.001)


def _strokes(layer, link, n_side: int, n_strokes: int, n_dabs: int, seed: int) -> dict:
    """Paint ``n_strokes`` strokes of ``n_dabs`` dabs (each stroke grows one object into the gap
    below it). Per dab: ``Labels.paint`` and then the Qt events that draw it (as napari does
    between two mouse moves); per stroke: the deferred layer update and its drawing."""
    from qtpy.QtCore import QCoreApplication

    rng = np.random.default_rng(seed)
    paints, dabs, updates = [], [], []
    for label in rng.choice(n_side * n_side, n_strokes, replace=False):
        r, c = divmod(int(label), n_side)
        for k in range(n_dabs):
            y, x = CELL * r + 23, CELL * c + 6 + 2 * k  # a horizontal drag in the gap
            start = time.perf_counter()
            layer.paint((y, x), int(label) + 1)
            painted = time.perf_counter()
            QCoreApplication.processEvents()  # napari / vispy draw the dab
            paints.append(1e3 * (painted - start))
            dabs.append(1e3 * (time.perf_counter() - start))
        start = time.perf_counter()
        if link is not None:
            link.flush()  # what the stroke-end timer runs
        QCoreApplication.processEvents()
        updates.append(1e3 * (time.perf_counter() - start))
    return {
        "paint_ms": paints,
        "dab_ms": dabs,
        "stroke_end_ms": updates,
        "paint_median_ms": statistics.median(paints),
        "dab_median_ms": statistics.median(dabs),
        "dab_p95_ms": float(np.percentile(dabs, 95)),
        "stroke_end_median_ms": statistics.median(updates),
    }


def edit_latency(n_objects: int, n_strokes: int, n_dabs: int) -> dict:
    """The three modes on one viewer with a grid of ``n_objects`` objects."""
    import napari

    from napari_cellist._widgets._live import LiveLink
    from napari_cellist.layers import labels_to_layer_tuples, set_layers

    labels = grid_labels(n_objects)
    n_side = labels.shape[0] // CELL
    viewer = napari.Viewer(show=True)
    start = time.perf_counter()
    layers = set_layers(viewer, labels_to_layer_tuples(labels, {}, "grid"))
    open_s = time.perf_counter() - start
    _process_for(0.5)
    layer = layers[0]
    layer.brush_size = 5
    rows = {"objects": n_side * n_side, "image": list(labels.shape), "open_s": open_s}
    rows["napari_alone"] = _strokes(layer, None, n_side, n_strokes, n_dabs, seed=1)
    link = LiveLink(*layers, defer_ms=150)
    rows["live_deferred"] = _strokes(layer, link, n_side, n_strokes, n_dabs, seed=2)
    link.disconnect()
    link = LiveLink(*layers, defer_ms=0)
    rows["live_per_dab"] = _strokes(layer, link, n_side, n_strokes, n_dabs, seed=3)
    link.disconnect()
    ok = set(np.unique(layer.data)) - {0} == set(layers[1].features["id"].tolist())
    rows["layers_consistent"] = bool(ok)
    viewer.close()
    return rows


def commit_stall(n_objects: int, tmp: Path, show: bool = True) -> dict:
    """Longest GUI-thread stall while the Project panel commits an image of ``n_objects``
    (``show=False``: a hidden viewer, so that no canvas is drawn: the stall without napari's
    rendering of the layers)."""
    import napari
    import tifffile
    from qtpy.QtCore import QCoreApplication, QTimer

    from napari_cellist._widgets._session import set_session
    from napari_cellist._widgets.project_panel import ProjectPanel
    from napari_cellist.session import LabellingSession

    labels = grid_labels(n_objects, cell=16, size=10)
    folder = tmp / f"grid{n_objects}"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    tifffile.imwrite(folder / "images" / "grid.tif", ((labels > 0) * 200).astype(np.uint8))
    tifffile.imwrite(folder / "masks" / "grid.tif", labels)
    viewer = napari.Viewer(show=show)
    set_session(viewer, LabellingSession(tmp / f"project{n_objects}"))
    panel = ProjectPanel(viewer)
    panel.prefetch.value = False
    panel.learning.auto.value = False  # the commit alone (bench_project_panel: with retraining)
    panel.add_paths([str(folder)])
    panel.runner.wait(600_000)
    _process_for(0.2)
    start = time.perf_counter()
    panel.next_image()  # the committed masks are shown
    open_s = time.perf_counter() - start
    _process_for(0.5)
    n = len(panel.link.index)
    panel.link.labels_layer.paint((14, 8), 1)  # one edit (grows object 1) before Commit
    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(10)
    _process_for(0.2)
    start = time.perf_counter()
    panel.commit()
    while panel.runner.busy:
        QCoreApplication.processEvents()
        time.sleep(0.001)
    commit_s = time.perf_counter() - start
    _process_for(0.2)
    timer.stop()
    kept = np.array([t for t in ticks if t >= start - 0.05])
    gaps = np.diff(kept) * 1e3
    worst = int(np.argmax(gaps))
    status = panel.row_of(panel.current.image_id)["status"]
    panel.drafts.close()
    viewer.close()
    panel.session.close()
    return {
        "objects": n,
        "viewer_shown": show,
        "image": list(labels.shape),
        "open_s": open_s,
        "commit_s": commit_s,
        "max_stall_ms": float(gaps.max()),
        "max_stall_from_s": float(kept[worst] - start),  # after commit() was called
        "p95_gap_ms": float(np.percentile(gaps, 95)),
        "ticks": int(len(gaps)),
        "status_after": status,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, nargs="*", default=[1024, 5041])
    parser.add_argument("--commit-objects", type=int, nargs="*", default=[1024, 5041, 20164])
    parser.add_argument(
        "--hidden", action="store_true", help="also measure the commit with a hidden viewer"
    )
    parser.add_argument("--strokes", type=int, default=6)
    parser.add_argument("--dabs", type=int, default=8)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    edits = [edit_latency(n, args.strokes, args.dabs) for n in args.objects]
    if edits:
        print(
            "| objects | mode | paint call (ms) | dab, paint + draw (ms) | dab p95 (ms) "
            "| stroke end: layer update + draw (ms) | dab / napari alone |"
        )
        print("|---|---|---|---|---|---|---|")
        for e in edits:
            alone = e["napari_alone"]["dab_median_ms"]
            for mode in ("napari_alone", "live_deferred", "live_per_dab"):
                r = e[mode]
                print(
                    f"| {e['objects']} | {mode.replace('_', ' ')} | {r['paint_median_ms']:.1f} | "
                    f"{r['dab_median_ms']:.1f} | {r['dab_p95_ms']:.1f} | "
                    f"{r['stroke_end_median_ms']:.1f} | {r['dab_median_ms'] / alone:.2f} |"
                )
    commits = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.commit_objects:
            commits.append(commit_stall(n, Path(tmp)))
            if args.hidden:
                commits.append(commit_stall(n, Path(tmp) / "hidden", show=False))
    if commits:
        print(
            "| objects | viewer | open (s) | commit (s) | longest stall (ms) | 95th pct gap (ms) |"
        )
        print("|---|---|---|---|---|---|")
        for c in commits:
            print(
                f"| {c['objects']} | {'shown' if c['viewer_shown'] else 'hidden'} | {c['open_s']:.2f} | {c['commit_s']:.2f} | "
                f"{c['max_stall_ms']:.0f} | {c['p95_gap_ms']:.0f} |"
            )
    result = {
        "benchmark": "live_edit",
        "machine": platform.platform(),
        "strokes": args.strokes,
        "dabs_per_stroke": args.dabs,
        "edit_latency": edits,
        "commit": commits,
    }
    path = result_path("live_edit.json")
    path.write_text(json.dumps(result, indent=2))
    print(f"written {path}")
    return result


if __name__ == "__main__":
    main()
