"""layers.paint_labels: a Labels layer updated as one undoable edit (napari layer models only)."""

import numpy as np
from napari.layers import Labels

from napari_cellist import layers


def test_paint_labels_is_one_undoable_edit():
    before = np.zeros((32, 32), np.int32)
    before[2:8, 2:8] = 1
    layer = Labels(before.copy())
    after = before.copy()
    after[2:8, 2:8] = 0
    after[20:30, 20:30] = 2
    assert layers.paint_labels(layer, after) == 36 + 100
    assert np.array_equal(layer.data, after)
    layer.undo()
    assert np.array_equal(layer.data, before)
    layer.redo()
    assert np.array_equal(layer.data, after)


def test_large_changes_replace_the_data(monkeypatch):
    monkeypatch.setattr(layers, "MAX_UNDO_PIXELS", 10)
    layer = Labels(np.zeros((16, 16), np.int32))
    data = layer.data
    layers.paint_labels(layer, np.ones((16, 16), np.int32))
    assert layer.data is not data and layer.data.all()
    layers.paint_labels(layer, np.zeros((8, 8), np.int32))  # another shape: replaced as well
    assert layer.data.shape == (8, 8)
