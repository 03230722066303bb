"""Frozen records the store hands out (plain data, never ORM objects bound to a session)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..labels import Corrections
from .schema import Commit, Image, ModelVersion


def as_utc(moment: datetime) -> datetime:
    """Timezone-aware UTC (SQLite returns naive datetimes)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


@dataclass(frozen=True)
class ImageRecord:
    """An image of the project.

    Parameters
    ----------
    id : int
        Store id.
    name : str
        Display name (file name by default).
    path : str or None
        Absolute path of the file it was read from, if any.
    content_hash : str
        :meth:`ProjectStore.hash_image` of the pixels.
    shape : tuple of int
        Shape of the pixel array as added (may include colour / channel axes).
    dtype : str
        NumPy dtype string of the pixels, e.g. ``"<u2"``.
    added_at : datetime
        When it was added (UTC).
    has_pixels : bool
        The pixels are stored in the store itself (else they are read from ``path``).
    """

    id: int
    name: str
    path: str | None
    content_hash: str
    shape: tuple[int, ...]
    dtype: str
    added_at: datetime
    has_pixels: bool

    @classmethod
    def from_row(cls, row: Image, has_pixels: bool) -> ImageRecord:
        """Record of an ``images`` row."""
        return cls(
            row.id,
            row.name,
            row.path,
            row.content_hash,
            tuple(int(s) for s in row.shape),
            row.dtype,
            as_utc(row.added_at),
            bool(has_pixels),
        )


@dataclass(frozen=True)
class ModelVersionRecord:
    """A model version: what it is, where it came from, what it was trained on and how it scored.

    ``params``, ``metrics`` and ``data_used`` are copies of the stored JSON values.
    ``project_id`` is the project it belongs to; None for a version recorded before schema
    version 4 that could not be traced to one project (shared by every project of the store).
    """

    id: int
    name: str
    params: dict[str, Any]
    parent_id: int | None
    data_used: tuple[Any, ...]
    metrics: dict[str, Any]
    checkpoint_path: str | None
    checkpoint_sha256: str | None
    created_at: datetime
    project_id: int | None = None

    @classmethod
    def from_row(cls, row: ModelVersion) -> ModelVersionRecord:
        """Record of a ``model_versions`` row."""
        return cls(
            row.id,
            row.name,
            dict(row.params or {}),
            row.parent_id,
            tuple(row.data_used or ()),
            dict(row.metrics or {}),
            row.checkpoint_path,
            row.checkpoint_sha256,
            as_utc(row.created_at),
            row.project_id,
        )


@dataclass(frozen=True)
class CommitRecord:
    """One commit: which image, when, how many objects, counts of each kind of edit."""

    id: int
    image_id: int
    created_at: datetime
    n_objects: int
    summary: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Commit) -> CommitRecord:
        """Record of a ``commits`` row."""
        return cls(row.id, row.image_id, as_utc(row.created_at), row.n_objects, dict(row.summary))


@dataclass(frozen=True)
class CorrectionRecord:
    """One logged edit: ``before_ids`` are prediction ids, ``after_ids`` committed ids."""

    commit_id: int
    image_id: int
    kind: str
    before_ids: tuple[int, ...]
    after_ids: tuple[int, ...]
    created_at: datetime


@dataclass(frozen=True)
class CommitResult:
    """What :meth:`ProjectStore.commit_annotations` returns.

    Parameters
    ----------
    commit_id : int
        The new commit.
    n_objects : int
        Objects stored.
    corrections : Corrections
        The edits logged.
    based_on : int or None
        The commit the caller said its annotations started from (None: from no commit, or not
        said).
    replaced : int or None
        The image's latest commit when this one was written (None: this is its first).
    stale : bool
        True when ``based_on`` was given and is not ``replaced``: someone committed this image
        meanwhile and this commit replaced work its writer had not seen (a
        :class:`~.errors.StaleCommitWarning` was issued too).
    """

    commit_id: int
    n_objects: int
    corrections: Corrections
    based_on: int | None = None
    replaced: int | None = None
    stale: bool = False


#: Status words of an image, in the order "open" prefers what it shows.
STATUSES = ("draft", "committed", "predicted", "new")


@dataclass(frozen=True)
class PredictionRecord:
    """A stored prediction of one image (without its label map).

    ``model_name`` is the model that made it (``"threshold"``, ``"air"``...), ``model_version``
    the store id of its version (None for a base model never recorded).
    """

    id: int
    image_id: int
    model_name: str
    model_version: int | None
    n_objects: int
    created_at: datetime


@dataclass(frozen=True)
class DraftRecord:
    """The stored draft of one image (without its arrays).

    ``revision`` counts the saves of this draft; ``based_on_commit`` is the commit the edits
    started from (None: the image had none); ``prediction_id`` the prediction edited.
    """

    image_id: int
    revision: int
    n_objects: int
    n_edits: int
    shape: tuple[int, ...]
    based_on_commit: int | None
    prediction_id: int | None
    updated_at: datetime


@dataclass(frozen=True)
class ImageStatus:
    """One row of a project's image table (:meth:`ProjectStore.image_statuses`).

    Parameters
    ----------
    image_id, name, path
        The image (``path`` None when it was added from an array).
    status : str
        ``"draft"`` (uncommitted edits are stored), ``"committed"``, ``"predicted"`` or
        ``"new"``: the first that applies, in :data:`STATUSES` order.
    n_objects : int or None
        Objects of what "open" would show (draft, else commit, else prediction); None for new.
    model_name, model_version : str or None, int or None
        The model of the image's latest prediction, if any.
    n_corrections : int
        Draft: edits counted in it; committed: corrections logged by the latest commit.
    last_change : datetime
        Latest of: added, predicted, committed, draft saved (UTC).
    """

    image_id: int
    name: str
    path: str | None
    status: str
    n_objects: int | None
    model_name: str | None
    model_version: int | None
    n_corrections: int
    last_change: datetime
