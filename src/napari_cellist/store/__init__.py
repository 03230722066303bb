"""The project store: images, committed annotations, corrections log and model versions.

SQLite (one file, no configuration) by default; PostgreSQL or MySQL by URL for teams. See
:class:`ProjectStore`. Nothing here imports Qt or napari.
"""

from __future__ import annotations

from .errors import (
    SchemaVersionError,
    StaleCommitError,
    StaleCommitWarning,
    StoreError,
    StoreNotFoundError,
)
from .project import UNCHECKED, ProjectStore
from .records import (
    STATUSES,
    CommitRecord,
    CommitResult,
    CorrectionRecord,
    DraftRecord,
    ImageRecord,
    ImageStatus,
    ModelVersionRecord,
    PredictionRecord,
)
from .schema import SCHEMA_VERSION
from .work import DraftSnapshot, StoredDraft

__all__ = [
    "SCHEMA_VERSION",
    "CommitRecord",
    "CommitResult",
    "CorrectionRecord",
    "DraftRecord",
    "DraftSnapshot",
    "ImageStatus",
    "PredictionRecord",
    "STATUSES",
    "StoredDraft",
    "ImageRecord",
    "ModelVersionRecord",
    "ProjectStore",
    "UNCHECKED",
    "SchemaVersionError",
    "StaleCommitError",
    "StaleCommitWarning",
    "StoreError",
    "StoreNotFoundError",
]
