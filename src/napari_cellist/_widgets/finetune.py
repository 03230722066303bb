"""*Fine-tune* dock widget: fit a model to everything committed, with a live plot and Stop."""

from __future__ import annotations

import logging
import time
from collections.abc import Generator
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, PushButton

from ..models import (
    ModelUnavailableError,
    build_model,
    get_entry,
    train_params_class,
    trainable_models,
)
from ..store import StoreError
from ..types import FitResult, Progress, Sample
from ._common import DockWidget, grey_pixels, image_layer_names, models_folder
from ._params import ParamsForm
from ._plot import LivePlot
from ._runner import JobRunner, StatusLine, notify_error, notify_info

logger = logging.getLogger(__name__)
FROM_DEFAULTS = "defaults"
#: the training parameter a model uses to say where training starts; the widget's "start from"
START_FIELD = "start_from"
#: what the live plot shows per model (the Progress ``loss`` of its fit)
PLOT_LABELS = {"threshold": ("candidate", "1 - AP50")}


class FineTuneWidget(DockWidget):
    """Train or fit a model on the committed annotations; each run becomes a model version.

    ``kinds`` limits the models offered; with ``use_open_images`` the image layers that have no
    committed annotations join the training data unlabelled (for unsupervised models like AIR).
    Public action: :meth:`train`.
    """

    kinds: tuple[str, ...] = ("base", "target")
    use_open_images: bool = False

    def __init__(self, napari_viewer: Any, scrollable: bool = True) -> None:
        super().__init__(napari_viewer, scrollable=scrollable, labels=False)
        names = trainable_models(self.kinds) or ["threshold"]
        self.model = ComboBox(
            label="model",
            choices=names,
            value=names[0],
            tooltip="The model to fit to your corrections.",
        )
        self._versions: dict[str, Any] = {}
        self._starts: tuple[str, ...] = (FROM_DEFAULTS,)
        self.start_from = ComboBox(
            label="start from",
            choices=self._start_choices,
            tooltip="Where training starts: a saved version of the project, or the model's own starting points.",
        )
        self.form = Container(labels=False)
        self.train_button = PushButton(
            text="Train / Fit", tooltip="Fit the model to every committed image, in the background."
        )
        self.runner = JobRunner()
        self.plot = LivePlot("loss")
        self.result = StatusLine()
        self.extend(
            [
                Container(labels=True, widgets=[self.model, self.start_from]),
                self.form,
                self.train_button,
                self.runner,
                self.plot,
                self.result,
            ]
        )
        self.model.changed.connect(self._on_model_changed)
        self.train_button.changed.connect(self.train)
        self.listen_versions(
            lambda name, _id: self.refresh_versions() if name == self.model.value else None
        )
        self._on_model_changed(self.model.value)

    def _start_choices(self, _widget: Any = None) -> list[str]:
        return [*getattr(self, "_starts", ()), *getattr(self, "_versions", {})]

    def _on_model_changed(self, name: str) -> None:
        self.form.clear()
        params_type = train_params_class(name)
        start = next((f for f in fields(params_type) if f.name == START_FIELD), None)
        self._starts = (
            tuple(start.metadata.get("suggestions", (start.default,)))
            if start
            else (FROM_DEFAULTS,)
        )
        self.params_form = ParamsForm(params_type, hidden=(START_FIELD,))
        self.form.append(self.params_form)
        xlabel, ylabel = PLOT_LABELS.get(name, ("step", "loss"))
        self.plot.set_labels(xlabel, ylabel)
        self.refresh_versions()
        self.start_from.value = self._starts[0]
        self.fit_labels()

    def refresh_versions(self) -> None:
        """Rebuild the "start from" list from the project store, keeping the choice."""
        try:
            self._versions = {
                f"v{r.id}": r for r in self.session.store.model_versions(self.model.value)
            }
        except (StoreError, ValueError, OSError) as err:
            logger.warning("No versions listed: %s", err)
            self._versions = {}
        current = self.start_from.value
        self.start_from.reset_choices()
        if current in self._start_choices():
            self.start_from.value = current

    def train(self) -> bool:
        """Fit the chosen model to every committed image, in the background; False when it did
        not start. The new version is saved and announced by the widget that predicts with it."""
        try:
            name = self.model.value
            parent = self._versions.get(self.start_from.value)
            train_params = self._train_params(parent)
            model = build_model(name, parent.checkpoint_path if parent else None)
            open_images = self._open_images() if self.use_open_images else []
        except (ValueError, StoreError, ModelUnavailableError, OSError) as err:
            notify_error(str(err))
            self.result.say(str(err))
            return False
        needs_labels = get_entry(name).kind != "target"

        def job() -> Generator[Progress, None, FitResult]:
            # reading every committed image from the store is I/O: it runs in the worker too
            samples = self._samples(open_images)
            if not samples or (needs_labels and not any(s.labels is not None for s in samples)):
                raise ValueError(
                    "Nothing committed yet: correct a prediction and press Commit first."
                )
            return (yield from model.fit_iter(samples, train_params))

        self.plot.clear()
        self.train_button.enabled = False
        self._model, self._parent_id = model, (parent.id if parent else None)
        self.runner.run(
            job,
            on_done=self._save,
            on_progress=self._on_progress,
            on_finally=lambda: setattr(self.train_button, "enabled", True),
            on_stopped=self._on_stopped,
        )
        return True

    def _train_params(self, parent: Any) -> Any:
        """The form's training parameters; the start field from the "start from" choice."""
        params = self.params_form.value()
        if not any(f.name == START_FIELD for f in fields(params)):
            return params
        start = "current" if parent is not None else self.start_from.value
        return self.params_form.with_values(**{START_FIELD: start})

    def _open_images(self) -> list[tuple[str, np.ndarray]]:
        """(name, grey pixels) of the open image layers, taken on the GUI thread."""
        return [
            (name, grey_pixels(self.viewer.layers[name])) for name in image_layer_names(self.viewer)
        ]

    def _samples(self, open_images: list[tuple[str, np.ndarray]]) -> list[Sample]:
        """Everything committed, plus the open images that are not committed (unlabelled)."""
        from ..store import ProjectStore

        samples = self.session.training_samples()
        committed = {s.name for s in samples}
        for name, pixels in open_images:
            if name not in committed:
                samples.append(
                    Sample(pixels, name=f"{name} ({ProjectStore.hash_image(pixels)[:8]})")
                )
        return samples

    def _on_progress(self, progress: Progress) -> None:
        self.plot.add(progress.step, progress.loss)

    def _on_stopped(self) -> None:
        from ..models.base import params_to_dict

        self._save(FitResult(params=params_to_dict(self._model.params), metrics={"stopped": 1.0}))

    def _save(self, result: FitResult) -> None:
        name = self._model.name
        suffix = get_entry(name).checkpoint_suffix
        path = (
            models_folder(self.session.project) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}{suffix}"
        )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._model.save(path)
            record = self.session.add_model_version(name, result, Path(path), self._parent_id)
        except (StoreError, ValueError, OSError) as err:
            notify_error(f"The trained model could not be saved: {err}")
            return
        metrics = ", ".join(
            f"{k} {v:.3f}" for k, v in result.metrics.items() if isinstance(v, float)
        )
        started = result.params.get(START_FIELD)
        origin = f"; started from {started}" if started else ""
        self.result.say(f"Saved {name} v{record.id}: {metrics}{origin}")
        notify_info(f"Saved {name} v{record.id} ({metrics}{origin}).")
