"""Fine-tune widget with Cellpose: train from scratch on a commit, then predict with the version."""

import numpy as np
import pytest


@pytest.mark.slow
def test_cellpose_fine_tune_creates_a_version_the_base_model_uses(
    viewer, dock, notifications, tmp_path, monkeypatch
):
    monkeypatch.setenv("CELLPOSE_LOCAL_MODELS_PATH", str(tmp_path / "no-weights"))
    monkeypatch.setenv("CELLIST_OFFLINE", "1")  # no download: the weights stay missing
    truth = np.asarray(viewer.layers["nuclei ground truth"].data)
    viewer.add_image(np.asarray(viewer.layers["nuclei"].data)[:192, :192], name="crop")
    viewer.add_labels(truth[:192, :192].astype(np.int32), name="crop labels")
    annotations = dock(viewer, "Annotations")
    annotations.image.value = "crop"
    assert annotations.commit().n_objects > 10

    base = dock(viewer, "Base model")
    base.model.value = "cellpose"
    base.image.value = "crop"
    base.confirm = lambda question: True
    base.run()  # no cyto3 weights here: one clear message, no download, a way to pick the file
    assert len(notifications.errors) == 1 and "cyto3" in notifications.errors[-1]
    assert not base.choose_weights_button.native.isHidden() and base.runner.bar.value == 0
    notifications.clear()

    finetune = dock(viewer, "Fine-tune")
    finetune.model.value = "cellpose"
    # one "start from" control: Cellpose's own starting points and the project's versions
    assert "start_from" not in finetune.params_form.controls
    assert list(finetune.start_from.choices)[:3] == ["auto", "current", "scratch"]
    finetune.start_from.value = "scratch"
    form = finetune.params_form.controls
    assert form["learning_rate"].value == "0.005" and form["weight_decay"].value == "1e-05"
    form["n_epochs"].value = 3
    form["bsize"].value = 64
    form["validation_fraction"].value = 0.0
    assert finetune.train()
    finetune.runner.wait(300_000)
    assert notifications.errors == [], notifications.errors
    record = finetune.session.store.model_versions("cellpose")[-1]
    assert record.checkpoint_path and record.data_used
    assert record.params["start_from"] == "scratch"
    assert "started from scratch" in finetune.result.value
    assert len(finetune.plot.steps) == 3  # one loss point per epoch
    assert base.version.value.startswith(f"v{record.id}")
    base.run()
    assert notifications.errors == [], notifications.errors
    assert (
        base.last_prediction.source == "cellpose"
        and base.last_prediction.model_version == record.id
    )
