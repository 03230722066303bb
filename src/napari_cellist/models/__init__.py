"""The one registry of models: what callers read to list, describe and build a model.

Each :class:`ModelEntry` states a model's capabilities (kind, trainable, takes prompts,
checkpoint suffix, the training-steps field) and where its classes live, so listing models and
building their parameter forms never imports the heavy libraries (torch, Pyro, Cellpose): the
model class itself is imported only by :func:`get_model_class` / :func:`build_model`.

Callers use:

* :func:`get_entry` / :data:`REGISTRY` for capabilities, :func:`available_models` and
  :func:`trainable_models` for lists of names;
* :func:`params_class` / :func:`train_params_class` for the parameter dataclasses (forms, CLI
  ``--param`` checks);
* :func:`build_model` to get a ready model from a name, an optional checkpoint and overrides.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .base import (
    Segmenter,
    TrainableSegmenter,
    WeightsNotFoundError,
    non_default_values,
    params_from_mapping,
)


@dataclass(frozen=True)
class ModelEntry:
    """A registered model and its capabilities.

    Parameters
    ----------
    name : str
        Registry key (``--model`` on the command line, the widgets' model choice).
    target : str
        ``"module:Class"`` of the model class, the module relative to this package (or absolute
        for models of other packages); imported only when the model is built.
    kind : str
        ``"base"`` (Base model widget) or ``"target"`` (Target model widget).
    description : str
        One line for lists and help texts.
    extra : str
        pip extra that installs its dependencies (``""`` for none).
    params : str
        ``"module:Class"`` of its prediction parameters dataclass; the module must not import
        the heavy libraries, so forms are built without them.
    train_params : str
        ``"module:Class"`` of its training parameters; ``""`` for models that cannot be trained.
    takes_prompts : bool
        The model refines a label map given as prompts (``refine_iter``; ``cellist predict
        --prompts-from``).
    checkpoint_suffix : str
        File suffix of the checkpoints it saves (model versions are written with it).
    steps_field : str
        Field of the training parameters that ``cellist train --steps`` sets (``""``: none).
    """

    name: str
    target: str
    kind: str
    description: str
    extra: str = ""
    params: str = ""
    train_params: str = ""
    takes_prompts: bool = False
    checkpoint_suffix: str = ".ckpt"
    steps_field: str = ""

    @property
    def trainable(self) -> bool:
        """Whether the model can be fitted / trained (it has training parameters)."""
        return bool(self.train_params)


REGISTRY: dict[str, ModelEntry] = {
    "threshold": ModelEntry(
        "threshold",
        "threshold.model:ThresholdModel",
        "base",
        "Intensity threshold + distance-transform watershed (no weights needed).",
        "",
        params="threshold.params:ThresholdParams",
        train_params="threshold.params:ThresholdFitParams",
        checkpoint_suffix=".json",
        steps_field="max_candidates",
    ),
    "sam": ModelEntry(
        "sam",
        "sam.model:SamModel",
        "base",
        "Segment Anything: segment everything, refine objects by their boxes, interactive clicks (needs a checkpoint).",
        "sam",
        params="sam.params:SamParams",
        takes_prompts=True,
        checkpoint_suffix=".pth",
    ),
    "cellpose": ModelEntry(
        "cellpose",
        "cellpose_adapter.model:CellposeModel",
        "base",
        "Cellpose 3 (cyto3, nuclei or your own network): trainable on your annotations, 2D and 3D.",
        "cellpose",
        params="cellpose_adapter.params:CellposeParams",
        train_params="cellpose_adapter.params:CellposeTrainParams",
        steps_field="n_epochs",
    ),
    "air": ModelEntry(
        "air",
        "air.model:AirModel",
        "target",
        "Attend-Infer-Repeat (Pyro): learns from your images, semi-supervised by your corrections.",
        "air",
        params="air.params:AirParams",
        train_params="air.params:AirTrainParams",
        steps_field="steps",
    ),
}


class ModelUnavailableError(ImportError):
    """The model's optional dependencies are not installed; the message says how to get them."""


def register(entry: ModelEntry) -> None:
    """Add or replace a model in the registry."""
    REGISTRY[entry.name] = entry


def available_models() -> list[str]:
    """Registered model names, in registration order."""
    return list(REGISTRY)


def trainable_models(kinds: Iterable[str] | None = None) -> list[str]:
    """Names of the trainable models (of the given kinds), read from the registry alone."""
    wanted = None if kinds is None else set(kinds)
    return [n for n, e in REGISTRY.items() if e.trainable and (wanted is None or e.kind in wanted)]


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not registered.
    """
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"Unknown model {name!r}; choose one of {', '.join(REGISTRY)}.") from None


def _module_path(module: str) -> str:
    """Absolute module name of a target's module: relative to this package when it names one of
    its subpackages (``"air.model"``), else as given (a model of another package)."""
    first = module.split(".")[0]
    return f"{__name__}.{module}" if importlib.util.find_spec(f"{__name__}.{first}") else module


def _import(entry: ModelEntry, target: str) -> Any:
    """The object ``"module:Name"`` of ``entry``; a missing optional dependency is reported with
    the pip command that installs it."""
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(_module_path(module_name))
    except ImportError as err:
        hint = f"pip install 'napari-cellist[{entry.extra}]'" if entry.extra else "reinstall"
        raise ModelUnavailableError(
            f"Model {entry.name!r} needs packages that are not installed ({err}). Install them with: {hint}"
        ) from err
    return getattr(module, attr)


def get_model_class(name: str) -> type[Segmenter]:
    """Import and return the class of a registered model.

    Raises
    ------
    ValueError
        If ``name`` is not registered.
    ModelUnavailableError
        If its optional dependencies are missing.
    """
    entry = get_entry(name)
    return _import(entry, entry.target)


def params_class(name: str) -> type:
    """The prediction parameters dataclass of ``name``, imported without the model's heavy
    libraries (falls back to the model class's ``Params`` when the entry names none)."""
    entry = get_entry(name)
    return _import(entry, entry.params) if entry.params else get_model_class(name).Params


def train_params_class(name: str) -> type:
    """The training parameters dataclass of ``name`` (see :func:`params_class`).

    Raises
    ------
    ValueError
        If the model cannot be trained.
    """
    entry = get_entry(name)
    if not entry.trainable:
        raise ValueError(
            f"Model {name!r} cannot be trained; trainable: {', '.join(trainable_models())}."
        )
    return _import(entry, entry.train_params)


def check_keys(params_type: type, values: Mapping[str, Any], what: str = "parameter") -> None:
    """Raise ValueError naming the keys of ``values`` that are not fields of ``params_type``."""
    known = {f.name for f in fields(params_type)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"Unknown {what} {', '.join(unknown)}; {params_type.__name__} has: {', '.join(sorted(known))}."
        )


def build_model(
    name: str,
    checkpoint: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Segmenter:
    """A ready model of ``name``: from ``checkpoint`` if given, with ``overrides`` on top.

    The rule, the same for the command line and the widgets: a checkpoint's stored prediction
    parameters are the base and the explicit ``overrides`` (``cellist predict --param``, the
    fields a widget form changed from their defaults) win on top of them. Without a checkpoint
    the base is the parameters' defaults.

    Parameters
    ----------
    name : str
        Registered model name.
    checkpoint : str or Path, optional
        Checkpoint / weights file of the model (threshold JSON, Cellpose model file, SAM ``.pth``,
        AIR checkpoint).
    overrides : mapping, optional
        ``{field: value}`` of prediction parameters; values may be text (``"true"``, ...).

    Raises
    ------
    ValueError
        If ``name`` is unknown, an override names no parameter or has an unusable value.
    FileNotFoundError
        If ``checkpoint`` does not exist.
    ModelUnavailableError
        If the model's optional dependencies are missing.
    """
    cls = get_model_class(name)
    values = dict(overrides or {})
    check_keys(cls.Params, values)
    if checkpoint is None or str(checkpoint) == "":
        return cls(params_from_mapping(cls.Params, values))
    if not Path(checkpoint).exists():
        raise FileNotFoundError(f"Checkpoint {checkpoint} does not exist.")
    model = cls.from_checkpoint(checkpoint)
    stored = {f.name: getattr(model.params, f.name) for f in fields(model.params)}
    model.params = params_from_mapping(cls.Params, {**stored, **values})
    return model


def create_model(name: str, params: Any = None) -> Segmenter:
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
    "build_model",
    "check_keys",
    "create_model",
    "get_entry",
    "get_model_class",
    "non_default_values",
    "params_class",
    "register",
    "train_params_class",
    "trainable_models",
]
