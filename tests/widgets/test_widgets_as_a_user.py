"""Issue 15, point by point: the dock widgets opened from the Plugins menu and driven as a
biologist drives them (forms, edits, layers, versions, errors, labels layers, reopening)."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

from napari_cellist._widgets._params import ParamsForm
from napari_cellist._widgets._session import set_session
from napari_cellist.images import prepare_grey
from napari_cellist.models import REGISTRY, build_model, get_entry, params_class, train_params_class
from napari_cellist.session import LabellingSession

TITLES = ("Base model", "Annotations", "Fine-tune", "Target model", "Segment Anything")


# -- 1. forms: every number shown is the number the model gets; choices are not free text ---------
def _probe(control, default: float) -> tuple[object, float]:
    """A value a user could enter in a float control, and the float it must deliver."""
    if isinstance(control.value, str):  # a rate in scientific notation
        return "3.7e-07", 3.7e-07
    low, high = control.min, control.max
    value = (
        round(default + 0.1234, 4) if high - low > 100 else round(low + 0.3731 * (high - low), 4)
    )
    return value, value


@pytest.mark.parametrize("name", list(REGISTRY))
def test_forms_show_and_deliver_every_number(qtbot, name):
    kinds = [params_class(name)]
    if get_entry(name).trainable:
        kinds.append(train_params_class(name))
    for params_type in kinds:
        form = ParamsForm(params_type)
        defaults = params_type()
        assert form.value() == defaults  # 0.002 stays 0.002, 1e-5 stays 1e-5
        expected = {}
        for f in fields(params_type):
            control, default = form.controls[f.name], getattr(defaults, f.name)
            if isinstance(default, tuple) and all(isinstance(v, (str, bool)) for v in default):
                assert isinstance(control.value, (list, tuple)), f"{f.name} is typed as free text"
            if "choices" in f.metadata or "suggestions" in f.metadata:
                assert hasattr(control, "choices"), f"{f.name} is not a dropdown"
            if isinstance(default, float) and not isinstance(default, bool):
                assert float(control.value) == default, (
                    f"{f.name} shows {control.value}, not {default}"
                )
                control.value, expected[f.name] = _probe(control, default)
        delivered = form.value()
        for field_name, value in expected.items():
            assert getattr(delivered, field_name) == value, field_name


def test_rates_show_as_typed(qtbot):
    air = ParamsForm(train_params_class("air")).controls
    cellpose = ParamsForm(train_params_class("cellpose")).controls
    assert air["learning_rate"].value == "0.002"
    assert cellpose["learning_rate"].value == "0.005" and cellpose["weight_decay"].value == "1e-05"
    threshold = ParamsForm(train_params_class("threshold"))
    assert list(threshold.controls["methods"].value) == ["otsu", "li", "triangle"]
    threshold.controls["methods"].value = ["li"]
    threshold.controls["background"].value = [True]
    fitted = threshold.value()
    assert fitted.methods == ("li",) and fitted.background == (True,)


def test_one_control_per_setting(viewer, dock):
    base = dock(viewer, "Base model")
    base.model.value = "sam"
    assert "checkpoint" not in base.params_form.controls  # the widget's "weights" sets it
    assert base.params_form.value().checkpoint == ""  # the weights file goes to build_model


# -- 1, 5. docked: labels readable, the dock scrolls, errors never widen it -------------------------
def _cut_labels(widget) -> list[str]:
    from qtpy.QtWidgets import QLabel

    cut = []
    for label in widget.native.findChildren(QLabel):
        text = label.text()
        if not label.isVisible() or label.wordWrap() or not text or "<" in text:
            continue
        if label.width() < label.fontMetrics().horizontalAdvance(text):
            cut.append(text)
    return cut


def test_docked_widgets_labels_readable_and_docks_scroll(make_napari_viewer, dock, qtbot):
    from qtpy.QtWidgets import QScrollArea

    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-cellist", "nuclei")
    for title in TITLES:
        widget = dock(viewer, title)
        if hasattr(widget, "params_form"):
            widget.params_form.show_advanced.value = True
        qtbot.wait(50)
        assert isinstance(widget.native, QScrollArea), title
        assert _cut_labels(widget) == [], title


def test_a_failure_is_one_notification_that_never_widens_the_dock(
    make_napari_viewer, dock, notifications, qtbot, tmp_path, monkeypatch
):
    monkeypatch.setenv("CELLIST_SYNC", "0")  # napari's worker, as in the viewer
    monkeypatch.setenv("CELLPOSE_LOCAL_MODELS_PATH", str(tmp_path / "no-weights"))
    monkeypatch.setenv("CELLIST_OFFLINE", "1")  # no download: the weights stay missing
    viewer = make_napari_viewer(show=True)
    set_session(viewer, LabellingSession(tmp_path / "project"))
    viewer.open_sample("napari-cellist", "nuclei")
    base = dock(viewer, "Base model")
    base.model.value = "cellpose"
    qtbot.wait(50)
    width = base.native.width()
    assert base.run()
    qtbot.waitUntil(lambda: not base.runner.busy, timeout=60_000)
    qtbot.wait(50)
    assert len(notifications.errors) == 1 and "cyto3" in notifications.errors[0]
    assert base.native.width() == width  # the long message wraps; the dock keeps its width
    assert base.runner.bar.value == 0 and base.runner.status.value.startswith("failed")
    assert "CELLPOSE_LOCAL_MODELS_PATH" in base.runner.status.tooltip  # the details on demand
    assert not base.choose_weights_button.native.isHidden()
    base.choose_weights(str(tmp_path / "my-model"))  # what "Choose weights file..." does
    assert (
        str(base.checkpoint.value).endswith("my-model")
        and base.choose_weights_button.native.isHidden()
    )


# -- 2, 3. edits are never dropped; layers are updated in place, undoable ---------------------------
def _run(viewer, dock, **form):
    base = dock(viewer, "Base model")
    base.image.value = "nuclei"
    for key, value in form.items():
        base.params_form.controls[key].value = value
    asked = []
    base.confirm = lambda question: asked.append(question) or True
    base.run()
    return base, asked


def test_layers_are_updated_in_place_keeping_settings_undo_and_selection(
    viewer, dock, notifications
):
    base, _ = _run(viewer, dock)
    labels = viewer.layers["nuclei labels"]
    shapes = viewer.layers["nuclei polygons"]
    labels.opacity, labels.brush_size = 0.8, 7
    first = labels.data.copy()
    viewer.layers.selection.active = viewer.layers["nuclei"]
    base.params_form.controls["diameter"].value = "14"
    base.run()
    assert viewer.layers["nuclei labels"] is labels and viewer.layers["nuclei polygons"] is shapes
    assert labels.opacity == 0.8 and labels.brush_size == 7
    assert np.allclose(shapes.edge_color[:, :3], [1, 1, 0])  # the default class stays yellow
    assert viewer.layers.selection.active is viewer.layers["nuclei"]
    assert not np.array_equal(labels.data, first)
    labels.undo()  # napari's Ctrl+Z brings the previous prediction back
    assert np.array_equal(labels.data, first) and notifications.errors == []


def test_pending_polygon_edits_are_applied_before_merge_and_delete(viewer, dock, notifications):
    _run(viewer, dock)
    annotations = dock(viewer, "Annotations")
    annotations.image.value = "nuclei"
    shapes = viewer.layers["nuclei polygons"]
    labels = viewer.layers["nuclei labels"]
    deleted = int(shapes.features["id"].iloc[0])
    shapes.selected_data = {0}
    shapes.remove_selected()  # not synced
    moved = int(shapes.features["id"].iloc[0])
    before = np.argwhere(labels.data == moved).mean(axis=0)
    data = list(shapes.data)
    data[0] = data[0] + np.array([4.0, 0.0])  # moved by 4 rows, not synced
    shapes.data = data
    merged = [int(shapes.features["id"].iloc[i]) for i in (1, 2)]
    shapes.selected_data = {1, 2}
    assert annotations.merge()
    assert deleted not in labels.data  # the deleted polygon does not come back
    assert np.argwhere(labels.data == moved).mean(axis=0)[0] == pytest.approx(before[0] + 4, abs=1)
    assert len({int(v) for v in np.unique(labels.data[np.isin(labels.data, merged)])}) == 1
    labels.undo()  # the merge is one undoable edit
    assert set(merged) <= set(np.unique(labels.data).tolist())
    labels.redo()
    shapes = viewer.layers["nuclei polygons"]
    gone = int(shapes.features["id"].iloc[3])
    shapes.selected_data = {3}
    assert annotations.delete()
    assert gone not in labels.data and deleted not in labels.data
    result = annotations.commit()
    assert result.corrections.summary()["deleted"] >= 2 and notifications.errors == []


def test_a_prediction_over_edited_or_committed_annotations_asks_first(viewer, dock, notifications):
    base, asked = _run(viewer, dock)
    assert asked == []  # nothing to lose the first time
    labels = viewer.layers["nuclei labels"]
    erased = int(labels.data.max())
    painted = labels.data.copy()
    painted[painted == erased] = 0
    labels.data = painted
    base.confirm = lambda question: asked.append(question) or False
    assert not base.run()
    assert "edits" in asked[-1] and erased not in labels.data  # the edit is kept
    annotations = dock(viewer, "Annotations")
    annotations.image.value = "nuclei"
    annotations.commit()
    base.confirm = lambda question: asked.append(question) or True
    assert base.run()
    assert "committed" in asked[-1] and erased in labels.data


# -- 4. versions: rebuilt from the store, kept, announced; the form shows a version's parameters --
def test_version_list_survives_layers_and_docking_and_shows_parameters(viewer, dock, notifications):
    base = dock(viewer, "Base model")
    viewer.layers["nuclei"].metadata["unused"] = True
    viewer.add_labels(
        np.asarray(viewer.layers["nuclei ground truth"].data, np.int32), name="nuclei labels"
    )
    annotations = dock(viewer, "Annotations")
    annotations.image.value = "nuclei"
    annotations.commit()
    finetune = dock(viewer, "Fine-tune")
    finetune.params_form.controls["max_candidates"].value = 4
    finetune.train()
    record = base.session.store.model_versions("threshold")[-1]
    assert base.version.value.startswith(f"v{record.id}")
    diameter = base.params_form.controls["diameter"].value
    assert float(diameter) == pytest.approx(record.params["diameter"])
    viewer.add_image(np.zeros((32, 32)), name="another")  # napari resets every dock's choices
    dock(viewer, "Segment Anything")
    assert base.version.value.startswith(f"v{record.id}")
    assert finetune.start_from.choices[-1] == f"v{record.id}"
    base.version.value = "default parameters"
    assert base.params_form.controls["diameter"].value == ""
    base.version.value = base.version.choices[-1]
    base.image.value = "nuclei"
    base.confirm = lambda question: True
    base.run()
    assert base.last_prediction.model_version == record.id
    assert any(
        f"Base model: Run now predicts with threshold v{record.id}" in m
        for m in notifications.infos
    )


# -- 6. any Labels layer, reopening, channels -----------------------------------------------------
def test_any_labels_layer_of_the_image_can_be_committed(viewer, dock, notifications):
    annotations = dock(viewer, "Annotations")
    annotations.image.value = "nuclei"
    assert annotations.labels_choice.value is None  # no labels of its own yet
    assert "nuclei ground truth" in annotations.labels_choice.choices
    annotations.labels_choice.value = "nuclei ground truth"
    result = annotations.commit()
    assert result.n_objects == 125 and notifications.errors == []


def test_committed_annotations_return_whichever_widget_is_docked(
    viewer, dock, notifications, make_napari_viewer, tmp_path
):
    annotations = dock(viewer, "Annotations")
    annotations.image.value = "nuclei"
    annotations.labels_choice.value = "nuclei ground truth"
    annotations.commit()
    second = make_napari_viewer()
    set_session(second, LabellingSession(tmp_path / "project"))
    dock(second, "Fine-tune")  # no Annotations widget in this window
    second.open_sample("napari-cellist", "nuclei")
    truth = viewer.layers["nuclei ground truth"].data
    restored = second.layers["nuclei labels"].data
    assert len(np.unique(restored)) == len(np.unique(truth))
    assert any("Loaded the committed annotations of nuclei" in m for m in notifications.infos)


def test_channel_is_a_dropdown_of_the_image_colours(viewer, dock, notifications):
    grey = np.asarray(viewer.layers["nuclei"].data)
    colour = np.stack([np.zeros_like(grey), grey, grey[::-1]], axis=-1)
    viewer.add_image(colour, name="colour", rgb=True)
    base = dock(viewer, "Base model")
    base.image.value = "colour"
    assert list(base.channel.choices) == ["mean of the colours", "red (0)", "green (1)", "blue (2)"]
    base.channel.value = "green (1)"
    base.run()
    expected = build_model("threshold").predict(prepare_grey(colour, rgb=True, channel=1))
    assert (
        np.array_equal(base.last_prediction.labels, expected.labels) and notifications.errors == []
    )


# -- public actions, listeners -------------------------------------------------------------------
def _ours(emitter) -> int:
    """Callbacks of an emitter, without napari's own ``reset_choices`` of docked widgets (held
    weakly, they go with the widget)."""
    return sum(
        1 for cb in emitter.callbacks if not (isinstance(cb, tuple) and cb[1] == "reset_choices")
    )


def test_closing_a_widget_disconnects_its_listeners(viewer, dock):
    dock(viewer, "Base model")  # installs the viewer's restore hook once
    inserted = viewer.layers.events.inserted
    before = _ours(inserted)
    annotations = dock(viewer, "Annotations")
    finetune = dock(viewer, "Fine-tune")
    listeners = len(finetune.session.version_listeners)
    assert _ours(inserted) > before
    viewer.window.remove_dock_widget(annotations.native)
    viewer.window.remove_dock_widget(finetune.native)
    assert _ours(inserted) == before
    assert len(finetune.session.version_listeners) == listeners - 1


SCRIPT = """
import os, sys
import napari
from qtpy.QtCore import QCoreApplication
viewer = napari.Viewer(show=False)
viewer.open_sample("napari-cellist", "nuclei")
_, base = viewer.window.add_plugin_dock_widget("napari-cellist", "Base model")
base.model.value = "cellpose"
base.run()
base.runner.wait(60_000)
for _ in range(20):
    QCoreApplication.processEvents()
print("status:", base.runner.status.value[:40])
viewer.close()
"""


def test_a_worker_error_outside_napari_run_does_not_abort_the_process(tmp_path):
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "CELLIST_SYNC": "0",
        "CELLPOSE_LOCAL_MODELS_PATH": str(tmp_path),
        "QT_QPA_PLATFORM": "offscreen",
        "CELLIST_OFFLINE": "1",
    }
    env["CELLIST_PROJECT"] = str(tmp_path / "project")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "status: failed: " in done.stdout  # reported in the widget, the process lives on
