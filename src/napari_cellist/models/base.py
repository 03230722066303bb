"""The one small interface every model implements.

A model is a class with

* ``name`` (registry key), ``Params`` (a frozen dataclass of prediction parameters, whose field
  names and defaults the widgets and the CLI use);
* ``predict_iter(image, params) -> Generator[Progress, None, Prediction]`` and ``predict``;
* for models that take prompts (``takes_prompts`` on the registry entry) ``refine_iter(image,
  prompt_labels)``;
* for trainable models additionally ``TrainParams``, ``fit_iter(samples, train_params)`` (yields
  Progress with the loss, returns a :class:`~napari_cellist.types.FitResult` and leaves the model
  fitted), ``save(path)`` (atomic) and the class method ``load(path)``.

What a model can do (kind, trainable, prompts, checkpoint suffix...) is stated once, on its
:class:`~napari_cellist.models.ModelEntry` in the registry; callers read it there.

Parameter dataclasses describe themselves for the GUI and the CLI: each field may carry
``metadata={"help": "...", "advanced": True, "choices": (...), "min": 0, "max": 10}``; the widgets
build their controls (tooltips, an "Advanced" fold) and the CLI its ``--param`` help from it.

Images given to ``predict`` are grey, spatial ``(Y, X)`` or ``(Z, Y, X)``, finite, any real
dtype; :func:`napari_cellist.images.prepare_grey` turns what the user has into that.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Generator, Mapping, Sequence
from dataclasses import Field, asdict, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..downloads import WeightsNotFoundError as WeightsNotFoundError  # re-exported
from ..progress import drain
from ..types import FitResult, Prediction, Progress, Sample


def params_from_mapping(params_type: type, values: Mapping[str, Any] | None) -> Any:
    """Build a params dataclass from a mapping, ignoring unknown keys.

    Raises
    ------
    ValueError
        If a value cannot be used for its field (the message names the field).
    """
    if values is None:
        return params_type()
    known = {f.name: f for f in fields(params_type)}
    kwargs = {k: _coerce_bool(known[k], v) for k, v in values.items() if k in known}
    try:
        return params_type(**kwargs)
    except TypeError as err:
        raise ValueError(f"Invalid parameters for {params_type.__name__}: {err}") from err


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _coerce_bool(field: Field, value: Any) -> Any:
    """A yes/no field given as text ("False", "no", "0"...) becomes a bool; anything but a
    recognised word is an error rather than a string that would count as true."""
    if field.type not in (bool, "bool") or isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ValueError(f"Parameter '{field.name}' is true or false, got {value!r}.")


def non_default_values(params: Any) -> dict[str, Any]:
    """``{field: value}`` of the fields of a params dataclass that differ from their defaults
    (what a user changed in a form: the overrides of :func:`~napari_cellist.models.build_model`)."""
    defaults = type(params)()
    return {
        f.name: getattr(params, f.name)
        for f in fields(params)
        if getattr(params, f.name) != getattr(defaults, f.name)
    }


def params_to_dict(params: Any) -> dict[str, Any]:
    """JSON-friendly dict of a params dataclass."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(params).items()}


class Segmenter(ABC):
    """A model that turns an image into a :class:`Prediction`."""

    name: ClassVar[str] = ""
    Params: ClassVar[type]

    def __init__(self, params: Any | None = None) -> None:
        self.params = params if params is not None else self.Params()

    @abstractmethod
    def predict_iter(
        self, image: np.ndarray, params: Any | None = None
    ) -> Generator[Progress, None, Prediction]:
        """Predict, yielding progress; returns the Prediction.

        Parameters
        ----------
        image : np.ndarray
            Grey image ``(Y, X)`` or ``(Z, Y, X)``.
        params : Params, optional
            Overrides the model's own parameters for this call.
        """

    def predict(self, image: np.ndarray, params: Any | None = None) -> Prediction:
        """Predict synchronously (drains :meth:`predict_iter`)."""
        return drain(self.predict_iter(image, params))

    def refine_iter(
        self, image: np.ndarray, prompt_labels: np.ndarray, params: Any | None = None
    ) -> Generator[Progress, None, Prediction]:
        """Replace every object of the int label map ``prompt_labels`` (the image's spatial
        shape) by the model's own mask for it; only models registered with ``takes_prompts``.

        Raises
        ------
        ValueError
            For models that take no prompts.
        """
        raise ValueError(f"Model {self.name!r} does not take prompts; drop --prompts-from.")

    def downloads_needed(self, params: Any | None = None) -> tuple[str, ...]:
        """Registry names (:mod:`napari_cellist.downloads`) of the pretrained files the current
        parameters need, required ones first; the command line fetches them with a progress bar
        before it starts (the models themselves fetch them on first use too)."""
        return ()

    @classmethod
    def from_checkpoint(cls, path: str | Path, params: Any | None = None) -> Segmenter:
        """Model built from a checkpoint / weights file (trainable models: :meth:`load`).

        Raises
        ------
        ValueError
            For models that take no checkpoint.
        """
        raise ValueError(f"Model {cls.name!r} takes no checkpoint file.")


class TrainableSegmenter(Segmenter):
    """A segmenter that can be fitted to annotated (and unannotated) samples."""

    TrainParams: ClassVar[type]

    @abstractmethod
    def fit_iter(
        self, samples: Sequence[Sample], train_params: Any | None = None
    ) -> Generator[Progress, None, FitResult]:
        """Fit to ``samples``, yielding Progress (with loss); returns the FitResult."""

    @abstractmethod
    def save(self, path: str | Path) -> Path:
        """Write a checkpoint atomically; returns the path written."""

    @classmethod
    @abstractmethod
    def load(cls, path: str | Path) -> TrainableSegmenter:
        """Load a checkpoint written by :meth:`save` (on the CPU)."""

    @classmethod
    def from_checkpoint(cls, path: str | Path, params: Any | None = None) -> TrainableSegmenter:
        """Load a checkpoint; ``params`` (if given) replace its prediction parameters."""
        model = cls.load(path)
        if params is not None:
            model.params = params
        return model
