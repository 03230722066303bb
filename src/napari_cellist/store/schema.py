"""The project store's tables (SQLAlchemy 2 ORM) and their version.

JSON columns hold plain lists / dicts (shapes, polygons ``[[row, col], ...]``, COCO RLE dicts,
boxes, parameters). Times are UTC. Bump :data:`SCHEMA_VERSION` and add a step to
:mod:`.migrations` for every change of these tables.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.mysql import LONGBLOB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Version of the tables below; stored as ``meta.schema_version``.
SCHEMA_VERSION = 5

CORRECTION_KINDS = ("added", "deleted", "modified", "merged", "split")
ACCEPTED = "accepted"
SUPERSEDED = "superseded"
# MySQL's plain BLOB holds 64 KiB only
_BLOB = LargeBinary().with_variant(LONGBLOB(), "mysql", "mariadb")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of the store's tables."""


class Meta(Base):
    """Key/value facts about the store itself (``schema_version``)."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Project(Base):
    """A named set of images; a store has at least the ``default`` project."""

    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Image(Base):
    """An image of a project, identified by the hash of its pixels."""

    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("project_id", "content_hash", name="uq_image_hash"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    path: Mapped[str | None] = mapped_column(Text, nullable=True)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    shape: Mapped[list] = mapped_column(JSON)
    dtype: Mapped[str] = mapped_column(String(32))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # zlib-compressed np.save bytes; deferred so that listing images never loads pixels
    pixels: Mapped[bytes | None] = mapped_column(_BLOB, nullable=True, deferred=True)


class Commit(Base):
    """One press of *Commit* on one image: the annotations it stored and a summary of edits."""

    __tablename__ = "commits"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # {"added": n, "deleted": n, "modified": n, "merged": n, "split": n, "unchanged": n}
    summary: Mapped[dict] = mapped_column(JSON)
    n_objects: Mapped[int] = mapped_column(Integer)
    # spatial shape of the committed label map (the image may carry colour / channel axes)
    shape: Mapped[list] = mapped_column(JSON)
    # added in schema version 3, see migrations.migrate_2_to_3: the committed point annotations,
    # [[row, col], ...] or [[plane, row, col], ...] pixels; NULL = no points committed. Deferred:
    # listing commits never loads them.
    points: Mapped[list | None] = mapped_column(
        JSON(none_as_null=True), nullable=True, deferred=True
    )


class ModelVersion(Base):
    """A trained or configured model: parameters, lineage, training data and scores."""

    __tablename__ = "model_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # added in schema version 4, see migrations.migrate_3_to_4: the project the version belongs
    # to; NULL for an older version that could not be traced to one project (seen by all)
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=True, index=True
    )
    name: Mapped[str] = mapped_column(String(255), index=True)
    params: Mapped[dict] = mapped_column(JSON)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"), nullable=True)
    data_used: Mapped[list] = mapped_column(JSON)
    metrics: Mapped[dict] = mapped_column(JSON)
    checkpoint_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    # added in schema version 2, see migrations.migrate_1_to_2
    checkpoint_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Annotation(Base):
    """One committed object of one image.

    ``rle`` is :func:`napari_cellist.geometry.encode_mask` of the object's mask cropped to
    ``box``; ``polygon`` its outline in image coordinates (2D only). Rows of earlier commits stay
    with status ``superseded`` as history; the latest commit's rows are ``accepted``.
    """

    __tablename__ = "annotations"
    __table_args__ = (Index("ix_annotations_image_status", "image_id", "status"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    commit_id: Mapped[int] = mapped_column(ForeignKey("commits.id", ondelete="CASCADE"), index=True)
    label_id: Mapped[int] = mapped_column(Integer)
    class_name: Mapped[str] = mapped_column(String(255))
    polygon: Mapped[list | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    rle: Mapped[dict] = mapped_column(JSON)
    box: Mapped[list] = mapped_column(JSON)
    area: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(255))
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL"), nullable=True
    )
    status: Mapped[str] = mapped_column(String(16), default=ACCEPTED)
    committed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Correction(Base):
    """One edit a person made before a commit (what turned the prediction into the truth)."""

    __tablename__ = "corrections"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('added', 'deleted', 'modified', 'merged', 'split')", name="ck_correction_kind"
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    commit_id: Mapped[int] = mapped_column(ForeignKey("commits.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    before_ids: Mapped[list] = mapped_column(JSON)  # label ids of the prediction
    after_ids: Mapped[list] = mapped_column(JSON)  # label ids of the committed label map


class Prediction(Base):
    """A model's prediction of one image (added in schema version 5).

    ``labels`` is :func:`~napari_cellist.store.pixels.pack_pixels` of the int32 label map (one
    compressed blob: a prediction is only ever read and written whole); ``objects`` the scores /
    classes by label id. The newest row of an image is its current prediction.
    """

    __tablename__ = "predictions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    model_name: Mapped[str] = mapped_column(String(255))
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL"), nullable=True
    )
    n_objects: Mapped[int] = mapped_column(Integer)
    # {label_id: {"score": float, "class_name": str}}
    objects: Mapped[dict] = mapped_column(JSON)
    labels: Mapped[bytes] = mapped_column(_BLOB, deferred=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Draft(Base):
    """The uncommitted edits of one image (added in schema version 5): at most one per image.

    Written by :class:`napari_cellist.drafts.DraftWriter` every second or so while a person
    edits; :meth:`~napari_cellist.store.ProjectStore.commit_draft` turns it into a commit and
    deletes it. ``labels`` is a packed int32 label map; ``polygons`` packed outlines by id,
    ``classes`` ``{id: class name}``, ``points`` ``[[row, col], ...]`` (NULL: not given).
    """

    __tablename__ = "drafts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), unique=True)
    labels: Mapped[bytes] = mapped_column(_BLOB, deferred=True)
    shape: Mapped[list] = mapped_column(JSON)
    # packed outlines (see work.pack_polygons): a blob, not JSON, so that saving thousands of
    # outlines every second does not hold the GIL for long on the viewer's writer thread
    polygons: Mapped[bytes | None] = mapped_column(_BLOB, nullable=True, deferred=True)
    classes: Mapped[dict | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    points: Mapped[list | None] = mapped_column(
        JSON(none_as_null=True), nullable=True, deferred=True
    )
    n_objects: Mapped[int] = mapped_column(Integer)
    # edits made since the draft was started (as counted by the editor; 0 when not counted)
    n_edits: Mapped[int] = mapped_column(Integer, default=0)
    # the commit the edits started from (None: the image had none), and the prediction edited
    based_on_commit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    prediction_id: Mapped[int | None] = mapped_column(
        ForeignKey("predictions.id", ondelete="SET NULL"), nullable=True
    )
    # how many times the draft was saved; a commit checks it did not change under it
    revision: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
