"""Pre-labelling for the Project panel: the prediction job of one image with the project's models.

A model is used in its **current** version (:meth:`ProjectStore.current_model_version`: the
newest version the learning loop did not keep back), else as the base model. The job is built
on the GUI thread (the model names read from the panel) and run in a worker.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from ..project_queue import ProjectQueue
from ..types import Progress


def model_for(store: Any, name: str) -> tuple[Any, int | None]:
    """The project's model ``name``: its current version if it has one with weights, else the
    base model; and that version's id (None for the base model)."""
    from ..models import build_model

    record = store.current_model_version(name)
    if record is not None and record.checkpoint_path:
        return build_model(name, record.checkpoint_path), record.id
    return build_model(name), None


def prediction_job(
    store: Any, image_id: int, model_name: str, refine_name: str
) -> Callable[[], Generator[Progress, None, Any]]:
    """The job that predicts ``image_id`` with ``model_name`` (refined by ``refine_name``
    unless ``"none"``) and stores the prediction; the models are built in the worker."""

    def job() -> Generator[Progress, None, Any]:
        model, version = model_for(store, model_name)
        refine, refine_version = (None, None)
        if refine_name != "none":
            refine, refine_version = model_for(store, refine_name)
        return (
            yield from ProjectQueue(store).predict(
                image_id,
                model,
                model_version=version,
                refine=refine,
                refine_version=refine_version,
            )
        )

    return job


__all__ = ["model_for", "prediction_job"]
