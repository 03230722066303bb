"""*Base model* dock widget: choose a model and its parameters, run it on an image."""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

from magicgui.widgets import ComboBox, Container, FileEdit, FloatSpinBox, LineEdit, PushButton

from ..layers import prediction_to_layer_tuples, set_layers
from ..models import REGISTRY, ModelUnavailableError, get_model_class
from ..models.base import WeightsNotFoundError
from ..types import Prediction, Progress
from ._common import ImageLayerChoice, grey_pixels, snapshot
from ._params import ParamsForm
from ._runner import JobRunner, notify_error, notify_info
from ._session import session_for

logger = logging.getLogger(__name__)
DEFAULTS = "default parameters"


class ModelRunWidget(Container):
    """Pick a model of ``kind`` and a version, set parameters, run it on an image layer."""

    kind = "base"

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.image = ImageLayerChoice(napari_viewer)
        names = [n for n, e in REGISTRY.items() if e.kind == self.kind] or list(REGISTRY)
        self.model = ComboBox(label="model", choices=names, value=names[0], tooltip="The model that predicts the objects.")
        self.version = ComboBox(label="version", choices=[DEFAULTS], tooltip="A fitted version from the project, or the default parameters.")
        self.channel = LineEdit(label="channel", value="", tooltip="Channel to segment in RGB / multi-channel images (empty: average of the colours).")
        self.checkpoint = FileEdit(label="weights", mode="r", value="", tooltip="Optional weights / checkpoint file (Cellpose, SAM, AIR).")
        self.tolerance = FloatSpinBox(label="outline tolerance", value=self.session.tolerance, min=0.0, max=10.0, step=0.25, tooltip="How far (pixels) a simplified polygon may stray from the object's outline; 0 keeps every pixel corner.")
        self.form = Container(labels=False)
        self.run_button = PushButton(text="Run", tooltip="Predict objects in the chosen image (Ctrl+R in the viewer is not bound).")
        self.runner = JobRunner()
        self.extend([self.image, self.model, self.version, self.channel, self.checkpoint, self.tolerance, self.form, self.run_button, self.runner])
        self.model.changed.connect(self._on_model_changed)
        self.run_button.changed.connect(self._on_run)
        self.tolerance.changed.connect(self._on_tolerance)
        self.session.version_listeners.append(self._on_version_added)
        self._on_model_changed(self.model.value)

    # -- callbacks -----------------------------------------------------------------------------
    def _on_model_changed(self, name: str) -> None:
        self.form.clear()
        try:
            cls = get_model_class(name)
        except ModelUnavailableError as err:
            notify_error(str(err))
            self.run_button.enabled = False
            return
        self.run_button.enabled = True
        self.params_form = ParamsForm(cls.Params)
        self.form.append(self.params_form)
        self._refresh_versions()

    def _on_tolerance(self, value: float) -> None:
        self.session.tolerance = float(value)

    def _on_version_added(self, model_name: str, version_id: int) -> None:
        if model_name == self.model.value:
            self._refresh_versions(select=version_id)

    def _refresh_versions(self, select: int | None = None) -> None:
        labels = [DEFAULTS]
        self._versions: dict[str, Any] = {}
        try:
            records = self.session.store.model_versions(self.model.value)
        except (ValueError, OSError) as err:
            logger.warning("No model versions: %s", err)
            records = []
        for record in records:
            text = _version_label(record)
            labels.append(text)
            self._versions[text] = record
        self.version.choices = labels
        chosen = next((t for t, r in self._versions.items() if r.id == select), None)
        self.version.value = chosen or labels[-1]

    def _on_run(self) -> None:
        try:
            layer = self.image.layer()
            channel = int(self.channel.value) if self.channel.value.strip() else None
            image = grey_pixels(layer, channel)
            model, version_id = self._build_model()
        except (ValueError, ModelUnavailableError, WeightsNotFoundError, OSError) as err:
            notify_error(str(err))
            return
        name, scale, tolerance = layer.name, tuple(layer.scale)[-image.ndim :], self.session.tolerance

        def job() -> Generator[Progress, None, tuple[Prediction, list]]:
            # the polygons and centres are computed in the worker too: the GUI thread only
            # hands the finished layer data to napari
            prediction = (yield from model.predict_iter(image)).with_version(version_id)
            return prediction, prediction_to_layer_tuples(prediction, name, scale=scale, tolerance=tolerance)

        self.run_button.enabled = False
        self.runner.run(
            job,
            on_done=lambda result: self._show(*result, name),
            on_finally=lambda: setattr(self.run_button, "enabled", True),
        )

    def _build_model(self) -> tuple[Any, int | None]:
        cls = get_model_class(self.model.value)
        params = self.params_form.value()
        record = self._versions.get(self.version.value)
        weights = str(self.checkpoint.value) if str(self.checkpoint.value) not in ("", ".") else None
        if record is not None and record.checkpoint_path:
            model = cls.from_checkpoint(record.checkpoint_path)
            return model, record.id
        if weights:
            return cls.from_checkpoint(weights, params), None
        return cls(params), None

    def _show(self, prediction: Prediction, tuples: list, image_name: str) -> None:
        set_layers(self.viewer, tuples)
        self.session.record_prediction(image_name, prediction)
        snapshot(self.viewer, self.session, image_name)
        notify_info(f"{prediction.source}: {prediction.count} objects in {image_name}.")
        self.last_prediction = prediction


def _version_label(record: Any) -> str:
    metrics = record.metrics or {}
    score = metrics.get("val_ap50", metrics.get("ap50"))
    suffix = f" (AP50 {score:.2f})" if isinstance(score, float) else ""
    return f"v{record.id}{suffix}"


class BaseModelWidget(ModelRunWidget):
    """The *Base model* dock widget (threshold, Cellpose, SAM)."""

    kind = "base"
