"""Per-viewer labelling state, without Qt: which prediction each image got, the last synced
polygons, the project store, and the commit / restore / training-data operations on them.

A :class:`LabellingSession` is passed to the widgets (one per viewer), never a hidden global.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .labels import remove_labels
from .sync import apply_polygon_edits, polygon_edits
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
    synced_centres: frozenset[int] = frozenset()  # object ids that had a centre point
    image_id: int | None = None
    model_version: int | None = None
    committed: bool = False  # the layers show annotations that are in the project store
    #: the store's commit the shown annotations start from (read before they were loaded, or
    #: the session's own last commit); None: the image had no commit then
    based_on: int | None = None
    knows_base: bool = False  # False: never restored nor committed here, no stale check


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

    def project_exists(self) -> bool:
        """True when the store is open or its folder / file exists (database URLs: True)."""
        if self._store is not None or "://" in str(self.project):
            return True
        return Path(self.project).exists()

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

    def record_prediction(self, image_name: str, prediction: Prediction, copy: bool = True) -> None:
        """Remember a model output, to log the corrections made to it at commit.

        ``copy=False`` keeps ``prediction.labels`` itself (int32 kept as is): for a caller
        that handed napari another array, so that painting cannot change it.
        """
        state = self.state(image_name)
        labels = np.asarray(prediction.labels, np.int32)
        state.prediction = labels.copy() if copy else labels
        state.model_version = prediction.model_version
        state.committed = False

    def mark_committed(self, image_name: str) -> None:
        """The layers of an image show annotations stored in the project (committed/restored)."""
        self.state(image_name).committed = True

    def unsaved_work(
        self,
        image_name: str,
        labels: np.ndarray | None,
        polygons: Sequence[tuple[int, np.ndarray]] = (),
    ) -> str | None:
        """What a new prediction would replace, in words; None when nothing would be lost.

        Parameters
        ----------
        labels : np.ndarray or None
            The image's current int label map ``(Y, X)`` / ``(Z, Y, X)`` (None: no labels).
        polygons : sequence of (id, (N, 2) vertices)
            The polygons shown now, to notice edits not yet applied to the labels.
        """
        if labels is None:
            return None
        state = self.state(image_name)
        if state.committed:
            return "the committed annotations"
        labels = np.asarray(labels)
        if state.prediction is None:
            return "annotations that no model predicted" if labels.any() else None
        if state.prediction.shape != labels.shape or not np.array_equal(state.prediction, labels):
            return "your edits to the labels"
        if polygon_edits(polygons, state.synced_polygons, set(state.synced_polygons)).any:
            return "your edits to the polygons"
        return None

    def mark_synced(
        self, image_name: str, polygons: Mapping[int, np.ndarray], centre_ids: Iterable[int]
    ) -> None:
        """Remember the polygons and centres as shown, to tell the user's edits later."""
        state = self.state(image_name)
        state.synced_polygons = {k: np.asarray(v, float) for k, v in polygons.items()}
        state.synced_centres = frozenset(int(i) for i in centre_ids if i > 0)

    def sync(
        self,
        image_name: str,
        labels: np.ndarray,
        polygons: Sequence[tuple[int, np.ndarray]],
        centre_ids: Iterable[int] = (),
    ) -> np.ndarray:
        """Labels with the user's polygon edits and deleted centre points applied.

        Deleting an object's centre point deletes the object; polygon edits win for the objects
        they touch (2D). Call :meth:`mark_synced` once the layers show the result.
        """
        state = self.state(image_name)
        labels = np.asarray(labels, np.int32)
        deleted = state.synced_centres - {int(i) for i in centre_ids}
        if deleted:
            labels = remove_labels(labels, deleted)
        if labels.ndim != 2:
            return labels
        return apply_polygon_edits(labels, polygons, state.synced_polygons)[0]

    def commit(
        self,
        image_name: str,
        image: np.ndarray,
        labels: np.ndarray,
        objects: Mapping[int, ObjectMeta],
        path: str | Path | None = None,
        polygons: Mapping[int, np.ndarray] | None = None,
        points: np.ndarray | None = None,
    ) -> Any:
        """Store the corrected annotations of an image in one transaction.

        ``points`` are ``(N, ndim)`` marks of objects without a mask. Returns the store's
        CommitResult (ids, object count, corrections).
        """
        state = self.state(image_name)
        record = self.store.add_image(image, path=self._same_file(image, path), name=image_name)
        state.image_id = record.id
        previous = state.prediction
        if previous is not None and previous.shape != labels.shape:
            previous = None
        base = {"based_on": state.based_on} if state.knows_base else {}
        with warnings.catch_warnings():  # a stale commit is flagged on the result instead
            warnings.simplefilter("ignore", UserWarning)
            result = self.store.commit_annotations(
                record.id,
                np.asarray(labels, np.int32),
                objects,
                previous=previous,
                polygons=polygons,
                points=points,
                **base,
            )
        state.committed = True
        state.based_on, state.knows_base = result.commit_id, True
        if getattr(result, "stale", False):
            logger.warning(
                "%s had been committed elsewhere (commit %s) since these annotations were "
                "loaded (commit %s); this commit replaced it.",
                image_name,
                result.replaced,
                result.based_on,
            )
        logger.info(
            "Committed %d objects of %s: %s",
            result.n_objects,
            image_name,
            result.corrections.summary(),
        )
        return result

    def _same_file(self, image: np.ndarray, path: str | Path | None) -> str | Path | None:
        """``path`` if that file still holds these pixels, else None (the store keeps a copy)."""
        from .io import ImageReadError, read_image
        from .store import ProjectStore

        if path is None:
            return None
        digest = ProjectStore.hash_image(image)
        if self.store.find_image(content_hash=digest):
            return path
        try:
            on_disk = np.asarray(read_image(path).data)
        except (ImageReadError, OSError):
            return None
        return path if ProjectStore.hash_image(on_disk) == digest else None

    def restore(
        self, image: np.ndarray, image_name: str | None = None
    ) -> tuple[np.ndarray, dict[int, ObjectMeta], np.ndarray | None] | None:
        """The committed labels, objects and extra points of an image with these pixels, if any.

        With ``image_name``, the commit they come from is remembered (read before the
        annotations), so that committing them later over someone else's newer commit is
        reported as stale (:attr:`CommitResult.stale`) rather than silently winning.
        """
        from .store import ProjectStore

        found = self.store.find_image(content_hash=ProjectStore.hash_image(image))
        if found is None:
            return None
        current = self.store.current_commit(found.id)
        annotations = self.store.load_annotations(found.id)
        if annotations is not None and image_name is not None:
            state = self.state(image_name)
            state.image_id = found.id
            state.based_on = None if current is None else current.id
            state.knows_base = True
        if annotations is None:
            return None
        return (*annotations, self.store.load_points(found.id))

    def add_model_version(
        self, name: str, result: Any, checkpoint: Path, parent_id: int | None
    ) -> Any:
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
