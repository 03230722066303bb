"""Target model widget: train AIR on committed + open images, predict with the new version."""

import numpy as np


def test_train_air_version_and_predict_with_reconstruction(viewer, dock, notifications):
    truth = np.asarray(viewer.layers["nuclei ground truth"].data)
    viewer.add_labels(truth[:256, :256].astype(np.int32), name="nuclei labels")
    viewer.layers["nuclei"].data = np.asarray(viewer.layers["nuclei"].data)[:256, :256]
    annotations = dock(viewer, "Annotations")
    annotations.image.value = "nuclei"
    assert annotations.commit() is not None
    viewer.add_image(np.asarray(viewer.layers["nuclei"].data)[::-1].copy(), name="unlabelled")
    widget = dock(viewer, "Target model")
    assert widget.trainer.model.value == "air"
    # the form shows and delivers AIR's learning rate exactly (it reached the trainer as 0.0)
    assert widget.trainer.params_form.controls["learning_rate"].value == "0.002"
    widget.trainer.params_form.controls["steps"].value = 3
    assert widget.train()
    widget.trainer.runner.wait(300_000)
    assert notifications.errors == [], notifications.errors
    assert widget.trainer.result.value.startswith("Saved air v1")
    record = widget.trainer.session.store.model_versions("air")[-1]
    assert len(record.data_used) == 2  # the committed image and the open unlabelled one
    assert widget.predictor.version.value.startswith("v1")
    # the widget that predicts with the new version announces it (not the Base model widget)
    assert any(
        m.startswith("Target model: Run now predicts with air v1") for m in notifications.infos
    )
    assert not any("Base model" in m for m in notifications.infos)
    widget.predictor.image.value = "nuclei"
    widget.predictor.confirm = lambda question: True  # replaces the committed annotations
    assert widget.run()
    widget.predictor.runner.wait(300_000)
    assert notifications.errors == [], notifications.errors
    assert widget.predictor.last_prediction.source == "air"
    assert "nuclei reconstruction" in viewer.layers
