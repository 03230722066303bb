"""The models a labelling-loop arm predicts with and retrains: one model, or base + target.

``"threshold"``, ``"air"``, ``"cellpose"``: the project's model, its current version
(:meth:`ProjectQueue.current_model`), retrained by the learning loop. ``"threshold+air"``: the
base -> target pair of the Project panel: both predict every image (the base's prediction first,
so the image's current prediction is the target's and "what to label next" sees their
disagreement), the annotator corrects the target's prediction, and the loop retrains both.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_cellist.images import prepare_grey
from napari_cellist.learning_loop import LoopSettings, retrain
from napari_cellist.progress import drain
from napari_cellist.types import Progress

logger = logging.getLogger("bench_labelling_loop")

#: Model specs the benchmark knows: single models and the base + target pair.
MODEL_SPECS = ("threshold", "air", "cellpose", "threshold+air")


@dataclass
class LoopPredictor:
    """Predict with the project's current versions of ``names`` and retrain them.

    Parameters
    ----------
    names : tuple of str
        One trainable model, or (base, target): the target's prediction is the one corrected.
    settings : dict
        ``LoopSettings`` fields shared by the models (``minutes``, ``checkpoint_dir``...).
    train_params : dict
        Extra training parameters by model name (empty for the product's defaults).
    """

    names: tuple[str, ...]
    settings: dict[str, Any]
    train_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    _models: dict[str, tuple[Any, int | None]] = field(default_factory=dict)
    base_errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_spec(cls, spec: str, settings: dict[str, Any], train_params: dict) -> LoopPredictor:
        if spec not in MODEL_SPECS:
            raise ValueError(f"unknown model {spec!r}; choose from {', '.join(MODEL_SPECS)}")
        return cls(tuple(spec.split("+")), settings, train_params)

    def current(self, queue: Any, name: str) -> tuple[Any, int | None]:
        """The model's current version (cached until a retraining changes it)."""
        version = queue.store.current_model_version(name)
        vid = None if version is None else version.id
        cached = self._models.get(name)
        if cached is None or cached[1] != vid:
            self._models[name] = queue.current_model(name)
        return self._models[name]

    def predict(self, queue: Any, image_id: int) -> Generator[Progress, None, None]:
        """Store each model's prediction of the image (the target's last)."""
        for name in self.names:
            model, version = self.current(queue, name)
            try:
                yield from queue.predict(image_id, model, model_version=version)
            except Exception as error:  # noqa: BLE001 - a base model without weights
                if version is not None:
                    raise
                self._empty(queue, image_id, name, error)

    def _empty(self, queue: Any, image_id: int, name: str, error: BaseException) -> None:
        """An untrained model that cannot predict (e.g. Cellpose without downloaded weights):
        an empty prediction, so the annotator draws every object."""
        self.base_errors[name] = f"{type(error).__name__}: {error}"[:300]
        logger.warning("base %s cannot predict (%s): empty prediction", name, error)
        shape = queue.store.load_pixels(image_id).shape[:2]
        queue.store.save_prediction(image_id, np.zeros(shape, np.int32), {}, name, None)

    def predict_array(self, queue: Any, image: np.ndarray) -> np.ndarray:
        """The target's label map of ``image`` (Y, X), outside the project."""
        name = self.names[-1]
        model, version = self.current(queue, name)
        try:
            return np.asarray(drain(model.predict_iter(prepare_grey(image))).labels)
        except Exception as error:  # noqa: BLE001 - a base model without weights
            if version is not None:
                raise
            self.base_errors[name] = f"{type(error).__name__}: {error}"[:300]
            return np.zeros(image.shape[:2], np.int32)

    def retrain_all(self, store: Any) -> list[dict[str, Any]]:
        """One learning-loop retraining of each model; what each did."""
        out = []
        for name in self.names:
            settings = LoopSettings(
                name, train_params=self.train_params.get(name, {}), **self.settings
            )
            started = time.perf_counter()
            outcome = drain(retrain(store, settings))
            out.append(
                {
                    "model": name,
                    "version": outcome.version.id,
                    "accepted": outcome.accepted,
                    "reason": outcome.reason,
                    "held_out": list(outcome.held_out),
                    "held_out_ap50_new": _finite(outcome.new_score),
                    "held_out_ap50_current": outcome.current_score,
                    "train_seconds": outcome.train_seconds,
                    "retrain_seconds": time.perf_counter() - started,
                    "data_used": list(outcome.version.data_used or ()),
                }
            )
        return out


def _finite(value: float) -> float | None:
    return None if value != value else float(value)
