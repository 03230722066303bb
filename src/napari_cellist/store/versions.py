"""Model versions: parameters, lineage (parent), training data, scores and checkpoint checksum."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from .base import StoreBase
from .errors import StoreError
from .pixels import file_sha256
from .records import ModelVersionRecord, PredictionRecord, as_utc
from .schema import Image, ModelVersion, Prediction

logger = logging.getLogger(__name__)


def to_json(value: Any, what: str) -> Any:
    """``value`` with NumPy scalars / arrays, tuples and paths turned into plain JSON types.

    NaN and infinities become None (PostgreSQL's JSON has no NaN).

    Raises
    ------
    ValueError
        Something is left that JSON cannot hold (says which argument).
    """
    if isinstance(value, Mapping):
        return {str(k): to_json(v, what) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json(v, what) for v in value]
    if isinstance(value, (np.generic, np.ndarray)):
        return to_json(value.tolist(), what)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        json.dumps(value)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{what} must be JSON-serialisable (numbers, strings, lists, dicts); "
            f"{value!r} of type {type(value).__name__} is not."
        ) from error
    return value


def is_rejected(metrics: Mapping[str, Any] | None) -> bool:
    """Whether a version's ``metrics`` say the learning loop rejected it
    (``{"loop": {"accepted": false, ...}}``)."""
    loop = (metrics or {}).get("loop")
    return isinstance(loop, Mapping) and loop.get("accepted") is False


class ModelVersionStore(StoreBase):
    """The model-version part of :class:`~.project.ProjectStore`."""

    def add_model_version(
        self,
        name: str,
        params: Mapping[str, Any],
        parent_id: int | None = None,
        data_used: Iterable[Any] = (),
        metrics: Mapping[str, Any] | None = None,
        checkpoint_path: str | os.PathLike | None = None,
    ) -> ModelVersionRecord:
        """Record a new model version.

        Parameters
        ----------
        name : str
            Model name from the registry, e.g. ``"threshold"`` or ``"air"``.
        params : Mapping
            JSON-serialisable parameters the model predicts with (NumPy scalars are converted).
        parent_id : int, optional
            The version it was fine-tuned from.
        data_used : iterable
            Names or ids of the images it was trained on.
        metrics : Mapping, optional
            Scores, e.g. ``{"ap50": 0.8}``.
        checkpoint_path : str or path, optional
            Weights file; its SHA-256 is recorded when the file exists.

        Raises
        ------
        StoreError
            ``parent_id`` is not a model version of this project.
        ValueError
            A value is not JSON-serialisable.
        """
        path = None if checkpoint_path is None else str(Path(checkpoint_path).absolute())
        row = ModelVersion(
            project_id=self._project_id,
            name=str(name),
            params=to_json(dict(params), "params"),
            parent_id=parent_id,
            data_used=to_json(list(data_used), "data_used"),
            metrics=to_json(dict(metrics or {}), "metrics"),
            checkpoint_path=path,
            checkpoint_sha256=file_sha256(path),
        )
        if path is not None and row.checkpoint_sha256 is None:
            logger.warning("checkpoint %s does not exist (yet); no checksum recorded", path)
        with self._write() as session:
            if parent_id is not None:
                self._version_row(session, parent_id)
            session.add(row)
            session.flush()
            record = ModelVersionRecord.from_row(row)
        logger.info("added model version %d (%s)", record.id, record.name)
        return record

    def model_versions(self, name: str | None = None) -> list[ModelVersionRecord]:
        """The project's model versions (of model ``name`` if given), oldest first.

        Other projects' versions are not listed; versions shared by all projects (recorded
        before schema version 4, see :mod:`.migrations`) are.
        """
        query = select(ModelVersion).where(self._in_project()).order_by(ModelVersion.id)
        if name is not None:
            query = query.where(ModelVersion.name == name)
        with self._read() as session:
            return [ModelVersionRecord.from_row(row) for row in session.scalars(query)]

    def model_version(self, version_id: int) -> ModelVersionRecord:
        """The model version ``version_id``; StoreError if there is none."""
        with self._read() as session:
            return ModelVersionRecord.from_row(self._version_row(session, version_id))

    def latest_model_version(self, name: str) -> ModelVersionRecord | None:
        """The newest version of model ``name``, or None if it has none."""
        query = (
            select(ModelVersion)
            .where(ModelVersion.name == name, self._in_project())
            .order_by(ModelVersion.id.desc())
            .limit(1)
        )
        with self._read() as session:
            row = session.scalar(query)
            return None if row is None else ModelVersionRecord.from_row(row)

    def current_model_version(self, name: str) -> ModelVersionRecord | None:
        """The version of model ``name`` to predict with: the newest one not rejected.

        A version the learning loop rejected (``metrics["loop"]["accepted"]`` is false: it
        scored below the version before it on held-out committed images, see
        :func:`napari_cellist.learning_loop.retrain`) is kept for the record but never
        current. Versions recorded outside the loop (no ``"loop"`` entry) count as accepted.
        None when the model has no such version.
        """
        query = (
            select(ModelVersion)
            .where(ModelVersion.name == name, self._in_project())
            .order_by(ModelVersion.id.desc())
        )
        with self._read() as session:
            for row in session.scalars(query):
                if not is_rejected(row.metrics):
                    return ModelVersionRecord.from_row(row)
        return None

    def prediction_history(self) -> list[PredictionRecord]:
        """Every stored prediction of the project's images, oldest first (without label maps):
        which model version predicted which image when (the corrections of a commit belong to
        the image's newest prediction made before it)."""
        query = (
            select(Prediction)
            .join(Image, Prediction.image_id == Image.id)
            .where(Image.project_id == self._project_id)
            .order_by(Prediction.id)
        )
        with self._read() as session:
            return [
                PredictionRecord(
                    int(row.id),
                    int(row.image_id),
                    row.model_name,
                    row.model_version_id,
                    int(row.n_objects),
                    as_utc(row.created_at),
                )
                for row in session.scalars(query)
            ]

    def prediction_objects(self, prediction_ids: Iterable[int]) -> dict[int, dict[int, Any]]:
        """Scores and classes of stored predictions without their label maps:
        ``{prediction id: {label id: ObjectMeta}}`` (ids of other projects are left out).
        Cheap enough to read for every image of a project (the label maps are not decoded)."""
        from ..types import DEFAULT_CLASS, ObjectMeta

        wanted = sorted({int(i) for i in prediction_ids})
        if not wanted:
            return {}
        query = (
            select(Prediction)
            .join(Image, Prediction.image_id == Image.id)
            .where(Image.project_id == self._project_id, Prediction.id.in_(wanted))
        )
        out: dict[int, dict[int, Any]] = {}
        with self._read() as session:
            for row in session.scalars(query):
                out[int(row.id)] = {
                    int(k): ObjectMeta(
                        int(k),
                        score=float(v.get("score", 1.0)),
                        class_name=str(v.get("class_name", DEFAULT_CLASS)),
                        source=row.model_name,
                        model_version=row.model_version_id,
                    )
                    for k, v in (row.objects or {}).items()
                }
        return out

    def load_prediction_by_id(
        self, prediction_id: int
    ) -> tuple[PredictionRecord, np.ndarray, dict[int, Any]] | None:
        """One stored prediction (any, not only an image's newest) of this project:
        ``(record, int32 labels, objects)``; None when there is no such prediction here."""
        from .work import WorkStore

        with self._read() as session:
            row = session.get(Prediction, int(prediction_id))
            if row is None:
                return None
            image = session.get(Image, row.image_id)
            if image is None or image.project_id != self._project_id:
                return None
            labels, objects = WorkStore._prediction_arrays(session, row)
            return WorkStore._prediction_record(row), labels, objects

    def lineage(self, version_id: int) -> list[ModelVersionRecord]:
        """The chain of versions that led to ``version_id``: its root first, itself last."""
        chain: list[ModelVersionRecord] = []
        seen: set[int] = set()
        with self._read() as session:
            current: int | None = version_id
            while current is not None and current not in seen:
                seen.add(current)
                chain.append(ModelVersionRecord.from_row(self._version_row(session, current)))
                current = chain[-1].parent_id
        return chain[::-1]

    def _in_project(self) -> ColumnElement[bool]:
        """Model versions this project sees: its own and the shared ones (``project_id`` NULL)."""
        return or_(ModelVersion.project_id == self._project_id, ModelVersion.project_id.is_(None))

    def _version_row(self, session: Session, version_id: int) -> ModelVersion:
        row = session.get(ModelVersion, int(version_id))
        if row is None or row.project_id not in (None, self._project_id):
            raise StoreError(
                f"There is no model version {version_id} in project {self._project_name!r} of "
                f"{self._where}; list them with store.model_versions()."
            )
        return row
