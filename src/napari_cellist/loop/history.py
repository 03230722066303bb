"""The learning loop's record: versions over time (for the plot) and corrections per commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..store.versions import is_rejected
from .data import CORRECTION_KINDS


@dataclass(frozen=True)
class VersionPoint:
    """One version of a model, for the plot of validation score over time.

    ``score`` is the held-out AP50 the loop measured (None for versions recorded outside the
    loop); ``accepted`` is False only for versions the loop rejected.
    """

    version_id: int
    created_at: datetime
    score: float | None
    accepted: bool
    n_train_images: int


@dataclass(frozen=True)
class CorrectionsRow:
    """The corrections of one commit: which image, which model predicted what was corrected.

    ``counts`` has one entry per kind of :data:`CORRECTION_KINDS`; ``total`` is their sum;
    ``n_objects`` the objects committed. ``model_name`` / ``model_version`` are those of the
    image's latest prediction made before the commit (None: it was drawn without one).
    """

    image_id: int
    name: str
    commit_id: int
    committed_at: datetime
    model_name: str | None
    model_version: int | None
    counts: dict[str, int]
    total: int
    n_objects: int

    @property
    def per_object(self) -> float:
        """Corrections per committed object (0 for an empty commit)."""
        return self.total / self.n_objects if self.n_objects else float(self.total)


# -- when ----------------------------------------------------------------------------------------
def commits_since_last_training(store: Any, model: str) -> int:
    """Commits made since the newest version of ``model`` was recorded (all commits if none).

    Versions recorded by the loop remember the last commit they saw; others count by time.
    """
    commits = store.commits()
    last = store.latest_model_version(model)
    if last is None:
        return len(commits)
    seen = (last.metrics.get("loop") or {}).get("last_commit_id")
    if seen is not None:
        return sum(c.id > int(seen) for c in commits)
    return sum(c.created_at > last.created_at for c in commits)


# -- history -------------------------------------------------------------------------------------
def version_history(store: Any, model: str) -> list[VersionPoint]:
    """Every version of ``model``, oldest first, with its held-out score and decision."""
    points = []
    for record in store.model_versions(model):
        loop = record.metrics.get("loop") or {}
        score = loop.get("score")
        points.append(
            VersionPoint(
                record.id,
                record.created_at,
                None if score is None else float(score),
                not is_rejected(record.metrics),
                len(set(record.data_used)),
            )
        )
    return points


def corrections_by_image(store: Any) -> list[CorrectionsRow]:
    """One row per commit, oldest first: the image, the model version whose prediction was
    corrected, the corrections per kind from the store's log, and the objects committed."""
    counts: dict[int, dict[str, int]] = {}
    for record in store.corrections():
        row = counts.setdefault(record.commit_id, dict.fromkeys(CORRECTION_KINDS, 0))
        row[record.kind] = row.get(record.kind, 0) + 1
    names = {r.id: r.name for r in store.images()}
    predictions = _predictions_by_image(store)
    rows = []
    for commit in store.commits():
        kinds = counts.get(commit.id, dict.fromkeys(CORRECTION_KINDS, 0))
        before = [p for p in predictions.get(commit.image_id, []) if p[0] <= commit.created_at]
        model_name, version = (before[-1][1], before[-1][2]) if before else (None, None)
        rows.append(
            CorrectionsRow(
                commit.image_id,
                names.get(commit.image_id, str(commit.image_id)),
                commit.id,
                commit.created_at,
                model_name,
                version,
                kinds,
                sum(kinds.values()),
                commit.n_objects,
            )
        )
    return rows


def _predictions_by_image(store: Any) -> dict[int, list[tuple[datetime, str, int | None]]]:
    out: dict[int, list[tuple[datetime, str, int | None]]] = {}
    for p in store.prediction_history():
        out.setdefault(p.image_id, []).append((p.created_at, p.model_name, p.model_version))
    return out
