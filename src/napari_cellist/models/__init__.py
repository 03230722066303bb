"""The one registry of models: name -> (import path of the class, description).

Heavy libraries are imported only when a model class is looked up (:func:`get_model_class`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from .base import Segmenter, TrainableSegmenter, WeightsNotFoundError


@dataclass(frozen=True)
class ModelEntry:
    """A registered model."""

    name: str
    target: str  # "module:Class", relative to this package
    kind: str  # "base" or "target"
    description: str
    extra: str  # pip extra that installs its dependencies ("" for none)


REGISTRY: dict[str, ModelEntry] = {
    "threshold": ModelEntry(
        "threshold",
        "threshold:ThresholdModel",
        "base",
        "Intensity threshold + distance-transform watershed (no weights needed).",
        "",
    ),
    "sam": ModelEntry(
        "sam",
        "sam:SamSegmenter",
        "base",
        "Segment Anything: segment everything, refine objects by their boxes, interactive clicks (needs a checkpoint).",
        "sam",
    ),
    "cellpose": ModelEntry(
        "cellpose",
        "cellpose_adapter:CellposeSegmenter",
        "base",
        "Cellpose 3 (cyto3, nuclei or your own network): trainable on your annotations, 2D and 3D.",
        "cellpose",
    ),
    "air": ModelEntry("air", "air:AirModel", "target", "Attend-Infer-Repeat (Pyro): learns from your images, semi-supervised by your corrections.", "air"),
}


class ModelUnavailableError(ImportError):
    """The model's optional dependencies are not installed; the message says how to get them."""


def register(entry: ModelEntry) -> None:
    """Add or replace a model in the registry."""
    REGISTRY[entry.name] = entry


def available_models() -> list[str]:
    """Registered model names, in registration order."""
    return list(REGISTRY)


def get_model_class(name: str) -> type[Segmenter]:
    """Import and return the class of a registered model.

    Raises
    ------
    ValueError
        If ``name`` is not registered.
    ModelUnavailableError
        If its optional dependencies are missing.
    """
    try:
        entry = REGISTRY[name]
    except KeyError:
        raise ValueError(f"Unknown model {name!r}; choose one of {', '.join(REGISTRY)}.") from None
    module_name, class_name = entry.target.split(":")
    try:
        module = importlib.import_module(f"{__name__}.{module_name}")
    except ImportError as err:
        hint = f"pip install 'napari-cellist[{entry.extra}]'" if entry.extra else "reinstall"
        raise ModelUnavailableError(
            f"Model {name!r} needs packages that are not installed ({err}). Install them with: {hint}"
        ) from err
    return getattr(module, class_name)


def create_model(name: str, params=None) -> Segmenter:
    """Instantiate a registered model with its default (or given) parameters."""
    return get_model_class(name)(params)


__all__ = [
    "REGISTRY",
    "ModelEntry",
    "ModelUnavailableError",
    "Segmenter",
    "TrainableSegmenter",
    "WeightsNotFoundError",
    "available_models",
    "create_model",
    "get_model_class",
    "register",
]
