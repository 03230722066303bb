"""The project store facade: images, committed annotations, corrections, model versions.

Example
-------
>>> with ProjectStore("my_project") as store:          # folder -> my_project/cellist.sqlite
...     record = store.add_image(image, path="cells.tif")
...     seen = store.current_commit(record.id)           # what the edits start from
...     store.commit_annotations(record.id, labels, previous=prediction.labels, points=points,
...                              based_on=None if seen is None else seen.id)
...     labels, objects = store.load_annotations(record.id)
...     points = store.load_points(record.id)

Each public method runs in its own transaction; records returned are frozen dataclasses.
"""

from __future__ import annotations

import enum
import logging
import warnings
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal

import numpy as np
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from ..labels import Corrections
from ..types import ObjectMeta, Sample
from . import encoding as ann
from .errors import StaleCommitError, StaleCommitWarning, StoreError, stale_message
from .points import check_points, points_to_json
from .records import CommitResult
from .schema import (
    ACCEPTED,
    SUPERSEDED,
    Annotation,
    Commit,
    Correction,
    Draft,
    ModelVersion,
    utcnow,
)
from .work import StoredDraft, WorkStore

logger = logging.getLogger(__name__)


class _Unchecked(enum.Enum):
    UNCHECKED = "unchecked"


#: Default ``based_on`` of :meth:`ProjectStore.commit_annotations`: the caller did not say what
#: its annotations started from, so a commit made meanwhile cannot be noticed.
UNCHECKED = _Unchecked.UNCHECKED
ON_STALE = ("warn", "refuse")


class ProjectStore(WorkStore):
    """A napari-cellist project: images, committed annotations, corrections and model versions.

    Parameters
    ----------
    location : str or os.PathLike
        A folder (the store is ``<folder>/cellist.sqlite``; a path without suffix that does not
        exist yet is created as a folder), an SQLite file, or a SQLAlchemy URL containing
        ``://`` (``postgresql://user@host/db``, ``mysql+pymysql://...``, ``sqlite:///file``).
    project : str
        Project to work in (created when missing); ``"default"`` unless teams share a server.
    busy_timeout_s : float
        How long an SQLite write waits for another writer before failing with "locked".
    read_only : bool
        For commands that only read (``cellist export``, ``cellist eval``): open an existing
        store without ever creating, migrating or writing anything; an SQLite file that is not
        writable here is read as immutable. Writing methods raise :class:`StoreError`.

    Raises
    ------
    StoreError
        The location cannot be used: unwritable, not a database, locked, unreachable.
    StoreNotFoundError
        ``read_only`` and there is no store at the location, or no such project in it.
    SchemaVersionError
        The store was written by a newer napari-cellist; it is not modified.

    Notes
    -----
    Opening a store of an older schema backs it up (SQLite: one ``<name>.v<old>.bak`` per old
    version) and migrates it; see :mod:`napari_cellist.store.migrations`. Use it as a context
    manager or call :meth:`close`.

    Several people may share one store (a PostgreSQL or MySQL server): commits to one image
    take turns (a row lock on the image), and a commit made on top of an older commit than the
    image's latest is reported (``based_on`` of :meth:`commit_annotations`). Model versions
    belong to the project they were recorded in.

    Working through a dataset: :meth:`save_prediction` / :meth:`load_prediction` keep each
    image's latest prediction with its model, :meth:`save_draft` / :meth:`load_draft` its
    uncommitted edits (see :class:`napari_cellist.drafts.DraftWriter`), :meth:`commit_draft`
    promotes a draft, and :meth:`image_statuses` lists every image with its status.
    """

    #: Attempts of :meth:`commit_draft` when the draft is saved again while it is encoded.
    DRAFT_COMMIT_ATTEMPTS = 3

    def commit_draft(
        self,
        image_id: int,
        objects: Mapping[int, ObjectMeta] | None = None,
        *,
        on_stale: Literal["warn", "refuse"] = "warn",
    ) -> CommitResult:
        """Turn the image's draft into its committed annotations and delete the draft.

        One transaction: the commit is stored and the draft deleted together, or neither. The
        corrections log is the diff of the draft's label map to the prediction it edited
        (``DraftSnapshot.prediction_id``, else the image's latest prediction), as
        :meth:`commit_annotations` does with ``previous``; without any prediction it is the diff
        to the previous commit. Objects keep the prediction's score, source and model version
        where their id was predicted; classes come from the draft.

        Parameters
        ----------
        image_id : int
            The image.
        objects : Mapping[int, ObjectMeta], optional
            Metadata that win over those derived from the prediction and the draft.
        on_stale : {"warn", "refuse"}
            What to do when another commit of the image was made after the draft's
            ``based_on_commit`` (see :meth:`commit_annotations`).

        Returns
        -------
        CommitResult
            As :meth:`commit_annotations`.

        Raises
        ------
        StoreError
            The image has no draft, or the draft kept changing while it was encoded (another
            program saving it) in :attr:`DRAFT_COMMIT_ATTEMPTS` attempts. Nothing is changed.
        StaleCommitError
            ``on_stale="refuse"`` and the commit is stale.
        """
        if on_stale not in ON_STALE:
            raise ValueError(f"on_stale must be one of {', '.join(ON_STALE)}, not {on_stale!r}.")
        for _attempt in range(self.DRAFT_COMMIT_ATTEMPTS):
            stored = self.load_draft(image_id)
            if stored is None:
                raise StoreError(
                    f"Image {image_id} has no draft in {self._where} to commit; commit its "
                    "label map with commit_annotations() instead."
                )
            result = self._commit_stored_draft(stored, objects, on_stale)
            if result is not None:
                return result
            logger.info("draft of image %d changed while committing; again", image_id)
        raise StoreError(
            f"The draft of image {image_id} kept changing while it was committed (another "
            "program is editing it); stop the other editor and commit again."
        )

    def commit_annotations(
        self,
        image_id: int,
        labels: np.ndarray,
        objects: Mapping[int, ObjectMeta] | None = None,
        previous: np.ndarray | None = None,
        polygons: Mapping[int, np.ndarray] | None = None,
        points: np.ndarray | None = None,
        *,
        based_on: int | None | _Unchecked = UNCHECKED,
        on_stale: Literal["warn", "refuse"] = "warn",
    ) -> CommitResult:
        """Replace the image's committed annotations by the objects of ``labels``.

        Commits to one image take turns, also on a database server: each replaces the one
        before it, and only the latest commit's annotations are ``accepted``.

        Parameters
        ----------
        image_id : int
            Image the label map belongs to.
        labels : np.ndarray
            Integer label map ``(Y, X)`` or ``(Z, Y, X)`` of the image's spatial shape
            (0 = background).
        objects : Mapping[int, ObjectMeta], optional
            Metadata by label id (class, score, source, model version); objects without an entry
            are ``manual`` objects of the default class with score 1.
        previous : np.ndarray, optional
            The prediction the user corrected; the corrections log is its diff to ``labels``.
            Without it the diff is taken to the previously committed labels (everything is
            ``added`` on a first commit).
        polygons : Mapping[int, np.ndarray], optional
            ``(N, 2)`` (row, col) outlines by label id (2D); missing ones are traced from the
            mask with a 1 pixel tolerance. 3D objects have no polygon.
        points : np.ndarray, optional
            Point annotations (napari Points layer data): ``(N, labels.ndim)`` (row, col) /
            (plane, row, col) pixels, finite and inside the image (-0.5..size-0.5 per axis).
            Stored with this commit (an empty array as "no objects marked"); None stores none.
        based_on : int or None, optional
            The commit the edited annotations started from: ``current_commit(image_id).id``
            read before loading them, None when the image had no commit then. When the image's
            latest commit is another one by the time this commit is written (someone committed
            meanwhile), the commit is *stale*: see ``on_stale``. Not given: not checked.
        on_stale : {"warn", "refuse"}
            ``"warn"``: store the commit anyway, issue a :class:`~.errors.StaleCommitWarning`
            and flag the result (``stale``); ``"refuse"``: raise
            :class:`~.errors.StaleCommitError` and store nothing.

        Returns
        -------
        CommitResult
            Commit id, number of objects stored, the corrections logged, and the commit it
            replaced (``replaced``), ``based_on`` and ``stale``.

        Raises
        ------
        ValueError
            The label map, ``previous`` or ``points`` does not fit the image, or ``on_stale``
            is unknown.
        StaleCommitError
            ``on_stale="refuse"`` and the commit is stale. Nothing is changed.
        StoreError
            Unknown image or model version, or the store cannot be written. Nothing is changed.

        Warns
        -----
        StaleCommitWarning
            The commit is stale and was stored (``on_stale="warn"``).
        """
        if on_stale not in ON_STALE:
            raise ValueError(f"on_stale must be one of {', '.join(ON_STALE)}, not {on_stale!r}.")
        checked = based_on is not UNCHECKED
        base = None if based_on is UNCHECKED or based_on is None else int(based_on)
        record = self.image(image_id)
        labels = ann.check_labels(labels, record.shape)
        if previous is not None:
            previous = self._check_previous(previous, labels.shape)
        stored_points = None if points is None else check_points(points, labels.shape)
        rows = ann.object_rows(labels, objects, polygons)  # outlines and RLE outside the lock
        corrections = None if previous is None else ann.diff(previous, labels)
        with self._write() as session:
            commit_id, replaced, stale, corrections = self._write_commit(
                session,
                record.id,
                labels,
                rows,
                corrections,
                stored_points,
                checked,
                base,
                on_stale,
            )
        logger.info(
            "commit %d: image %d, %d objects, %s points, %s",
            commit_id,
            record.id,
            len(rows),
            "no" if stored_points is None else len(stored_points),
            corrections.summary(),
        )
        if stale:
            warning = StaleCommitWarning(record.id, base, replaced, commit_id)
            logger.warning("%s", warning)
            warnings.warn(warning, stacklevel=2)
        return CommitResult(commit_id, len(rows), corrections, base, replaced, stale)

    def load_annotations(self, image_id: int) -> tuple[np.ndarray, dict[int, ObjectMeta]] | None:
        """The last committed annotations of an image.

        Returns
        -------
        tuple or None
            ``(labels, objects)``: the int32 label map exactly as committed and the metadata of
            each object by label id; None when the image was never committed.
        """
        with self._read() as session:
            self._image_row(session, image_id)
            return self._committed(session, int(image_id))

    def load_polygons(self, image_id: int) -> dict[int, np.ndarray] | None:
        """The committed 2D outlines of an image: ``{label_id: (N, 2) (row, col) vertices}``.

        Objects without an outline (3D, or too small to outline) are left out; None when the
        image was never committed.
        """
        with self._read() as session:
            self._image_row(session, image_id)
            commit_id = self._last_commit_id(session, int(image_id))
            if commit_id is None:
                return None
            rows = session.execute(
                select(Annotation.label_id, Annotation.polygon)
                .where(Annotation.commit_id == commit_id, Annotation.polygon.is_not(None))
                .order_by(Annotation.id)
            ).all()
        return {int(label_id): np.asarray(polygon, float) for label_id, polygon in rows}

    def annotated_samples(self, include_unannotated: bool = False) -> list[Sample]:
        """Training samples: each image's pixels with its last commit's label map and points.

        Parameters
        ----------
        include_unannotated : bool
            Also return images never committed (``labels=None``), e.g. for AIR.

        Returns
        -------
        list of Sample
            In the order images were added; ``name`` is the image name. Every committed image
            is included; one committed with points but no objects is a points-only annotation
            (``labels=None``: the points do not say that unmarked places hold nothing).
            ``points`` holds the committed ``(N, ndim)`` points, None when the commit had none.
            The pixels are as added (convert colour / channel images with
            :func:`napari_cellist.images.prepare_grey`).
        """
        samples = []
        for record in self.images():
            with self._read() as session:  # labels and points of the same commit
                commit_id = self._last_commit_id(session, record.id)
                found = self._committed(session, record.id)
                points = None if commit_id is None else self._commit_points(session, commit_id)[0]
            if found is None and not include_unannotated:
                continue
            labels = None if found is None else found[0]
            if labels is not None and points is not None and len(points) and not labels.any():
                labels = None
            samples.append(Sample(self.load_pixels(record.id), labels, points, record.name))
        return samples

    # -- helpers ---------------------------------------------------------------------------------
    def _write_commit(
        self,
        session: Session,
        image_id: int,
        labels: np.ndarray,
        rows: list[dict[str, Any]],
        corrections: Corrections | None,
        points: np.ndarray | None,
        checked: bool,
        base: int | None,
        on_stale: str,
    ) -> tuple[int, int | None, bool, Corrections]:
        """Inside a write transaction: lock the image, check staleness, store the commit.

        Returns ``(commit id, commit replaced, stale, corrections logged)``; a commit also ends
        the image's draft (deleted in the same transaction).
        """
        self._image_row(session, image_id, lock=True)  # commits to this image take turns
        replaced = self._last_commit_id(session, image_id)
        stale = checked and base != replaced
        if stale and on_stale == "refuse":
            raise StaleCommitError(stale_message(image_id, base, replaced, None))
        self._check_model_versions(session, rows)
        if corrections is None:
            before = self._committed(session, image_id, labels.shape)
            before_labels = np.zeros_like(labels) if before is None else before[0]
            corrections = ann.diff(before_labels, labels)
        commit_id = self._insert_commit(session, image_id, labels.shape, rows, corrections, points)
        session.execute(delete(Draft).where(Draft.image_id == image_id))
        return commit_id, replaced, stale, corrections

    def _commit_stored_draft(
        self,
        stored: StoredDraft,
        objects: Mapping[int, ObjectMeta] | None,
        on_stale: str,
    ) -> CommitResult | None:
        """Commit one read draft; None when it was saved again meanwhile (nothing written)."""
        draft, record = stored.snapshot, stored.record
        image_id = record.image_id
        prediction = self._draft_prediction(image_id, draft.prediction_id, draft.labels.shape)
        previous, predicted = (None, {}) if prediction is None else prediction
        metadata = _draft_objects(draft, predicted, objects)
        rows = ann.object_rows(draft.labels, metadata, draft.polygons)
        corrections = None if previous is None else ann.diff(previous, draft.labels)
        with self._write() as session:
            current = session.scalar(select(Draft.revision).where(Draft.image_id == image_id))
            if current != record.revision:
                return None
            commit_id, replaced, stale, corrections = self._write_commit(
                session,
                image_id,
                draft.labels,
                rows,
                corrections,
                draft.points,
                True,
                draft.based_on_commit,
                on_stale,
            )
        logger.info("commit %d: draft of image %d, %d objects", commit_id, image_id, len(rows))
        if stale:
            warning = StaleCommitWarning(image_id, draft.based_on_commit, replaced, commit_id)
            logger.warning("%s", warning)
            warnings.warn(warning, stacklevel=3)
        return CommitResult(
            commit_id, len(rows), corrections, draft.based_on_commit, replaced, stale
        )

    def _draft_prediction(
        self, image_id: int, prediction_id: int | None, shape: tuple[int, ...]
    ) -> tuple[np.ndarray, dict[int, ObjectMeta]] | None:
        """The prediction a draft corrects (its own, else the image's latest) if it fits."""
        found = self.load_prediction(image_id)
        if prediction_id is not None and (found is None or found[0].id != prediction_id):
            with self._read() as session:
                from .schema import Prediction

                row = session.get(Prediction, prediction_id)
                found = None if row is None else (None, *self._prediction_arrays(session, row))
        if found is None or found[1].shape != tuple(shape):
            return None
        return found[1], found[2]

    def _committed(
        self, session: Session, image_id: int, shape: tuple[int, ...] | None = None
    ) -> tuple[np.ndarray, dict[int, ObjectMeta]] | None:
        """Last committed (labels, objects) of an image; None if none (or of another shape)."""
        commit_id = self._last_commit_id(session, image_id)
        commit = None if commit_id is None else session.get(Commit, commit_id)
        if commit is None or (shape is not None and tuple(commit.shape) != tuple(shape)):
            return None
        rows = session.execute(  # plain rows, no ORM objects: a restore of 20k objects
            select(*ann.RESTORE_COLUMNS)
            .where(Annotation.commit_id == commit.id)
            .order_by(Annotation.id)
        )
        return ann.labels_from_rows(commit.shape, rows)

    @staticmethod
    def _check_previous(previous: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        try:
            return ann.check_labels(previous, shape)
        except ValueError as error:
            raise ValueError(
                f"The previous label map (the prediction made for this image) does not fit: {error}"
            ) from error

    def _check_model_versions(self, session: Session, rows: list[dict[str, Any]]) -> None:
        wanted = {r["model_version_id"] for r in rows} - {None}
        if not wanted:
            return
        known = set(
            session.scalars(
                select(ModelVersion.id).where(ModelVersion.id.in_(wanted), self._in_project())
            )
        )
        if wanted - known:
            raise StoreError(
                f"The objects refer to model versions {sorted(wanted - known)} that are not in "
                f"project {self._project_name!r} of {self._where}; record them with store.add_model_version() first, or set "
                "ObjectMeta.model_version to None."
            )

    def _insert_commit(
        self,
        session: Session,
        image_id: int,
        shape: tuple[int, ...],
        rows: list[dict[str, Any]],
        corrections: Corrections,
        points: np.ndarray | None = None,
    ) -> int:
        now = utcnow()
        commit = Commit(
            image_id=image_id,
            created_at=now,
            summary=corrections.summary(),
            n_objects=len(rows),
            shape=[int(s) for s in shape],
            points=points_to_json(points),
        )
        session.add(commit)
        session.flush()
        session.execute(
            update(Annotation)
            .where(Annotation.image_id == image_id, Annotation.status == ACCEPTED)
            .values(status=SUPERSEDED)
        )
        extra = {
            "image_id": image_id,
            "commit_id": commit.id,
            "status": ACCEPTED,
            "committed_at": now,
        }
        connection = session.connection()  # Core executemany: no ORM work per object
        for start in range(0, len(rows), ann.INSERT_BATCH):
            batch = rows[start : start + ann.INSERT_BATCH]
            connection.execute(insert(Annotation.__table__), [{**row, **extra} for row in batch])
        logged = ann.correction_rows(corrections)
        for start in range(0, len(logged), ann.INSERT_BATCH):
            batch = logged[start : start + ann.INSERT_BATCH]
            connection.execute(
                insert(Correction.__table__), [{**row, "commit_id": commit.id} for row in batch]
            )
        return int(commit.id)


def _draft_objects(
    draft: Any, predicted: Mapping[int, ObjectMeta], given: Mapping[int, ObjectMeta] | None
) -> dict[int, ObjectMeta]:
    """Metadata of a draft's objects: the prediction's where predicted, the draft's classes,
    then ``given`` on top."""
    classes = dict(draft.classes or {})
    found: dict[int, ObjectMeta] = {}
    for label_id in set(predicted) | set(classes):
        meta = predicted.get(label_id) or ObjectMeta(label_id)
        if label_id in classes:
            meta = replace(meta, class_name=str(classes[label_id]))
        found[label_id] = meta
    found.update(given or {})
    return found
