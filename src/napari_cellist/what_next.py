"""What to label next: the images (and objects) most useful to correct, from the model's doubt.

:func:`rank_images` orders the images of a project that have no annotations yet (status
``predicted`` or ``new``) by how useful correcting them would be, from the current model's own
uncertainty on each image's stored prediction:

* ``uncertainty``: the mean of ``1 - score`` over its predicted objects (AIR scores an object
  by its mean presence over its test-time grid shifts, so the disagreement between its grid
  positions is counted here);
* ``low``: the fraction of its objects scored below ``low_score``;
* ``disagreement``: where the image has both a base-model prediction and a target-model one
  (e.g. ``threshold`` and ``air`` or ``"threshold -> sam"``), ``1 - mean best IoU`` of the
  target's objects with the base's (:func:`napari_cellist.metrics.best_matches`).

The usefulness is the mean of the parts the image has (each in [0, 1]). An image predicted with
no object gets :data:`EMPTY_SCORE`. Images without a prediction come after every predicted one,
in the order they were added (predict them to rank them). :func:`uncertain_first` orders the
objects of one image for review, least certain first.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .metrics import best_matches
from .types import ObjectMeta

logger = logging.getLogger(__name__)

#: Objects scored below this count as low-score objects.
LOW_SCORE = 0.5
#: Usefulness of an image predicted with no object (the model may have missed everything).
EMPTY_SCORE = 0.5
#: Statuses of the images :func:`rank_images` ranks (no draft, no commit).
RANKED_STATUSES = ("predicted", "new")


@dataclass(frozen=True)
class Usefulness:
    """How useful one image is to correct next (higher = more useful).

    Parameters
    ----------
    image_id : int
        The image.
    name : str
        Its name.
    score : float
        Usefulness in [0, 1]; 0 for an image without a prediction (ranked last regardless).
    reason : str
        What the score comes from, for the user.
    parts : dict
        The parts averaged: ``uncertainty``, ``low`` and (when both predictions exist)
        ``disagreement``.
    predicted : bool
        The image has a prediction (images without one rank after every predicted one).
    """

    image_id: int
    name: str
    score: float
    reason: str
    parts: dict[str, float]
    predicted: bool = True


def uncertain_first(objects: Mapping[int, ObjectMeta]) -> list[int]:
    """Label ids ordered by score ascending (least certain first); ties by label id."""
    return sorted(objects, key=lambda i: (float(objects[i].score), int(i)))


def uncertainty_parts(
    objects: Mapping[int, ObjectMeta], low_score: float = LOW_SCORE
) -> dict[str, float]:
    """``{"uncertainty": mean(1 - score), "low": fraction of scores < low_score}``; empty
    for no object."""
    scores = np.array([float(m.score) for m in objects.values()], float)
    if not len(scores):
        return {}
    return {
        "uncertainty": float(np.mean(1.0 - np.clip(scores, 0.0, 1.0))),
        "low": float(np.mean(scores < low_score)),
    }


def disagreement(base: np.ndarray, target: np.ndarray) -> float | None:
    """``1 - mean best IoU`` of ``target``'s objects with ``base``'s (same shape); None when
    neither has an object, 1 when only one of them has."""
    target_ids, _, best = best_matches(target, base)
    if not len(target_ids):
        return None if not np.any(base) else 1.0
    return float(1.0 - np.mean(best))


def usefulness_of(
    image_id: int,
    name: str,
    objects: Mapping[int, ObjectMeta],
    second_opinion: float | None = None,
    low_score: float = LOW_SCORE,
) -> Usefulness:
    """The usefulness of one predicted image from its objects' scores and, if given, the
    disagreement of a second model (see the module docstring)."""
    parts = uncertainty_parts(objects, low_score)
    if second_opinion is not None:
        parts["disagreement"] = float(second_opinion)
    if not objects:
        score = EMPTY_SCORE if second_opinion is None else max(EMPTY_SCORE, second_opinion)
        return Usefulness(image_id, name, score, "no object predicted", parts)
    score = float(np.mean(list(parts.values())))
    reason = (
        f"mean doubt {parts['uncertainty']:.2f}, {100 * parts['low']:.0f}% of "
        f"{len(objects)} objects scored below {low_score:g}"
    )
    if second_opinion is not None:
        reason += f", models disagree {second_opinion:.2f}"
    return Usefulness(image_id, name, score, reason, parts)


def rank_images(
    store: Any,
    *,
    low_score: float = LOW_SCORE,
    statuses: Sequence[str] = RANKED_STATUSES,
) -> list[Usefulness]:
    """The project's images without annotations, most useful to correct first.

    Parameters
    ----------
    store : ProjectStore
        The project (read-only is enough).
    low_score : float
        Objects scored below this are low-score objects.
    statuses : sequence of str
        Image statuses ranked (default: ``predicted`` and ``new``).

    Returns
    -------
    list of Usefulness
        Predicted images by usefulness (descending; ties in the order added), then the images
        without a prediction in the order added.
    """
    history = _predictions_by_image(store)
    latest = {image_id: found[0] for image_id, found in history.items()}
    objects = store.prediction_objects(p.id for p in latest.values())
    predicted, unpredicted = [], []
    for row in store.image_statuses():
        if row.status not in statuses:
            continue
        record = latest.get(row.image_id)
        if record is None or record.id not in objects:
            unpredicted.append(
                Usefulness(row.image_id, row.name, 0.0, "not predicted yet", {}, predicted=False)
            )
            continue
        opinion = _disagreement(store, history[row.image_id])
        predicted.append(
            usefulness_of(row.image_id, row.name, objects[record.id], opinion, low_score)
        )
    predicted.sort(key=lambda u: -u.score)  # stable: ties keep the added order
    return predicted + unpredicted


def _model_kind(model_name: str) -> str:
    """``"base"`` or ``"target"`` of a prediction's model (``"a -> b"`` is a target's)."""
    from .models import REGISTRY

    if "->" in model_name:
        return "target"
    entry = REGISTRY.get(model_name.strip())
    return "base" if entry is None else entry.kind


def _predictions_by_image(store: Any) -> dict[int, list[Any]]:
    """Each image's predictions (records, no label maps), newest first."""
    out: dict[int, list[Any]] = {}
    for record in reversed(store.prediction_history()):
        out.setdefault(record.image_id, []).append(record)
    return out


def _disagreement(store: Any, history: Sequence[Any]) -> float | None:
    """Disagreement of the image's latest prediction with its newest one of the other kind
    (base vs target), if it has one; only then are label maps read."""
    latest = history[0]
    kind = _model_kind(latest.model_name)
    other = next((p for p in history[1:] if _model_kind(p.model_name) != kind), None)
    if other is None:
        return None
    mine, theirs = store.load_prediction_by_id(latest.id), store.load_prediction_by_id(other.id)
    if mine is None or theirs is None or mine[1].shape != theirs[1].shape:
        return None
    base, target = (mine[1], theirs[1]) if kind == "base" else (theirs[1], mine[1])
    return disagreement(base, target)
