"""Target model widget: train AIR on committed + open images, predict with the new version."""

import numpy as np

from napari_cellist._widgets import AnnotationsWidget, TargetModelWidget
from napari_cellist._widgets._session import set_session
from napari_cellist.session import LabellingSession


def test_train_air_version_and_predict_with_reconstruction(make_napari_viewer, tmp_path, monkeypatch):
    monkeypatch.setenv("CELLIST_SYNC", "1")
    errors = []
    for module in ("base_model", "finetune", "_runner"):
        monkeypatch.setattr(f"napari_cellist._widgets.{module}.notify_error", errors.append, raising=False)
    viewer = make_napari_viewer()
    set_session(viewer, LabellingSession(tmp_path / "project"))
    viewer.open_sample("napari-cellist", "nuclei_with_truth")
    truth = np.asarray(viewer.layers["nuclei ground truth"].data)
    viewer.add_labels(truth[:256, :256].astype(np.int32), name="nuclei labels")
    viewer.layers["nuclei"].data = np.asarray(viewer.layers["nuclei"].data)[:256, :256]
    annotations = AnnotationsWidget(viewer)
    annotations.image.value = "nuclei"
    assert annotations.commit() is not None
    viewer.add_image(np.asarray(viewer.layers["nuclei"].data)[::-1].copy(), name="unlabelled")
    widget = TargetModelWidget(viewer)
    assert widget.train.model.value == "air"
    widget.train.params_form.controls["steps"].value = 3
    widget.train._on_train()
    widget.train.runner.wait(300_000)
    assert errors == [], errors
    assert widget.train.result.value.startswith("v1")
    record = widget.train.session.store.model_versions("air")[-1]
    assert len(record.data_used) == 2  # the committed image and the open unlabelled one
    assert widget.predict.version.value.startswith("v1")
    widget.predict.image.value = "nuclei"
    widget.predict._on_run()
    widget.predict.runner.wait(300_000)
    assert errors == [], errors
    assert widget.predict.last_prediction.source == "air"
    assert "nuclei reconstruction" in viewer.layers
