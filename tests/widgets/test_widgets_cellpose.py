"""Fine-tune widget with Cellpose: train from scratch on a commit, then predict with the version."""

import numpy as np

from napari_cellist._widgets import AnnotationsWidget, BaseModelWidget, FineTuneWidget
from napari_cellist._widgets._session import set_session
from napari_cellist.session import LabellingSession


def test_cellpose_fine_tune_creates_a_version_the_base_model_uses(make_napari_viewer, tmp_path, monkeypatch):
    monkeypatch.setenv("CELLIST_SYNC", "1")
    monkeypatch.setenv("CELLPOSE_LOCAL_MODELS_PATH", str(tmp_path / "no-weights"))
    errors = []
    for module in ("base_model", "finetune", "annotations", "_runner"):
        monkeypatch.setattr(f"napari_cellist._widgets.{module}.notify_error", errors.append, raising=False)
    viewer = make_napari_viewer()
    set_session(viewer, LabellingSession(tmp_path / "project"))
    viewer.open_sample("napari-cellist", "nuclei_with_truth")
    truth = np.asarray(viewer.layers["nuclei ground truth"].data)
    viewer.add_image(np.asarray(viewer.layers["nuclei"].data)[:192, :192], name="crop")
    viewer.add_labels(truth[:192, :192].astype(np.int32), name="crop labels")
    annotations = AnnotationsWidget(viewer)
    annotations.image.value = "crop"
    assert annotations.commit().n_objects > 10

    base = BaseModelWidget(viewer)
    base.model.value = "cellpose"
    base.image.value = "crop"
    base._on_run()  # no cyto3 weights here: a clear message, no traceback, no download
    assert errors and "cyto3" in errors[-1]
    errors.clear()

    finetune = FineTuneWidget(viewer)
    finetune.model.value = "cellpose"
    form = finetune.params_form.controls
    form["start_from"].value = "scratch"
    form["n_epochs"].value = 3
    form["bsize"].value = 64
    form["validation_fraction"].value = 0.0
    finetune._on_train()
    finetune.runner.wait(300_000)
    assert errors == [], errors
    record = finetune.session.store.model_versions("cellpose")[-1]
    assert record.checkpoint_path and record.data_used
    assert len(finetune.plot.steps) == 3  # one loss point per epoch
    assert base.version.value.startswith(f"v{record.id}")
    base._on_run()
    assert errors == [], errors
    assert base.last_prediction.source == "cellpose" and base.last_prediction.model_version == record.id
