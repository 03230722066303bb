"""What was committed: the commits of a project, their corrections log and committed points."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from .image_store import ImageStore
from .points import points_from_json
from .records import CommitRecord, CorrectionRecord, as_utc
from .schema import Commit, Correction, Image


class CommitHistoryStore(ImageStore):
    """The commit-log part of :class:`~.project.ProjectStore`."""

    def commits(self, image_id: int | None = None) -> list[CommitRecord]:
        """Commits of the project (of one image if given), oldest first."""
        query = select(Commit).join(Image).where(Image.project_id == self._project_id)
        if image_id is not None:
            query = query.where(Commit.image_id == image_id)
        with self._read() as session:
            return [
                CommitRecord.from_row(row) for row in session.scalars(query.order_by(Commit.id))
            ]

    def current_commit(self, image_id: int) -> CommitRecord | None:
        """The image's latest commit (the one its annotations come from), or None.

        Its ``id`` is what :meth:`~.project.ProjectStore.commit_annotations` takes as
        ``based_on``: read it *before* loading the annotations to edit, so that a commit made
        in between is reported as stale rather than missed.
        """
        with self._read() as session:
            self._image_row(session, image_id)
            commit_id = self._last_commit_id(session, int(image_id))
            return (
                None if commit_id is None else CommitRecord.from_row(session.get(Commit, commit_id))
            )

    def corrections(self, image_id: int | None = None) -> list[CorrectionRecord]:
        """The corrections log of the project (of one image if given), oldest first."""
        query = (
            select(Correction, Commit.image_id, Commit.created_at)
            .join(Commit, Correction.commit_id == Commit.id)
            .join(Image, Commit.image_id == Image.id)
            .where(Image.project_id == self._project_id)
        )
        if image_id is not None:
            query = query.where(Commit.image_id == image_id)
        with self._read() as session:
            rows = session.execute(query.order_by(Correction.id)).all()
            return [
                CorrectionRecord(
                    row.commit_id,
                    image,
                    row.kind,
                    tuple(row.before_ids),
                    tuple(row.after_ids),
                    as_utc(created),
                )
                for row, image, created in rows
            ]

    def load_points(self, image_id: int) -> np.ndarray | None:
        """The point annotations of the image's last commit.

        Returns
        -------
        np.ndarray or None
            float64 ``(N, ndim)`` (row, col) / (plane, row, col) pixels, ``ndim`` that of the
            committed label map; ``(0, ndim)`` when the last commit had no points; None when
            the image was never committed.
        """
        with self._read() as session:
            self._image_row(session, image_id)
            commit_id = self._last_commit_id(session, int(image_id))
            if commit_id is None:
                return None
            points, shape = self._commit_points(session, commit_id)
        return np.zeros((0, len(shape)), np.float64) if points is None else points

    # -- helpers ---------------------------------------------------------------------------------
    def _last_commit_id(self, session: Session, image_id: int) -> int | None:
        return session.scalar(
            select(Commit.id).where(Commit.image_id == image_id).order_by(Commit.id.desc()).limit(1)
        )

    @staticmethod
    def _commit_points(session: Session, commit_id: int) -> tuple[np.ndarray | None, list]:
        """(points or None when NULL, label-map shape) of one commit."""
        value, shape = session.execute(
            select(Commit.points, Commit.shape).where(Commit.id == commit_id)
        ).one()
        return points_from_json(value, len(shape)), shape
