"""*Fine-tune* dock widget: fit a model to everything committed, with a live plot and Stop."""

from __future__ import annotations

import logging
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, PushButton

from ..models import REGISTRY, ModelUnavailableError, get_model_class
from ..store import StoreError
from ..types import FitResult, Progress, Sample
from ._common import grey_pixels, image_layer_names, models_folder
from ._params import ParamsForm
from ._plot import LivePlot
from ._runner import JobRunner, notify_error, notify_info
from ._session import session_for

logger = logging.getLogger(__name__)
FROM_DEFAULTS = "defaults / scratch"


class FineTuneWidget(Container):
    """Train or fit a model on the committed annotations; each run becomes a model version.

    ``kinds`` limits the models offered; with ``use_open_images`` the image layers that have no
    committed annotations join the training data unlabelled (for unsupervised models like AIR).
    """

    kinds: tuple[str, ...] = ("base", "target")
    use_open_images: bool = False

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        names = [n for n, e in REGISTRY.items() if e.kind in self.kinds and _is_trainable(n)] or ["threshold"]
        self.model = ComboBox(label="model", choices=names, value=names[0], tooltip="The model to fit to your corrections.")
        self.start_from = ComboBox(label="start from", choices=[FROM_DEFAULTS], tooltip="Fine-tune a saved version, or start from the defaults.")
        self.form = Container(labels=False)
        self.train_button = PushButton(text="Train / Fit", tooltip="Fit the model to every committed image, in the background.")
        self.runner = JobRunner()
        self.plot = LivePlot("loss")
        self.result = Label(value="")
        self.extend([self.model, self.start_from, self.form, self.train_button, self.runner, self.plot, self.result])
        self.model.changed.connect(self._on_model_changed)
        self.train_button.changed.connect(self._on_train)
        self._on_model_changed(self.model.value)

    def _on_model_changed(self, name: str) -> None:
        self.form.clear()
        cls = get_model_class(name)
        self.params_form = ParamsForm(cls.TrainParams)
        self.form.append(self.params_form)
        self._versions = {}
        try:
            self._versions = {f"v{r.id}": r for r in self.session.store.model_versions(name)}
        except (StoreError, ValueError, OSError) as err:
            logger.warning("No versions listed: %s", err)
        self.start_from.choices = [FROM_DEFAULTS, *self._versions]

    def _on_train(self) -> None:
        try:
            cls = get_model_class(self.model.value)
            train_params = self.params_form.value()
            parent = self._versions.get(self.start_from.value)
            model = cls.from_checkpoint(parent.checkpoint_path) if parent and parent.checkpoint_path else cls()
            open_images = self._open_images() if self.use_open_images else []
        except (ValueError, StoreError, ModelUnavailableError, OSError) as err:
            notify_error(str(err))
            return
        needs_labels = cls.kind != "target"

        def job() -> Generator[Progress, None, FitResult]:
            # reading every committed image from the store is I/O: it runs in the worker too
            samples = self._samples(open_images)
            if not samples or (needs_labels and not any(s.labels is not None for s in samples)):
                raise ValueError("Nothing committed yet: correct a prediction and press Commit first.")
            return (yield from model.fit_iter(samples, train_params))

        self.plot.clear()
        self.train_button.enabled = False
        self._model, self._parent_id = model, (parent.id if parent else None)
        self.runner.run(
            job,
            on_done=self._on_done,
            on_progress=self._on_progress,
            on_finally=lambda: setattr(self.train_button, "enabled", True),
            on_stopped=self._on_stopped,
        )

    def _open_images(self) -> list[tuple[str, np.ndarray]]:
        """(name, grey pixels) of the open image layers, taken on the GUI thread."""
        return [(name, grey_pixels(self.viewer.layers[name])) for name in image_layer_names(self.viewer)]

    def _samples(self, open_images: list[tuple[str, np.ndarray]]) -> list[Sample]:
        """Everything committed, plus the open images that are not committed (unlabelled)."""
        from ..store import ProjectStore

        samples = self.session.training_samples()
        committed = {s.name for s in samples}
        for name, pixels in open_images:
            if name not in committed:
                samples.append(Sample(pixels, name=f"{name} ({ProjectStore.hash_image(pixels)[:8]})"))
        return samples

    def _on_progress(self, progress: Progress) -> None:
        self.plot.add(progress.step, progress.loss)

    def _on_done(self, result: FitResult) -> None:
        self._save(result)

    def _on_stopped(self) -> None:
        from ..models.base import params_to_dict

        self._save(FitResult(params=params_to_dict(self._model.params), metrics={"stopped": 1.0}))

    def _save(self, result: FitResult) -> None:
        name = self._model.name
        suffix = getattr(self._model, "checkpoint_suffix", ".ckpt")
        path = models_folder(self.session.project) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}{suffix}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._model.save(path)
            record = self.session.add_model_version(name, result, Path(path), self._parent_id)
        except (StoreError, ValueError, OSError) as err:
            notify_error(f"The trained model could not be saved: {err}")
            return
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in result.metrics.items() if isinstance(v, float))
        self.result.value = f"v{record.id}: {metrics}"
        self._on_model_changed(name)
        notify_info(f"Saved {name} v{record.id} ({metrics}); the Base model widget now predicts with it.")


def _is_trainable(name: str) -> bool:
    try:
        return get_model_class(name).trainable
    except (ModelUnavailableError, ValueError):
        return False
