"""Prediction, Sync, Commit and restore run in thread workers: each action returns at once, the
viewer's event loop keeps running, and the result lands afterwards (a few hundred objects)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellist.types import Prediction, Progress


class _Stub:
    """A model whose prediction is a fixed label map."""

    def __init__(self, labels: np.ndarray) -> None:
        self.labels = labels

    def predict_iter(self, image, params=None):
        yield Progress(1, 1, "stub")
        return Prediction(self.labels.copy(), source="stub")


def _tiled(viewer) -> tuple[np.ndarray, np.ndarray]:
    """The sample image and its truth tiled 2 x 2 (ids made unique): about 500 objects."""
    image = np.asarray(viewer.layers["nuclei"].data)
    truth = np.asarray(viewer.layers["nuclei ground truth"].data).astype(np.int32)
    n = int(truth.max())
    tiles = [np.where(truth > 0, truth + k * n, 0) for k in range(4)]
    labels = np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])
    return np.tile(image, (2, 2)), labels


@pytest.fixture
def ticks():
    """Ticks of a 5 ms timer on the GUI thread (one entry per tick)."""
    from qtpy.QtCore import QTimer

    seen: list[int] = []
    timer = QTimer()
    timer.timeout.connect(lambda: seen.append(1))
    timer.start(5)
    yield seen
    timer.stop()


def test_sync_commit_and_restore_return_before_their_result_lands(
    viewer, dock, notifications, qtbot, monkeypatch, ticks
):
    monkeypatch.setenv("CELLIST_SYNC", "0")  # the user's way: napari thread workers
    image, labels = _tiled(viewer)
    n_objects = len(np.unique(labels)) - 1
    assert n_objects > 300
    viewer.add_image(image, name="big")
    base = dock(viewer, "Base model")
    base.image.value = "big"
    base._build_model = lambda: (_Stub(labels), None)

    assert base.run()
    assert "big labels" not in viewer.layers and base.runner.busy  # not landed yet
    qtbot.waitUntil(lambda: "big centres" in viewer.layers, timeout=120_000)
    assert len(viewer.layers["big polygons"].data) == n_objects
    qtbot.waitUntil(lambda: not base.runner.busy, timeout=60_000)

    annotations = dock(viewer, "Annotations")
    annotations.image.value = "big"
    shapes = viewer.layers["big polygons"]
    deleted = int(shapes.features["id"].iloc[0])
    shapes.selected_data = {0}
    shapes.remove_selected()  # a pending edit, applied by the sync
    ticks.clear()
    assert annotations.sync() is None  # started, not finished
    assert annotations.runner.busy and deleted in viewer.layers["big labels"].data
    qtbot.waitUntil(lambda: not annotations.runner.busy, timeout=120_000)
    assert deleted not in viewer.layers["big labels"].data
    assert len(viewer.layers["big polygons"].data) == n_objects - 1
    assert ticks  # the event loop kept running meanwhile

    assert annotations.commit() is None
    assert annotations.runner.busy and "Committed" not in annotations.count.value
    qtbot.waitUntil(lambda: not annotations.runner.busy, timeout=120_000)
    assert f"Committed {n_objects - 1} objects" in annotations.count.value

    for name in ("big centres", "big polygons", "big labels", "big"):
        viewer.layers.remove(name)
    viewer.add_image(image, name="big")  # opening the image again restores in a worker
    assert "big labels" not in viewer.layers
    qtbot.waitUntil(lambda: "big centres" in viewer.layers, timeout=120_000)
    restored = viewer.layers["big labels"].data
    assert len(np.unique(restored)) - 1 == n_objects - 1 and deleted not in restored
    assert notifications.errors == []


def test_restore_button_and_merge_run_in_workers(viewer, dock, notifications, qtbot, monkeypatch):
    annotations = dock(viewer, "Annotations")
    annotations.image.value = "nuclei"
    annotations.labels_choice.value = "nuclei ground truth"
    assert annotations.commit() is not None  # synchronous (CELLIST_SYNC=1): the result
    monkeypatch.setenv("CELLIST_SYNC", "0")
    assert annotations.restore() is False  # started: shown later
    assert "nuclei labels" not in viewer.layers
    qtbot.waitUntil(lambda: "nuclei centres" in viewer.layers, timeout=60_000)
    labels = viewer.layers["nuclei labels"]
    truth = viewer.layers["nuclei ground truth"].data
    assert np.array_equal(labels.data > 0, truth > 0)
    shapes = viewer.layers["nuclei polygons"]
    merged = [int(shapes.features["id"].iloc[i]) for i in (0, 1)]
    shapes.selected_data = {0, 1}
    assert annotations.merge()
    assert set(merged) <= set(np.unique(labels.data).tolist())  # not merged yet
    qtbot.waitUntil(lambda: not annotations.runner.busy, timeout=60_000)
    assert len({int(v) for v in np.unique(labels.data[np.isin(labels.data, merged)])}) == 1
    assert notifications.errors == []
