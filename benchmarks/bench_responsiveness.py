"""Viewer responsiveness: the longest GUI stall of each user action at 1k / 5k / 20k objects and
on a 4096 x 4096 image with a threshold prediction.

A 10 ms QTimer on the GUI thread of a real napari viewer records the gaps between its ticks
while an action runs (started from the widgets' public actions, as a user's click would) and
until its result is shown. The longest gap is the longest time the viewer was frozen.

Sizes: label maps of ``N`` real nuclei (the DSB2018 mask tiled, ids unique; see
``bench_outlines.tiled_labels``) over a grey image tiled from real images of the same size,
handed to the Base model widget by a stub model (so that the time is the plugin's and napari's,
not a model's); and a ``--image-size`` square image tiled from the GOWT1 images, segmented by the
threshold model. Actions, in order, on one viewer per size:

* ``prediction (new layers)``: Base model ``run()``, the three layers created;
* ``prediction (in place)``: ``run()`` again, the layers updated in place;
* ``sync``: Annotations ``sync()`` after one object's centre point was deleted;
* ``commit``: Annotations ``commit()`` (sync + the store's commit);
* ``restore``: the image opened again (its layers removed, the image re-added: the restore hook
  brings the committed annotations back);
* ``brush dab``: one ``paint`` of the Labels layer (brush size 20).

``napari set (s)`` is the GUI-thread time inside ``set_layers`` (napari taking the prebuilt
layer data: napari's own cost), ``napari longest (ms)`` its longest single call. Writes a
table and ``benchmarks/results/responsiveness.json``. Run under a display or Xvfb:

    xvfb-run -a python -m benchmarks.bench_responsiveness [--objects 1000 5000 20000]
        [--image-size 4096] [--out benchmarks/results/responsiveness.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._data import result_path, tiled_real_image
from benchmarks.bench_outlines import tiled_labels

logger = logging.getLogger(__name__)
TIMEOUT_S = 900.0


class StubModel:
    """Returns a fixed label map as its prediction (the model's own time left out)."""

    def __init__(self, labels: np.ndarray) -> None:
        from napari_cellist.geometry import bounding_boxes
        from napari_cellist.types import ObjectMeta

        self.labels = labels
        self.objects = {i: ObjectMeta(i, box=b) for i, b in bounding_boxes(labels).items()}

    def predict_iter(self, image: np.ndarray, params: Any = None) -> Generator[Any, None, Any]:
        from napari_cellist.types import Prediction, Progress

        yield Progress(1, 1, "stub prediction")
        return Prediction(self.labels.copy(), self.objects, source="stub")


class SetLayersClock:
    """Times every ``set_layers`` call (napari taking layer data, on the GUI thread), and each
    layer type in it."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self.by_type: dict[str, float] = {}

    def clear(self) -> None:
        self.calls.clear()
        self.by_type = {}

    def install(self) -> None:
        from napari_cellist import layers
        from napari_cellist._widgets import _common, base_model

        original = layers.set_layers

        def timed(viewer: Any, tuples: Any) -> list:
            start = time.perf_counter()
            out = []
            for one in tuples:  # set_layers handles the layers one by one anyway
                begin = time.perf_counter()
                out += original(viewer, [one])
                kind = one[2]
                self.by_type[kind] = self.by_type.get(kind, 0.0) + time.perf_counter() - begin
            self.calls.append(time.perf_counter() - start)
            return out

        _common.set_layers = timed
        base_model.set_layers = timed


def measure(action: Callable[[], Any], done: Callable[[], bool], clock: SetLayersClock) -> dict:
    """Run ``action`` on the GUI thread with a 10 ms timer ticking; wait until ``done()``."""
    from qtpy.QtCore import QCoreApplication, QTimer

    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(10)
    for _ in range(20):
        QCoreApplication.processEvents()
        time.sleep(0.005)
    clock.clear()
    start = time.perf_counter()
    action()
    started = time.perf_counter() - start  # the action's own time on the GUI thread
    while not done():
        QCoreApplication.processEvents()
        if time.perf_counter() - start > TIMEOUT_S:
            raise TimeoutError("the action did not finish")
    elapsed = time.perf_counter() - start
    end = time.perf_counter() + 0.3
    while time.perf_counter() < end:  # the last redraw happens after the result is set
        QCoreApplication.processEvents()
    timer.stop()
    marks = [start] + [t for t in ticks if t >= start]
    gaps = np.diff(marks) * 1000 if len(marks) > 1 else np.array([0.0])
    return {
        "total_s": elapsed,
        "start_ms": started * 1000,
        "max_stall_ms": float(gaps.max()),
        "p95_gap_ms": float(np.percentile(gaps, 95)),
        "napari_set_s": float(sum(clock.calls)),
        "napari_longest_ms": float(max(clock.calls, default=0.0) * 1000),
        "napari_set_by_layer_s": dict(clock.by_type),
    }


def run_size(label: str, image: np.ndarray, labels: np.ndarray | None, project: Path) -> list:
    """Every action on one viewer; ``labels`` None: the threshold model predicts."""
    import napari

    from napari_cellist._widgets import AnnotationsWidget, BaseModelWidget
    from napari_cellist._widgets._session import set_session
    from napari_cellist.session import LabellingSession

    clock = SetLayersClock()
    clock.install()
    viewer = napari.Viewer(show=True)
    set_session(viewer, LabellingSession(project))
    viewer.add_image(image, name="image")
    base = BaseModelWidget(viewer)
    annotations = AnnotationsWidget(viewer)
    base.image.value = "image"
    base.confirm = lambda _question: True
    if labels is not None:
        base._build_model = lambda: (StubModel(labels), None)
    rows = []

    def record(operation: str, action: Callable[[], Any], done: Callable[[], bool]) -> None:
        row = {"size": label, "operation": operation, **measure(action, done, clock)}
        labels_layer = viewer.layers["image labels"] if "image labels" in viewer.layers else None
        row["objects"] = int(len(np.unique(labels_layer.data)) - 1) if labels_layer else 0
        logger.info("%s", row)
        print(
            f"| {label} | {operation} | {row['objects']} | {row['total_s']:.2f} | "
            f"{row['max_stall_ms']:.0f} | {row['napari_set_s']:.2f} | "
            f"{row['napari_longest_ms']:.0f} | "
            + ", ".join(f"{k} {v:.2f}" for k, v in row["napari_set_by_layer_s"].items())
            + " |",
            flush=True,
        )
        rows.append(row)

    idle = lambda: not base.runner.busy  # noqa: E731
    record("prediction (new layers)", base.run, idle)
    record("prediction (in place)", base.run, idle)
    annotations.image.value = "image"
    annotations.labels_choice.follow("image")
    centres = viewer.layers["image centres"]
    centres.selected_data = {0}
    centres.remove_selected()  # one object deleted (its centre point), applied by the sync
    quiet = lambda: not annotations.runner.busy  # noqa: E731
    record("sync", annotations.sync, quiet)
    record("commit", annotations.commit, quiet)
    for name in ("image centres", "image polygons", "image labels", "image"):
        viewer.layers.remove(name)
    record(
        "restore",
        lambda: viewer.add_image(image, name="image"),
        lambda: "image centres" in viewer.layers,
    )
    layer = viewer.layers["image labels"]
    layer.brush_size = 20
    centre = (layer.data.shape[0] // 2, layer.data.shape[1] // 2)
    record("brush dab", lambda: layer.paint(centre, int(layer.data.max()) + 1), lambda: True)
    viewer.close()
    return rows


def main(argv: list[str] | None = None) -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, nargs="*", default=[1000, 5000, 20000])
    parser.add_argument("--image-size", type=int, default=4096, help="0: no threshold image")
    parser.add_argument("--out", type=Path, default=result_path("responsiveness.json"))
    args = parser.parse_args(argv)
    os.environ["CELLIST_SYNC"] = "0"
    print(
        "| size | operation | objects | total (s) | longest stall (ms) | napari set (s) "
        "| napari longest (ms) | napari set per layer (s) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.objects:
            labels = tiled_labels(n)
            image = tiled_real_image(labels.shape[0])
            rows += run_size(f"{n} objects", image, labels, Path(tmp) / f"objects{n}")
        if args.image_size:
            size = args.image_size
            image = tiled_real_image(size)
            rows += run_size(f"{size}x{size} threshold", image, None, Path(tmp) / "image")
    import napari

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "command": "xvfb-run -a python -m benchmarks.bench_responsiveness "
                + " ".join(argv or []),
                "napari": napari.__version__,
                "timer_ms": 10,
                "rows": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
