"""Per-viewer labelling state, without Qt: which prediction each image got, the last synced
polygons, the project store, and the commit / restore / training-data operations on them.

A :class:`LabellingSession` is passed to the widgets (one per viewer), never a hidden global.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .sync import reconcile
from .types import ObjectMeta, Prediction, Sample

logger = logging.getLogger(__name__)

DEFAULT_PROJECT_ENV = "CELLIST_PROJECT"


def default_project_location() -> Path:
    """``$CELLIST_PROJECT`` or ``~/cellist-project`` (a folder holding ``cellist.sqlite``)."""
    return Path(os.environ.get(DEFAULT_PROJECT_ENV, Path.home() / "cellist-project"))


@dataclass
class ImageState:
    """What the session knows about one image layer."""

    name: str
    prediction: np.ndarray | None = None  # the last model output, to log corrections against
    synced_polygons: dict[int, np.ndarray] = field(default_factory=dict)
    image_id: int | None = None
    model_version: int | None = None


class LabellingSession:
    """State shared by the dock widgets of one viewer.

    Parameters
    ----------
    project : str or Path, optional
        Project store location (folder, SQLite file or database URL); opened on first use.
    tolerance : float
        Polygon simplification in pixels.
    """

    def __init__(self, project: str | Path | None = None, tolerance: float = 1.0) -> None:
        self.project = project if project is not None else default_project_location()
        self.tolerance = tolerance
        self._store: Any = None
        self._images: dict[str, ImageState] = {}
        #: called with (model name, version id) when a model version is added
        self.version_listeners: list[Callable[[str, int], None]] = []

    # -- store ---------------------------------------------------------------------------------
    @property
    def store(self) -> Any:
        """The open :class:`~napari_cellist.store.ProjectStore` (opened on first access)."""
        if self._store is None:
            from .store import ProjectStore

            self._store = ProjectStore(self.project)
        return self._store

    def open_project(self, location: str | Path) -> None:
        """Switch to another project store (closing the current one)."""
        self.close()
        self.project = location
        for state in self._images.values():
            state.image_id = None  # ids belong to the previous store

    def close(self) -> None:
        """Close the store connection."""
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- per image -----------------------------------------------------------------------------
    def state(self, image_name: str) -> ImageState:
        """The state of an image layer (created empty on first use)."""
        return self._images.setdefault(image_name, ImageState(image_name))

    def record_prediction(
        self, image_name: str, prediction: Prediction, polygons: Mapping[int, np.ndarray]
    ) -> None:
        """Remember a model output (for the corrections log) and the polygons shown for it."""
        state = self.state(image_name)
        state.prediction = np.asarray(prediction.labels, np.int32).copy()
        state.synced_polygons = {k: np.asarray(v, float) for k, v in polygons.items()}
        state.model_version = prediction.model_version

    def sync(
        self, image_name: str, labels: np.ndarray, polygons: Sequence[tuple[int, np.ndarray]]
    ) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """Apply polygon edits to the labels and regenerate the polygons (2D)."""
        state = self.state(image_name)
        if labels.ndim != 2:
            return np.asarray(labels, np.int32), {}
        merged, new_polygons = reconcile(labels, polygons, state.synced_polygons, self.tolerance)
        state.synced_polygons = new_polygons
        return merged, new_polygons

    def commit(
        self,
        image_name: str,
        image: np.ndarray,
        labels: np.ndarray,
        objects: Mapping[int, ObjectMeta],
        path: str | Path | None = None,
        polygons: Mapping[int, np.ndarray] | None = None,
    ) -> Any:
        """Store the corrected annotations of an image in one transaction.

        Returns the store's CommitResult (ids, object count, corrections).
        """
        state = self.state(image_name)
        record = self.store.add_image(image, path=path, name=image_name)
        state.image_id = record.id
        previous = (
            state.prediction
            if state.prediction is not None and state.prediction.shape == labels.shape
            else None
        )
        result = self.store.commit_annotations(
            record.id, np.asarray(labels, np.int32), objects, previous=previous, polygons=polygons
        )
        logger.info(
            "Committed %d objects of %s: %s",
            result.n_objects,
            image_name,
            result.corrections.summary(),
        )
        return result

    def restore(self, image: np.ndarray) -> tuple[np.ndarray, dict[int, ObjectMeta]] | None:
        """The committed annotations of an image with these pixels, if any."""
        from .store import ProjectStore

        found = self.store.find_image(content_hash=ProjectStore.hash_image(image))
        return None if found is None else self.store.load_annotations(found.id)

    def add_model_version(self, name: str, result: Any, checkpoint: Path, parent_id: int | None) -> Any:
        """Record a fitted model in the store and tell the listeners (e.g. the Base model widget)."""
        record = self.store.add_model_version(
            name,
            dict(result.params),
            parent_id=parent_id,
            data_used=list(result.data_used),
            metrics=dict(result.metrics),
            checkpoint_path=str(checkpoint),
        )
        for listener in list(self.version_listeners):
            listener(name, record.id)
        return record

    def training_samples(self) -> list[Sample]:
        """Every committed image with its label map."""
        return self.store.annotated_samples()
