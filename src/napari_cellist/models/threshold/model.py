"""The threshold base model: needs no weights; "training" searches its parameters."""

from __future__ import annotations

import json
import logging
from collections.abc import Generator, Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from ...types import FitResult, ObjectMeta, Prediction, Progress, Sample
from ..base import TrainableSegmenter, params_from_mapping, params_to_dict
from .params import ThresholdFitParams, ThresholdParams
from .pipeline import object_scores, segment
from .search import search_parameters

logger = logging.getLogger(__name__)


class ThresholdModel(TrainableSegmenter):
    """Threshold + watershed base model; "training" searches its parameters."""

    name = "threshold"
    Params = ThresholdParams
    TrainParams = ThresholdFitParams
    checkpoint_suffix = ".json"

    def predict_iter(
        self, image: np.ndarray, params: ThresholdParams | None = None
    ) -> Generator[Progress, None, Prediction]:
        """Segment a grey ``(Y, X)`` or ``(Z, Y, X)`` image (see :func:`segment`)."""
        params = params or self.params
        yield Progress(0, 2, "thresholding")
        image = np.asarray(image, np.float32)
        labels, diameter = segment(image, params)
        yield Progress(1, 2, f"{labels.max()} objects (diameter {diameter:.0f} px)")
        slices = ndi.find_objects(labels)  # once, for the scores and the boxes
        scores = object_scores(image, labels, slices)
        objects = {
            i: ObjectMeta(i, score=scores[i], box=_box(slices[i - 1]), source=self.name)
            for i in scores
        }
        yield Progress(2, 2, "done")
        return Prediction(labels, objects, source=self.name)

    def fit_iter(
        self, samples: Sequence[Sample], train_params: ThresholdFitParams | None = None
    ) -> Generator[Progress, None, FitResult]:
        """Search the parameters that give the best AP50 on the annotated samples.

        The model keeps the best parameters found (also when the generator is closed early).
        """
        return (yield from search_parameters(self, samples, train_params or ThresholdFitParams()))

    def save(self, path: str | Path) -> Path:
        """Write the parameters as a JSON checkpoint (atomically)."""
        from ...io.writers import atomic_write_text

        payload = {"model": self.name, "format": 1, "params": params_to_dict(self.params)}
        path = Path(path)
        atomic_write_text(path, json.dumps(payload, indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> ThresholdModel:
        """Read a checkpoint written by :meth:`save`.

        Raises
        ------
        ValueError
            If the file is not a threshold checkpoint.
        """
        path = Path(path)
        try:
            payload = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"Cannot read threshold checkpoint {path}: {err}") from err
        if not isinstance(payload, dict) or payload.get("model") != cls.name:
            raise ValueError(
                f"{path} is not a threshold checkpoint (written by 'cellist train --model threshold')."
            )
        return cls(params_from_mapping(ThresholdParams, payload.get("params")))


def _box(slices: tuple[slice, ...]) -> tuple[int, ...]:
    """Half-open ``(min..., max...)`` box of find_objects slices (as ``bounding_boxes``)."""
    return tuple(s.start for s in slices) + tuple(s.stop for s in slices)
