"""The whole labelling loop on a real napari viewer: predict, edit, sync, commit, reopen, fit.

The widgets are opened from the Plugins menu (``dock``) and driven through their public actions.
"""

import numpy as np

from napari_cellist._widgets._session import set_session
from napari_cellist.layers import points_from_layer
from napari_cellist.metrics import score_image
from napari_cellist.session import LabellingSession


def _run_base(viewer, dock):
    widget = dock(viewer, "Base model")
    widget.image.value = "nuclei"
    assert widget.run()
    widget.runner.wait()
    return widget


def _annotations(viewer, dock):
    widget = dock(viewer, "Annotations")
    widget.image.value = "nuclei"
    return widget


def test_base_model_fills_three_consistent_layers(viewer, dock, notifications):
    widget = _run_base(viewer, dock)
    labels = viewer.layers["nuclei labels"].data
    shapes = viewer.layers["nuclei polygons"]
    points = viewer.layers["nuclei centres"]
    n = len(np.unique(labels)) - 1
    assert n > 80 and len(shapes.data) == n and len(points.data) == n
    assert set(shapes.features.columns) >= {"id", "class", "score", "source"}
    assert set(shapes.features["source"]) == {"threshold"}
    assert notifications.errors == []
    annotations = _annotations(viewer, dock)
    annotations.sync()  # nothing edited: nothing changes
    assert np.array_equal(viewer.layers["nuclei labels"].data, labels)
    widget.run()  # re-running updates the layers in place
    assert sum(layer.name.startswith("nuclei labels") for layer in viewer.layers) == 1


def test_worker_path_keeps_viewer_alive(viewer, dock, monkeypatch):
    monkeypatch.setenv("CELLIST_SYNC", "0")
    widget = dock(viewer, "Base model")
    widget.image.value = "nuclei"
    widget.run()
    assert widget.runner.busy  # running in a thread, the call returned at once
    widget.runner.wait()
    assert "nuclei labels" in viewer.layers and widget.runner.bar.value == 100


def test_edit_polygons_and_labels_then_commit_and_reopen(
    viewer, dock, notifications, make_napari_viewer, tmp_path
):
    _run_base(viewer, dock)
    annotations = _annotations(viewer, dock)
    shapes = viewer.layers["nuclei polygons"]
    labels_layer = viewer.layers["nuclei labels"]
    ids = list(shapes.features["id"])
    # several polygons selected at once and deleted, one moved by 3 px
    shapes.selected_data = {0, 1}
    shapes.remove_selected()
    moved_id = int(shapes.features["id"].iloc[0])
    data = list(shapes.data)
    data[0] = data[0] + np.array([3.0, 0.0])
    shapes.data = data
    # paint: erase one object in the Labels layer
    erased = ids[5]
    painted = labels_layer.data.copy()
    painted[painted == erased] = 0
    labels_layer.data = painted
    result = annotations.commit()
    assert notifications.errors == [] and result is not None
    after = viewer.layers["nuclei labels"].data
    assert not np.isin([ids[0], ids[1], erased], after).any()
    assert len(viewer.layers["nuclei polygons"].data) == len(np.unique(after)) - 1
    assert (
        result.corrections.summary()["deleted"] >= 3
        and result.corrections.summary()["modified"] >= 1
    )
    assert moved_id in after
    # a new viewer on the same project gets the committed annotations back
    second = make_napari_viewer()
    set_session(second, LabellingSession(tmp_path / "project"))
    reopened = dock(second, "Annotations")
    second.open_sample("napari-cellist", "nuclei")  # opening the image brings its annotations back
    assert np.array_equal(second.layers["nuclei labels"].data, after)
    assert reopened.restore()


def test_set_class_merge_and_delete_selected(viewer, dock, notifications):
    _run_base(viewer, dock)
    annotations = _annotations(viewer, dock)
    shapes = viewer.layers["nuclei polygons"]
    n = len(shapes.data)
    shapes.selected_data = {0, 1}
    annotations.class_name.value = "mitotic"
    assert annotations.set_class()
    assert list(shapes.features["class"][:2]) == ["mitotic", "mitotic"]
    assert "mitotic: 2" in annotations.count.value
    # polygons are coloured by class
    colours = shapes.edge_color
    assert np.allclose(colours[0], colours[1]) and not np.allclose(colours[0], colours[2])
    shapes.selected_data = {2, 3}
    assert annotations.merge()
    assert len(viewer.layers["nuclei polygons"].data) in (
        n - 1,
        n,
    )  # merged parts may stay two outlines
    assert len(np.unique(viewer.layers["nuclei labels"].data)) - 1 == n - 1
    shapes = viewer.layers["nuclei polygons"]
    shapes.selected_data = {0}
    assert annotations.delete()
    assert len(np.unique(viewer.layers["nuclei labels"].data)) - 1 == n - 2
    assert notifications.errors == []


def test_fit_on_commit_then_predict_with_new_version(viewer, dock, notifications):
    base = _run_base(viewer, dock)
    truth = viewer.layers["nuclei ground truth"].data
    first = score_image(truth, base.last_prediction.labels).ap50
    viewer.layers["nuclei labels"].data = truth.astype(np.int32)  # the annotator's corrections
    annotations = _annotations(viewer, dock)
    assert annotations.commit().n_objects == 125
    finetune = dock(viewer, "Fine-tune")
    finetune.params_form.controls["max_candidates"].value = 6
    assert finetune.train()
    finetune.runner.wait()
    assert notifications.errors == []
    assert finetune.result.value.startswith("Saved threshold v1")
    assert len(finetune.plot.steps) == 6
    assert finetune.params_form.controls["max_candidates"].value == 6  # the form is not reset
    assert base.version.value.startswith("v1")  # the Base model widget switched to the new version
    assert any(
        m.startswith("Base model: Run now predicts with threshold v1") for m in notifications.infos
    )
    base.confirm = lambda question: True  # the committed annotations are replaced
    base.run()
    assert base.last_prediction.model_version == 1
    assert score_image(truth, base.last_prediction.labels).ap50 >= first


def test_stop_keeps_the_best_so_far(viewer, dock, notifications, monkeypatch):
    _run_base(viewer, dock)
    _annotations(viewer, dock).commit()
    monkeypatch.setenv("CELLIST_SYNC", "0")
    finetune = dock(viewer, "Fine-tune")
    finetune.train()
    finetune.runner.stop()
    finetune.runner.wait()
    versions = finetune.session.store.model_versions("threshold")
    assert len(versions) == 1 and versions[0].metrics.get("stopped") == 1.0


def test_bad_input_is_a_notification_not_a_crash(viewer, dock, notifications, tmp_path):
    viewer.add_image(np.zeros((2, 3, 4, 16, 16)), name="hyper")
    widget = dock(viewer, "Base model")
    widget.image.value = "hyper"
    assert not widget.run()
    assert notifications.errors and "2D (Y, X) or 3D" in notifications.errors[-1]
    viewer.add_image(np.full((32, 32), np.nan), name="nan")
    widget.image.value = "nan"
    widget.run()
    assert "finite" in notifications.errors[-1]
    empty = dock(viewer, "Annotations")
    empty.image.value = "nan"
    assert empty.commit() is None and "no labels" in notifications.errors[-1]


def test_unwritable_project_keeps_layers(viewer, dock, notifications, tmp_path):
    _run_base(viewer, dock)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    annotations = _annotations(viewer, dock)
    annotations.session.open_project(blocker / "project")
    before = viewer.layers["nuclei labels"].data.copy()
    assert annotations.commit() is None
    assert notifications.errors and "Nothing was committed" in notifications.errors[-1]
    assert np.array_equal(viewer.layers["nuclei labels"].data, before)


def test_points_delete_objects_and_extra_points_are_committed(
    viewer, dock, notifications, make_napari_viewer, tmp_path
):
    _run_base(viewer, dock)
    annotations = _annotations(viewer, dock)
    centres = viewer.layers["nuclei centres"]
    removed = int(centres.features["id"].iloc[0])
    n = len(centres.data)
    centres.selected_data = {0}
    centres.remove_selected()  # deleting a centre deletes its object
    centres.add(np.array([[5.0, 5.0], [500.0, 7.0]]))  # two marks without a mask (id 0)
    assert list(points_from_layer(centres)[0][-2:]) == [0, 0]  # napari copies the selected id
    result = annotations.commit()
    assert notifications.errors == [] and result.n_objects == n - 1
    assert removed not in viewer.layers["nuclei labels"].data
    assert len(viewer.layers["nuclei centres"].data) == n + 1
    second = make_napari_viewer()
    set_session(second, LabellingSession(tmp_path / "project"))
    second.open_sample("napari-cellist", "nuclei")
    reopened = dock(second, "Annotations")
    reopened.image.value = "nuclei"
    assert reopened.restore()
    restored = second.layers["nuclei centres"]
    ids, coordinates = points_from_layer(restored)
    marks = coordinates[ids == 0]
    np.testing.assert_allclose(marks, [[5.0, 5.0], [500.0, 7.0]])
    samples = reopened.session.training_samples()
    assert samples[0].points is not None and len(samples[0].points) == 2


def test_an_empty_prediction_gives_empty_layers(viewer, dock, notifications):
    viewer.add_image(np.full((64, 64), 3.0), name="blank")
    widget = dock(viewer, "Base model")
    widget.image.value = "blank"
    widget.run()
    assert notifications.errors == [] and widget.last_prediction.count == 0
    assert len(viewer.layers["blank centres"].data) == 0
    annotations = dock(viewer, "Annotations")
    annotations.image.value = "blank"
    assert annotations.commit().n_objects == 0
