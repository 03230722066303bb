"""*Base model* dock widget: choose a model and its parameters, run it on an image."""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from dataclasses import replace
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, FloatSpinBox, PushButton

from ..layers import (
    MAX_POLYGONS,
    polygons_from_shapes_layer,
    prediction_to_layer_tuples,
    set_layers,
)
from ..models import REGISTRY, ModelUnavailableError, build_model, non_default_values, params_class
from ..models.base import WeightsNotFoundError, params_from_mapping
from ..types import Prediction, Progress
from ._common import (
    DockWidget,
    ImageLayerChoice,
    channel_index,
    channel_names,
    grey_pixels,
    role_layer,
    snapshot_tuples,
)
from ._params import ParamsForm
from ._runner import JobRunner, StatusLine, notify_error, notify_info

logger = logging.getLogger(__name__)
DEFAULTS = "default parameters"
#: parameter fields the widget sets with its own controls (the weights file)
WIDGET_FIELDS = ("checkpoint",)
KIND_TITLES = {"base": "Base model", "target": "Target model"}


def ask_user(parent: Any, question: str) -> bool:
    """Ask a yes/no question in a dialog; True for yes."""
    from qtpy.QtWidgets import QMessageBox

    answer = QMessageBox.question(parent, "Cellist", question)
    return answer == QMessageBox.StandardButton.Yes


def ask_file(parent: Any, title: str) -> str:
    """Ask for a file in a dialog; "" when cancelled."""
    from qtpy.QtWidgets import QFileDialog

    path, _ = QFileDialog.getOpenFileName(parent, title)
    return path or ""


class ModelRunWidget(DockWidget):
    """Pick a model of ``kind`` and a version, set parameters, run it on an image layer.

    Public actions: :meth:`run`, :meth:`choose_weights`. ``confirm`` (a callable taking the
    question, returning True for yes) is asked before a prediction replaces committed or edited
    annotations; by default a dialog.
    """

    kind = "base"

    def __init__(self, napari_viewer: Any, scrollable: bool = True) -> None:
        super().__init__(napari_viewer, scrollable=scrollable, labels=False)
        self.confirm: Callable[[str], bool] = lambda question: ask_user(self.native, question)
        self.image = ImageLayerChoice(self.viewer)
        names = [n for n, e in REGISTRY.items() if e.kind == self.kind] or list(REGISTRY)
        self.model = ComboBox(
            label="model",
            choices=names,
            value=names[0],
            tooltip="The model that predicts the objects.",
        )
        self._version_records: dict[str, Any] = {}
        self.version = ComboBox(
            label="version",
            choices=self._version_labels,
            tooltip="A fitted version from the project, or the default parameters. Choosing one shows its parameters.",
        )
        self.channel = ComboBox(
            label="channel",
            choices=self._channel_choices,
            tooltip="Channel to segment in colour images (grey images have one).",
        )
        self.checkpoint = FileEdit(
            label="weights",
            mode="r",
            value="",
            tooltip="Optional weights / checkpoint file (Cellpose, SAM, AIR).",
        )
        self.choose_weights_button = PushButton(
            text="Choose weights file...",
            visible=False,
            tooltip="The model's weights are missing: pick the file.",
        )
        self.tolerance = FloatSpinBox(
            label="outline tolerance",
            value=self.session.tolerance,
            min=0.0,
            max=10.0,
            step=0.25,
            tooltip="How far (pixels) a simplified polygon may stray from the object's outline; 0 keeps every pixel corner.",
        )
        self.form = Container(labels=False)
        self.run_button = PushButton(text="Run", tooltip="Predict objects in the chosen image.")
        self.runner = JobRunner()
        self.message = StatusLine()
        self.last_prediction: Prediction | None = None
        choices = [self.image, self.model, self.version, self.channel, self.checkpoint]
        self.settings = Container(
            labels=True, widgets=[*choices, self.choose_weights_button, self.tolerance]
        )
        self.extend([self.settings, self.form, self.run_button, self.runner, self.message])
        self.model.changed.connect(self._on_model_changed)
        self.version.changed.connect(self._on_version_chosen)
        self.image.changed.connect(lambda _v: self.channel.reset_choices())
        self.run_button.changed.connect(self.run)
        self.choose_weights_button.changed.connect(lambda: self.choose_weights())
        self.tolerance.changed.connect(self._on_tolerance)
        self.listen_versions(self._on_version_added)
        self._on_model_changed(self.model.value)

    # -- choices -------------------------------------------------------------------------------
    def _version_labels(self, _widget: Any = None) -> list[str]:
        return [DEFAULTS, *getattr(self, "_version_records", {})]

    def _channel_choices(self, _widget: Any = None) -> list[str]:
        image = getattr(self, "image", None)
        try:
            return channel_names(image.layer() if image is not None else None)
        except ValueError:
            return channel_names(None)

    # -- callbacks -----------------------------------------------------------------------------
    def _on_model_changed(self, name: str) -> None:
        self.form.clear()
        try:
            params_type = params_class(name)
        except ModelUnavailableError as err:
            notify_error(str(err))
            self.run_button.enabled = False
            return
        self.run_button.enabled = True
        self.params_form = ParamsForm(params_type, hidden=WIDGET_FIELDS)
        self.form.append(self.params_form)
        self.refresh_versions(select="newest")
        self.fit_labels()

    def _on_tolerance(self, value: float) -> None:
        self.session.tolerance = float(value)

    def _on_version_added(self, model_name: str, version_id: int) -> None:
        if model_name != self.model.value:
            return
        self.refresh_versions(select=version_id)
        title = KIND_TITLES.get(self.kind, self.kind)
        self.message.say(f"{title} now predicts with {model_name} v{version_id}.")
        notify_info(f"{title}: Run now predicts with {model_name} v{version_id}.")

    def refresh_versions(self, select: int | str | None = None) -> None:
        """Rebuild the version list from the project store.

        ``select``: a version id to choose, ``"newest"``, or None to keep the current choice.
        """
        try:
            records = self.session.store.model_versions(self.model.value)
        except Exception as err:  # noqa: BLE001 - an unreadable store leaves the defaults
            logger.warning("No model versions: %s", err)
            records = []
        self._version_records = {_version_label(r): r for r in records}
        current = self.version.value
        self.version.reset_choices()
        labels = self._version_labels()
        if select == "newest":
            chosen = labels[-1]
        elif select is not None:
            chosen = next((t for t, r in self._version_records.items() if r.id == select), current)
        else:
            chosen = current
        self.version.value = chosen if chosen in labels else DEFAULTS
        self._on_version_chosen(self.version.value)

    def _on_version_chosen(self, label: str | None) -> None:
        """Show the parameters of the chosen version (the defaults for 'default parameters')."""
        if not hasattr(self, "params_form"):
            return
        record = self._version_records.get(label or "")
        values = {
            k: tuple(v) if isinstance(v, list) else v
            for k, v in dict(record.params if record else {}).items()
        }
        try:
            self.params_form.set_value(params_from_mapping(self.params_form.params_type, values))
        except (TypeError, ValueError) as err:
            logger.warning("Parameters of %s not shown: %s", label, err)

    # -- actions -------------------------------------------------------------------------------
    def run(self) -> bool:
        """Run the chosen model (and version) on the chosen image; False when it did not start.

        Asks ``confirm`` first when the image's labels hold committed or edited annotations.
        The polygons and centres are computed in the worker too: the GUI thread only hands the
        finished layer data to napari, which updates the existing layers in place.
        """
        try:
            layer = self.image.layer()
            image = grey_pixels(layer, channel_index(self.channel.value))
            if not self._may_replace(layer.name):
                return False
            model, version_id = self._build_model()
        except (ValueError, ModelUnavailableError, OSError) as err:
            self._failed(err)
            return False
        self.choose_weights_button.visible = False
        name, scale, tolerance = (
            layer.name,
            tuple(layer.scale)[-image.ndim :],
            self.session.tolerance,
        )

        def job() -> Generator[Progress, None, tuple[Prediction, list]]:
            prediction = (yield from model.predict_iter(image)).with_version(version_id)
            # the layer gets its own copy (the user paints into it), built here, not on the
            # GUI thread, as are the outlines and centres
            shown = replace(prediction, labels=np.array(prediction.labels, np.int32))
            return prediction, prediction_to_layer_tuples(
                shown, name, scale=scale, tolerance=tolerance, max_polygons=MAX_POLYGONS
            )

        self.run_button.enabled = False
        self.runner.run(
            job,
            on_done=lambda result: self._show(*result, name),
            on_finally=lambda: setattr(self.run_button, "enabled", True),
            on_error=self._on_job_error,
        )
        return True

    def _may_replace(self, image_name: str) -> bool:
        labels = role_layer(self.viewer, image_name, "labels")
        shapes = role_layer(self.viewer, image_name, "polygons")
        polygons = polygons_from_shapes_layer(shapes) if shapes is not None else []
        reason = self.session.unsaved_work(
            image_name, None if labels is None else labels.data, polygons
        )
        if reason is None:
            return True
        question = (
            f"{image_name} shows {reason}. Replace them by a new {self.model.value} prediction?"
        )
        if self.confirm(question):
            return True
        self.message.say("Not run: the annotations were kept.")
        return False

    def _failed(self, err: BaseException) -> None:
        notify_error(str(err))
        self.message.say(str(err))
        self._on_job_error(err)

    def _on_job_error(self, err: BaseException) -> None:
        if isinstance(err, WeightsNotFoundError):
            self.choose_weights_button.visible = True

    def choose_weights(self, path: str | None = None) -> str:
        """Use a weights file (asked for in a dialog when ``path`` is None); returns the path."""
        path = path if path is not None else ask_file(self.native, f"Weights of {self.model.value}")
        if path:
            self.checkpoint.value = path
            self.choose_weights_button.visible = False
            self.message.say(f"Weights: {path}. Press Run.")
        return path

    def _build_model(self) -> tuple[Any, int | None]:
        """The chosen version (else the weights file) with the form's changed fields on top."""
        overrides = non_default_values(self.params_form.value())
        record = self._version_records.get(self.version.value)
        weights = (
            str(self.checkpoint.value) if str(self.checkpoint.value) not in ("", ".") else None
        )
        if record is not None and record.checkpoint_path:
            return build_model(self.model.value, record.checkpoint_path, overrides), record.id
        return build_model(self.model.value, weights, overrides), None

    def _show(self, prediction: Prediction, tuples: list, image_name: str) -> None:
        set_layers(self.viewer, tuples)
        self.session.record_prediction(image_name, prediction, copy=False)
        snapshot_tuples(self.session, image_name, tuples)
        version = f" v{prediction.model_version}" if prediction.model_version else ""
        self.message.say(
            f"{prediction.source}{version}: {prediction.count} objects in {image_name}."
        )
        notify_info(f"{prediction.source}{version}: {prediction.count} objects in {image_name}.")
        self.last_prediction = prediction


def _version_label(record: Any) -> str:
    metrics = record.metrics or {}
    score = metrics.get("val_ap50", metrics.get("ap50"))
    suffix = f" (AP50 {score:.2f})" if isinstance(score, float) else ""
    return f"v{record.id}{suffix}"


class BaseModelWidget(ModelRunWidget):
    """The *Base model* dock widget (threshold, Cellpose, SAM)."""

    kind = "base"
