"""The images of a project as a work queue: status table, order, what to open and prefetch.

Pure core over a :class:`~napari_cellist.store.ProjectStore`: the Project panel widget shows
:meth:`ProjectQueue.rows`, runs :meth:`ProjectQueue.add` in a worker (a generator of
:class:`~napari_cellist.types.Progress`), opens what :meth:`ProjectQueue.open_image` returns,
asks :meth:`ProjectQueue.next_image` / :meth:`ProjectQueue.previous_image` on Next / Previous
(:meth:`ProjectQueue.next_most_useful` / :meth:`ProjectQueue.useful_order` for "next most
useful"), predicts :meth:`ProjectQueue.prefetch_candidate` in the background with
:meth:`ProjectQueue.current_model` (the current, not rejected, model version); ``cellist
project status`` prints the same rows (:func:`napari_cellist.project_cli.status_table`).

Opening an image shows, in this order of preference, its draft, its committed annotations, its
latest prediction; an image with none of them needs a prediction (:data:`OPEN_ORDER`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .store import STATUSES, ImageStatus, PredictionRecord, ProjectStore
from .types import ObjectMeta, Progress

if TYPE_CHECKING:
    from .what_next import Usefulness

logger = logging.getLogger(__name__)

#: What :meth:`ProjectQueue.open_image` shows, in order of preference.
OPEN_ORDER = ("draft", "committed", "prediction", "none")
#: Columns :meth:`ProjectQueue.rows` sorts by (``"order"``: the order images were added).
SORT_KEYS = ("order", "name", "status", "objects", "model", "corrections", "last_change")


@dataclass(frozen=True)
class OpenedImage:
    """What to show for an image when it is opened.

    Parameters
    ----------
    image_id : int
        The image.
    source : str
        One of :data:`OPEN_ORDER`: ``"draft"``, ``"committed"``, ``"prediction"`` or ``"none"``
        (nothing stored: predict it, see ``needs_prediction``).
    labels : np.ndarray or None
        int32 label map ``(Y, X)`` / ``(Z, Y, X)``; None when ``source == "none"``.
    objects : dict
        Metadata by label id (scores, classes; empty when unknown).
    polygons : dict or None
        ``{label_id: (N, 2) (row, col)}`` outlines when stored (draft / commit); None: trace
        them (e.g. :func:`napari_cellist.live_sync.full_sync`).
    points : np.ndarray or None
        Stored point annotations ``(N, ndim)``.
    based_on_commit : int or None
        The image's latest commit when it was opened: pass it on in every
        :class:`~napari_cellist.store.DraftSnapshot` so a commit made meanwhile is noticed.
    prediction_id : int or None
        The stored prediction shown or corrected, if any (for the drafts' corrections log).
    n_edits : int
        Edits already counted in a draft (0 otherwise).
    """

    image_id: int
    source: str
    labels: np.ndarray | None = None
    objects: dict[int, ObjectMeta] = field(default_factory=dict)
    polygons: dict[int, np.ndarray] | None = None
    points: np.ndarray | None = None
    based_on_commit: int | None = None
    prediction_id: int | None = None
    n_edits: int = 0

    @property
    def needs_prediction(self) -> bool:
        """True when nothing is stored for the image: predict it before editing."""
        return self.source == "none"


@dataclass(frozen=True)
class AddSummary:
    """What :meth:`ProjectQueue.add` did.

    ``added``: new images; ``known``: images already in the project (same pixels);
    ``committed``: masks of ``images/`` + ``masks/`` folders committed as annotations;
    ``failed``: ``(path, one-line reason)`` of files that could not be added.
    """

    added: int = 0
    known: int = 0
    committed: int = 0
    failed: tuple[tuple[str, str], ...] = ()


class ProjectQueue:
    """The images of one project and the order a person works through them.

    Parameters
    ----------
    store : ProjectStore
        The project (read-only is enough for :meth:`rows` and :meth:`open_image`).
    """

    def __init__(self, store: ProjectStore) -> None:
        self.store = store

    # -- the table ---------------------------------------------------------------------------------
    def rows(self, sort_by: str = "order", descending: bool = False) -> list[ImageStatus]:
        """Every image with its status, sorted by one of :data:`SORT_KEYS`.

        Status sorts in :data:`~napari_cellist.store.STATUSES` order (draft, committed,
        predicted, new); missing values (no objects, no model) sort last. Ties keep the order
        the images were added.
        """
        if sort_by not in SORT_KEYS:
            raise ValueError(f"Cannot sort by {sort_by!r}; choose one of {', '.join(SORT_KEYS)}.")
        rows = self.store.image_statuses()
        if sort_by == "order":
            return rows[::-1] if descending else rows
        present = [r for r in rows if _sort_value(r, sort_by) is not None]
        missing = [r for r in rows if _sort_value(r, sort_by) is None]
        present.sort(key=lambda r: _sort_value(r, sort_by), reverse=descending)
        return present + missing

    # -- navigation --------------------------------------------------------------------------------
    def next_image(self, current: int | None, order: Sequence[int] | None = None) -> int | None:
        """The image after ``current`` in ``order`` (the table's ids; default: added order).

        None when ``current`` is the last; the first image when ``current`` is None or not in
        ``order``.
        """
        return _step(self._order(order), current, +1)

    def previous_image(self, current: int | None, order: Sequence[int] | None = None) -> int | None:
        """The image before ``current`` in ``order``; None when it is the first."""
        return _step(self._order(order), current, -1)

    def prefetch_candidate(
        self, current: int | None, order: Sequence[int] | None = None
    ) -> int | None:
        """The next image after ``current`` (in ``order``) with nothing stored: predict it
        ahead so that Next shows a prediction at once. None when every later image has a
        draft, a commit or a prediction."""
        ids = self._order(order)
        status = {r.image_id: r.status for r in self.store.image_statuses()}
        start = ids.index(current) + 1 if current in ids else 0
        return next((i for i in ids[start:] if status.get(i) == "new"), None)

    def useful_order(self) -> list[int]:
        """Image ids most useful to correct first (:func:`napari_cellist.what_next.rank_images`:
        predicted images without annotations by the model's doubt, then unpredicted ones),
        then the images with a draft or a commit in the order added. Pass it as ``order`` to
        :meth:`next_image` / :meth:`prefetch_candidate` for a "next most useful" walk."""
        from .what_next import rank_images

        ranked = [u.image_id for u in rank_images(self.store)]
        seen = set(ranked)
        return ranked + [r.image_id for r in self.store.image_statuses() if r.image_id not in seen]

    def next_most_useful(self, current: int | None = None) -> Usefulness | None:
        """The image without annotations most useful to correct next, other than ``current``
        (None when every image has annotations or a draft)."""
        from .what_next import rank_images

        return next((u for u in rank_images(self.store) if u.image_id != current), None)

    # -- opening -----------------------------------------------------------------------------------
    def open_image(self, image_id: int) -> OpenedImage:
        """What to show for ``image_id``: its draft, else its commit, else its prediction.

        The commit id is read before the annotations (``based_on_commit``), as
        :meth:`~napari_cellist.store.ProjectStore.current_commit` advises.
        """
        store = self.store
        commit = store.current_commit(image_id)
        based_on = None if commit is None else commit.id
        prediction = store.latest_prediction(image_id)
        prediction_id = None if prediction is None else prediction.id
        draft = store.load_draft(image_id)
        if draft is not None:
            snap = draft.snapshot
            objects = self._prediction_objects(image_id)
            for i, name in (snap.classes or {}).items():
                objects[i] = replace(objects.get(i) or ObjectMeta(i), class_name=name)
            return OpenedImage(
                image_id,
                "draft",
                snap.labels,
                dict(objects),
                None if snap.polygons is None else dict(snap.polygons),
                snap.points,
                snap.based_on_commit,
                snap.prediction_id,
                snap.n_edits,
            )
        committed = store.load_annotations(image_id)
        if committed is not None:
            labels, objects = committed
            return OpenedImage(
                image_id,
                "committed",
                labels,
                objects,
                store.load_polygons(image_id),
                store.load_points(image_id),
                based_on,
                prediction_id,
            )
        found = store.load_prediction(image_id)
        if found is not None:
            record, labels, objects = found
            return OpenedImage(
                image_id, "prediction", labels, objects, None, None, based_on, record.id
            )
        return OpenedImage(image_id, "none", based_on_commit=based_on)

    def _prediction_objects(self, image_id: int) -> dict[int, ObjectMeta]:
        found = self.store.load_prediction(image_id)
        return {} if found is None else dict(found[2])

    # -- predicting ---------------------------------------------------------------------------------
    def current_model(
        self, name: str, overrides: Mapping[str, Any] | None = None
    ) -> tuple[Any, int | None]:
        """The project's model ``name`` to predict with and its version id.

        Its *current* version (:meth:`~napari_cellist.store.ProjectStore.current_model_version`:
        the newest one the learning loop did not reject), from its checkpoint; the base model
        (version None) when it has none, or when the checkpoint file is gone. ``overrides``
        are prediction parameters on top (e.g. ``{"device": "cpu"}``).
        """
        from .models import build_model

        record = self.store.current_model_version(name)
        if record is not None and record.checkpoint_path:
            if Path(record.checkpoint_path).is_file():
                return build_model(name, record.checkpoint_path, overrides), record.id
            logger.warning(
                "checkpoint %s of %s v%d is missing: predicting with the base model",
                record.checkpoint_path,
                name,
                record.id,
            )
        return build_model(name, None, overrides), None

    def predict(
        self,
        image_id: int,
        model: Any,
        *,
        model_version: int | None = None,
        refine: Any | None = None,
        refine_version: int | None = None,
        channel: int | None = None,
    ) -> Generator[Progress, None, PredictionRecord]:
        """Predict an image with the project's model and store the prediction (a generator).

        For pre-labelling: run it in a worker for the image being opened and for
        :meth:`prefetch_candidate`, so that Next shows a prediction at once.

        Parameters
        ----------
        image_id : int
            The image (its pixels come from the store or its file).
        model : Segmenter
            The model (``predict_iter``); its ``name`` is recorded with the prediction.
        model_version : int, optional
            Store id of the model's version, recorded with the prediction.
        refine : Segmenter, optional
            A model that takes prompts (``refine_iter``: SAM, AIR...): each object of the first
            prediction is replaced by its mask ("base -> target"); recorded as
            ``"<model> -> <refine>"`` with ``refine_version``.
        refine_version : int, optional
            Store id of the refining model's version.
        channel : int, optional
            Channel to segment in a colour / multi-channel image.

        Yields
        ------
        Progress
            The models' reports, prefixed with the model name.

        Returns
        -------
        PredictionRecord
            The stored prediction (now the image's current one).
        """
        from .images import prepare_grey
        from .progress import relay

        pixels = self.store.load_pixels(image_id)
        rgb = pixels.ndim == 3 and pixels.shape[-1] in (3, 4) and channel is None
        grey = prepare_grey(pixels, rgb=rgb, channel=channel)
        prediction = yield from relay(model.predict_iter(grey), prefix=f"{model.name}: ")
        name, version = str(model.name), model_version
        if refine is not None:
            prediction = yield from relay(
                refine.refine_iter(grey, prediction.labels), prefix=f"{refine.name}: "
            )
            name, version = f"{model.name} -> {refine.name}", refine_version
        return self.store.save_prediction(
            image_id, prediction.labels, prediction.objects, name, version
        )

    # -- adding images -----------------------------------------------------------------------------
    def add(self, paths: Sequence[str | os.PathLike]) -> Generator[Progress, None, AddSummary]:
        """Add image files and folders to the project (a generator: run it in a worker).

        A folder adds its image files; an ``images/`` + ``masks/`` folder adds its images and
        commits each image's mask (``masks/<same name>``) as its annotations, so that the
        image's status is ``committed``. An image already in the project (same pixels) is not
        added again, and a mask is not committed again over an image that has a commit.

        Yields
        ------
        Progress
            One per file (``step`` of ``total``, the file name as message).

        Returns
        -------
        AddSummary
            Counts, and the files that failed with a one-line reason each (the others are
            added regardless).

        Raises
        ------
        ImageReadError
            A path that does not exist or is not an image file or folder (nothing was added).
        """
        from .io import list_images

        files = list_images(list(paths))
        added = known = committed = 0
        failed: list[tuple[str, str]] = []
        for step, path in enumerate(files, start=1):
            yield Progress(step, len(files), path.name)
            try:
                is_new, did_commit = self._add_file(path)
            except Exception as error:  # noqa: BLE001 - one bad file must not stop the others
                failed.append((str(path), _one_line(error)))
                logger.warning("could not add %s: %s", path, error)
                continue
            added += is_new
            known += not is_new
            committed += did_commit
        summary = AddSummary(added, known, committed, tuple(failed))
        logger.info("added %s to %s", summary, self.store.location)
        return summary

    def _add_file(self, path: Path) -> tuple[bool, bool]:
        """Add one image (and commit its mask); (newly added, mask committed)."""
        from .io import read_image, read_mask
        from .io._formats import find_mask
        from .store.pixels import as_pixel_array, hash_image

        image = read_image(path)
        data = np.asarray(image.data)
        is_new = self.store.find_image(content_hash=hash_image(as_pixel_array(data))) is None
        record = self.store.add_image(data, path=path)
        masks = path.parent.parent / "masks"
        mask_path = (
            find_mask(masks, path) if path.parent.name == "images" and masks.is_dir() else None
        )
        if mask_path is None or self.store.current_commit(record.id) is not None:
            return is_new, False
        mask = read_mask(mask_path, image.spatial_shape)
        # imported annotations, not corrections: diffed to themselves, nothing is logged
        self.store.commit_annotations(
            record.id, mask, previous=mask, based_on=None, on_stale="refuse"
        )
        return is_new, True

    def _order(self, order: Sequence[int] | None) -> list[int]:
        if order is not None:
            return [int(i) for i in order]
        return [r.image_id for r in self.store.image_statuses()]


def _sort_value(row: ImageStatus, key: str) -> Any:
    return {
        "name": row.name.lower(),
        "status": STATUSES.index(row.status),
        "objects": row.n_objects,
        "model": row.model_name,
        "corrections": row.n_corrections,
        "last_change": row.last_change,
    }[key]


def _step(ids: list[int], current: int | None, delta: int) -> int | None:
    if not ids:
        return None
    if current not in ids:
        return ids[0] if delta > 0 else ids[-1]
    index = ids.index(current) + delta
    return ids[index] if 0 <= index < len(ids) else None


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
