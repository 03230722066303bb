"""Device dropdowns and SAM clicks off the GUI thread, on a real napari viewer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_cellist._widgets._session import set_session
from napari_cellist.models.sam import architecture, weights
from napari_cellist.session import LabellingSession


@pytest.fixture
def cells():
    grey = np.full((96, 128), 20, np.uint16)
    grey[20:50, 70:110] = 900
    grey[60:90, 10:40] = 600
    return grey


def _sam_widget(make_napari_viewer, tmp_path, monkeypatch, cells, dock, sync: bool):
    monkeypatch.setenv("CELLIST_SYNC", "1" if sync else "0")
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "cache"))
    checkpoint = architecture.write_random_checkpoint(tmp_path / "tiny.pth")
    viewer = make_napari_viewer()
    set_session(viewer, LabellingSession(tmp_path / "project"))
    viewer.add_image(cells, name="cells")
    widget = dock(viewer, "Segment Anything")
    widget.image.value = "cells"
    return viewer, widget, checkpoint


def test_sam_device_dropdown_reaches_the_model(
    make_napari_viewer, tmp_path, monkeypatch, cells, dock, notifications
):
    viewer, widget, checkpoint = _sam_widget(
        make_napari_viewer, tmp_path, monkeypatch, cells, dock, sync=True
    )
    assert list(widget.device.choices) == ["auto", "cuda", "mps", "cpu"]
    assert widget.device.value == "auto"
    widget.choose_weights(str(checkpoint))
    assert widget._embedded_for == ("cells", 0)
    assert widget._params().device == "auto"
    assert next(widget.segmenter.sam.parameters()).device == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    notifications.clear()
    widget.device.value = "cuda"  # not on this computer: one clear message, nothing embedded
    assert widget._embedded_for is None
    assert len(notifications.errors) == 1 and "'cuda'" in notifications.errors[0]
    widget.device.value = "cpu"
    assert widget._embedded_for == ("cells", 0)


def test_sam_clicks_are_decoded_off_the_gui_thread_latest_wins(
    make_napari_viewer, tmp_path, monkeypatch, cells, dock, notifications, qtbot
):
    import threading

    viewer, widget, checkpoint = _sam_widget(
        make_napari_viewer, tmp_path, monkeypatch, cells, dock, sync=False
    )
    widget.choose_weights(str(checkpoint))
    qtbot.waitUntil(lambda: widget._embedded_for == ("cells", 0), timeout=60_000)
    threads = []
    decode = widget._clicks._decode
    gate = threading.Event()

    def slow_decode(request):
        threads.append(threading.current_thread().name)
        gate.wait(10)
        return decode(request)

    widget._clicks._decode = slow_decode
    points = viewer.layers["cells sam points"]
    for point in ([30, 90], [35, 92], [40, 95], [45, 98]):
        points.add(point)  # returns at once: nothing decoded on the GUI thread
    assert widget.last_result is None
    gate.set()
    qtbot.waitUntil(lambda: widget._clicks.wait_idle(0) and widget.last_result is not None)
    assert set(threads) == {"sam-clicks"}
    assert len(threads) < 4 and widget._clicks.dropped >= 1  # older pending clicks dropped
    preview = viewer.layers["cells sam preview"]
    assert np.array_equal(preview.data > 0, widget.last_result.mask)
    assert notifications.errors == []


def test_cellpose_form_has_a_device_dropdown(viewer, dock):
    base = dock(viewer, "Base model")
    base.model.value = "cellpose"
    control = base.params_form.controls["device"]  # built from CellposeParams' choices
    assert list(control.choices) == ["auto", "cuda", "mps", "cpu"] and control.value == "auto"


def test_air_form_has_a_device_dropdown(viewer, dock):
    predictor = dock(viewer, "Target model").predictor
    assert predictor.model.value == "air"
    control = predictor.params_form.controls["device"]  # built from AirParams' choices
    assert list(control.choices) == ["auto", "cuda", "mps", "cpu"] and control.value == "auto"
    control.value = "cpu"
    assert predictor.params_form.value().device == "cpu"
