"""Work in progress on a project's images: stored predictions, drafts and per-image status.

The dataset workflow (:mod:`napari_cellist.project_queue`) keeps, per image, the latest
prediction with the model that made it and at most one *draft*: the uncommitted edits, saved
every second or so by :class:`napari_cellist.drafts.DraftWriter` so that a crash loses nothing
older than that. :meth:`~napari_cellist.store.ProjectStore.commit_draft` promotes a draft.
"""

from __future__ import annotations

import io
import logging
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ..types import DEFAULT_CLASS, ObjectMeta
from . import encoding as ann
from .history import CommitHistoryStore
from .pixels import pack_pixels, unpack_pixels
from .points import check_points, points_from_json, points_to_json
from .records import DraftRecord, ImageStatus, PredictionRecord, as_utc
from .schema import Commit, Draft, Image, ModelVersion, Prediction, utcnow

logger = logging.getLogger(__name__)

#: zlib level of draft and prediction label maps: written every second while a person edits,
#: so speed matters more than size (level 3 of a 2048^2 map of 5,000 objects: ~0.09 s and
#: 0.5 MB vs ~0.23 s and 0.3 MB at level 6, measured on the development machine)
LABELS_COMPRESSION = 3


@dataclass(frozen=True)
class DraftSnapshot:
    """The state of an image's annotations at one moment, as a draft stores it.

    Parameters
    ----------
    labels : np.ndarray
        Integer label map ``(Y, X)`` or ``(Z, Y, X)`` of the image's spatial shape. The draft
        writer reads it later, on another thread: hand over a copy, never the live layer data.
    polygons : Mapping[int, np.ndarray], optional
        ``(N, 2)`` (row, col) outlines by label id (2D); None: not given (traced at commit).
        The label map already holds every polygon edit (live sync writes them into it), so a
        draft may leave them out; they are stored packed (:func:`pack_polygons`).
    classes : Mapping[int, str], optional
        Class name by label id; ids without one get the default class at commit.
    points : np.ndarray, optional
        ``(N, ndim)`` point annotations in pixels; None: no points layer.
    based_on_commit : int or None
        The commit the edits started from (``current_commit(image).id`` when the image was
        opened), None when it had none; used to notice a commit made meanwhile.
    prediction_id : int or None
        The stored prediction being corrected (:meth:`WorkStore.latest_prediction`), if any;
        the corrections log of the commit is the diff to it.
    n_edits : int
        Edits made so far (shown as the image's corrections in the project table).
    n_objects : int or None
        Objects in ``labels`` when the caller knows it (``len(LabelIndex)`` of
        :mod:`napari_cellist.live_sync`); None: counted when saved (a pass over the map).
    """

    labels: np.ndarray
    polygons: Mapping[int, np.ndarray] | None = None
    classes: Mapping[int, str] | None = None
    points: np.ndarray | None = None
    based_on_commit: int | None = None
    prediction_id: int | None = None
    n_edits: int = 0
    n_objects: int | None = None


@dataclass(frozen=True)
class StoredDraft:
    """A draft read back: its record and the :class:`DraftSnapshot` that was saved."""

    record: DraftRecord
    snapshot: DraftSnapshot


class WorkStore(CommitHistoryStore):
    """Predictions, drafts and image status: the dataset part of :class:`ProjectStore`."""

    # -- predictions ------------------------------------------------------------------------------
    def save_prediction(
        self,
        image_id: int,
        labels: np.ndarray,
        objects: Mapping[int, ObjectMeta] | None = None,
        model_name: str = "unknown",
        model_version: int | None = None,
    ) -> PredictionRecord:
        """Store a model's prediction of an image (the image's current prediction from now on).

        Parameters
        ----------
        image_id : int
            The image.
        labels : np.ndarray
            Integer label map of the image's spatial shape.
        objects : Mapping[int, ObjectMeta], optional
            Scores and classes by label id.
        model_name : str
            The model that predicted (registry name, e.g. ``"threshold"``).
        model_version : int, optional
            Store id of the model version used (:meth:`add_model_version`).

        Raises
        ------
        ValueError
            The label map does not fit the image.
        StoreError
            Unknown image or model version, or the store cannot be written.
        """
        record = self.image(image_id)
        labels = ann.check_labels(labels, record.shape).astype(np.int32, copy=False)
        blob = pack_pixels(labels, LABELS_COMPRESSION)
        meta = {
            str(int(k)): {"score": float(v.score), "class_name": str(v.class_name)}
            for k, v in (objects or {}).items()
        }
        n_objects = count_objects(labels)
        with self._write() as session:
            self._image_row(session, record.id)
            if model_version is not None:
                self._check_version(session, int(model_version))
            row = Prediction(
                image_id=record.id,
                model_name=str(model_name),
                model_version_id=None if model_version is None else int(model_version),
                n_objects=n_objects,
                objects=meta,
                labels=blob,
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            found = self._prediction_record(row)
        logger.info(
            "prediction %d of image %d by %s: %d objects",
            found.id,
            record.id,
            model_name,
            n_objects,
        )
        return found

    def latest_prediction(self, image_id: int) -> PredictionRecord | None:
        """The image's current (newest) prediction, without its label map; None if none."""
        with self._read() as session:
            self._image_row(session, image_id)
            row = self._latest_prediction_row(session, int(image_id))
            return None if row is None else self._prediction_record(row)

    def load_prediction(
        self, image_id: int
    ) -> tuple[PredictionRecord, np.ndarray, dict[int, ObjectMeta]] | None:
        """The image's current prediction: ``(record, int32 labels, objects)``; None if none."""
        with self._read() as session:
            self._image_row(session, image_id)
            row = self._latest_prediction_row(session, int(image_id))
            if row is None:
                return None
            return self._prediction_record(row), *self._prediction_arrays(session, row)

    # -- drafts ------------------------------------------------------------------------------------
    def save_draft(self, image_id: int, snapshot: DraftSnapshot) -> DraftRecord:
        """Store ``snapshot`` as the image's draft (replacing any), in one transaction."""
        return self.save_drafts({image_id: snapshot})[int(image_id)]

    def save_drafts(self, snapshots: Mapping[int, DraftSnapshot]) -> dict[int, DraftRecord]:
        """Store the drafts of several images in one transaction (all or none).

        Parameters
        ----------
        snapshots : Mapping[int, DraftSnapshot]
            The newest snapshot by image id.

        Returns
        -------
        dict
            The stored :class:`DraftRecord` by image id.

        Raises
        ------
        ValueError
            A label map, outline or points that do not fit their image.
        StoreError
            Unknown image, or the store cannot be written; nothing is saved.
        """
        values = {int(i): self._draft_values(int(i), s) for i, s in snapshots.items()}
        saved: dict[int, DraftRecord] = {}
        with self._write() as session:
            for image_id, columns in values.items():
                self._image_row(session, image_id)
                row = session.scalar(select(Draft).where(Draft.image_id == image_id))
                if row is None:
                    row = Draft(image_id=image_id, revision=0, **columns)
                    session.add(row)
                else:
                    for key, value in columns.items():
                        setattr(row, key, value)
                row.revision = int(row.revision or 0) + 1
                session.flush()
                saved[image_id] = self._draft_record(row)
        logger.debug("saved drafts of images %s", sorted(saved))
        return saved

    def draft(self, image_id: int) -> DraftRecord | None:
        """The image's draft record (no arrays), or None when it has none."""
        with self._read() as session:
            self._image_row(session, image_id)
            row = session.scalar(select(Draft).where(Draft.image_id == int(image_id)))
            return None if row is None else self._draft_record(row)

    def load_draft(self, image_id: int) -> StoredDraft | None:
        """The image's draft with its arrays, or None when it has none.

        The label map is int32; polygons float ``(N, 2)`` by id; points float64 ``(N, ndim)``.
        """
        with self._read() as session:
            self._image_row(session, image_id)
            row = session.scalar(select(Draft).where(Draft.image_id == int(image_id)))
            return None if row is None else self._stored_draft(row)

    def discard_draft(self, image_id: int) -> bool:
        """Delete the image's draft (its edits are lost); True when there was one."""
        with self._write() as session:
            self._image_row(session, image_id)
            done = session.execute(delete(Draft).where(Draft.image_id == int(image_id)))
        return bool(done.rowcount)

    # -- the project table -------------------------------------------------------------------------
    def image_statuses(self) -> list[ImageStatus]:
        """One :class:`ImageStatus` per image of the project, in the order they were added.

        Four queries whatever the number of images; nothing is decoded.
        """
        with self._read() as session:
            images = session.execute(
                select(Image.id, Image.name, Image.path, Image.added_at)
                .where(Image.project_id == self._project_id)
                .order_by(Image.id)
            ).all()
            commits = self._latest_rows(session, Commit, Commit.image_id)
            predictions = self._latest_rows(session, Prediction, Prediction.image_id)
            drafts = {
                row.image_id: row
                for row in session.scalars(
                    select(Draft).join(Image).where(Image.project_id == self._project_id)
                )
            }
            return [
                _status(row, drafts.get(row.id), commits.get(row.id), predictions.get(row.id))
                for row in images
            ]

    # -- helpers -----------------------------------------------------------------------------------
    def _draft_values(self, image_id: int, snapshot: DraftSnapshot) -> dict[str, Any]:
        """Column values of a draft, checked and encoded outside the transaction."""
        record = self.image(image_id)
        labels = ann.check_labels(snapshot.labels, record.shape).astype(np.int32, copy=False)
        points = None
        if snapshot.points is not None:
            points = points_to_json(check_points(snapshot.points, labels.shape))
        polygons = None if snapshot.polygons is None else pack_polygons(snapshot.polygons)
        classes = None
        if snapshot.classes is not None:
            classes = {str(int(k)): str(v) for k, v in snapshot.classes.items()}
        return {
            "labels": pack_pixels(labels, LABELS_COMPRESSION),
            "shape": [int(s) for s in labels.shape],
            "polygons": polygons,
            "classes": classes,
            "points": points,
            "n_objects": (
                count_objects(labels) if snapshot.n_objects is None else int(snapshot.n_objects)
            ),
            "n_edits": int(snapshot.n_edits),
            "based_on_commit": snapshot.based_on_commit,
            "prediction_id": snapshot.prediction_id,
            "updated_at": utcnow(),
        }

    def _latest_rows(self, session: Session, table: Any, image_column: Any) -> dict[int, Any]:
        """The newest row of ``table`` per image of the project."""
        newest = (
            select(func.max(table.id))
            .join(Image, image_column == Image.id)
            .where(Image.project_id == self._project_id)
            .group_by(image_column)
        )
        rows = session.scalars(select(table).where(table.id.in_(newest)))
        return {row.image_id: row for row in rows}

    @staticmethod
    def _latest_prediction_row(session: Session, image_id: int) -> Prediction | None:
        return session.scalar(
            select(Prediction)
            .where(Prediction.image_id == image_id)
            .order_by(Prediction.id.desc())
            .limit(1)
        )

    @staticmethod
    def _prediction_arrays(
        session: Session, row: Prediction
    ) -> tuple[np.ndarray, dict[int, ObjectMeta]]:
        blob = session.scalar(select(Prediction.labels).where(Prediction.id == row.id))
        objects = {
            int(k): ObjectMeta(
                int(k),
                score=float(v.get("score", 1.0)),
                class_name=str(v.get("class_name", DEFAULT_CLASS)),
                source=row.model_name,
                model_version=row.model_version_id,
            )
            for k, v in (row.objects or {}).items()
        }
        return unpack_pixels(blob).astype(np.int32, copy=False), objects

    @staticmethod
    def _prediction_record(row: Prediction) -> PredictionRecord:
        return PredictionRecord(
            int(row.id),
            int(row.image_id),
            row.model_name,
            row.model_version_id,
            int(row.n_objects),
            as_utc(row.created_at),
        )

    @staticmethod
    def _draft_record(row: Draft) -> DraftRecord:
        return DraftRecord(
            int(row.image_id),
            int(row.revision),
            int(row.n_objects),
            int(row.n_edits or 0),
            tuple(int(s) for s in row.shape),
            row.based_on_commit,
            row.prediction_id,
            as_utc(row.updated_at),
        )

    def _stored_draft(self, row: Draft) -> StoredDraft:
        ndim = len(row.shape)
        polygons = None if row.polygons is None else unpack_polygons(row.polygons)
        snapshot = DraftSnapshot(
            labels=unpack_pixels(row.labels).astype(np.int32, copy=False),
            polygons=polygons,
            classes=None if row.classes is None else {int(k): v for k, v in row.classes.items()},
            points=points_from_json(row.points, ndim),
            based_on_commit=row.based_on_commit,
            prediction_id=row.prediction_id,
            n_edits=int(row.n_edits or 0),
        )
        return StoredDraft(self._draft_record(row), snapshot)

    def _check_version(self, session: Session, version_id: int) -> None:
        from .errors import StoreError

        found = session.scalar(
            select(ModelVersion.id).where(ModelVersion.id == version_id, self._in_project())
        )
        if found is None:
            raise StoreError(
                f"There is no model version {version_id} in project {self._project_name!r} of "
                f"{self._where}; record it with store.add_model_version() first, or pass "
                "model_version=None."
            )


def pack_polygons(polygons: Mapping[int, np.ndarray]) -> bytes:
    """Outlines ``{id: (N, 2) (row, col)}`` as one compressed blob (three ``np.save`` arrays:
    ids, vertex counts, all vertices); NumPy work only, no per-vertex Python objects."""
    ids = np.fromiter((int(k) for k in polygons), np.int64, len(polygons))
    arrays = [np.asarray(v, np.float64).reshape(-1, 2) for v in polygons.values()]
    counts = np.fromiter((len(a) for a in arrays), np.int64, len(arrays))
    vertices = np.concatenate(arrays) if arrays else np.zeros((0, 2))
    buffer = io.BytesIO()
    for array in (ids, counts, vertices):
        np.save(buffer, array, allow_pickle=False)
    return zlib.compress(buffer.getvalue(), LABELS_COMPRESSION)


def unpack_polygons(blob: bytes) -> dict[int, np.ndarray]:
    """Inverse of :func:`pack_polygons`."""
    buffer = io.BytesIO(zlib.decompress(blob))
    ids, counts, vertices = (np.load(buffer, allow_pickle=False) for _ in range(3))
    parts = np.split(vertices, np.cumsum(counts)[:-1]) if len(ids) else []
    return {int(i): part for i, part in zip(ids, parts, strict=True)}


def count_objects(labels: np.ndarray) -> int:
    """Number of distinct non-zero ids of a label map (a bincount when ids are small: about 20x
    faster than ``np.unique`` on a 2048 x 2048 map)."""
    if labels.size == 0:
        return 0
    top = int(labels.max())
    if top <= 0:
        return 0
    if top <= 4 * labels.size:
        return int(np.count_nonzero(np.bincount(labels.ravel(), minlength=top + 1)[1:]))
    return int(np.count_nonzero(np.unique(labels)))


def _status(image: Any, draft: Draft | None, commit: Commit | None, prediction: Any) -> ImageStatus:
    """The table row of one image from its newest draft, commit and prediction rows."""
    moments = [as_utc(image.added_at)]
    moments += [as_utc(r.updated_at) for r in (draft,) if r is not None]
    moments += [as_utc(r.created_at) for r in (commit, prediction) if r is not None]
    if draft is not None:
        status, n_objects, n_corrections = "draft", draft.n_objects, int(draft.n_edits or 0)
    elif commit is not None:
        summary = dict(commit.summary or {})
        n_corrections = sum(int(v) for k, v in summary.items() if k != "unchanged")
        status, n_objects = "committed", commit.n_objects
    elif prediction is not None:
        status, n_objects, n_corrections = "predicted", prediction.n_objects, 0
    else:
        status, n_objects, n_corrections = "new", None, 0
    return ImageStatus(
        int(image.id),
        image.name,
        image.path,
        status,
        None if n_objects is None else int(n_objects),
        None if prediction is None else prediction.model_name,
        None if prediction is None else prediction.model_version_id,
        n_corrections,
        max(moments),
    )
