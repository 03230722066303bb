"""The learning loop's data: committed images in commit order, the held-out split, the
training weights from the corrections log, and samples read from the store."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..images import prepare_grey
from ..types import Sample

#: Kinds of corrections in the store's log, in the order rows list them.
CORRECTION_KINDS = ("added", "deleted", "modified", "merged", "split")
#: Most copies of one image in a training list (``weight_by_corrections``).
MAX_REPEATS = 3


def committed_in_order(store: Any) -> list[int]:
    """Ids of the images with committed annotations, by their first commit (oldest first)."""
    first: dict[int, int] = {}
    for commit in store.commits():
        first.setdefault(commit.image_id, commit.id)
    return sorted(first, key=first.__getitem__)


def split_held_out(image_ids: Sequence[int], fraction: float) -> tuple[list[int], list[int]]:
    """``(train, held_out)`` of image ids in commit order (see the module docstring).

    Every k-th image from the 2nd on is held out, ``k = max(2, round(1 / fraction))``;
    nothing is held out with fewer than two images or ``fraction == 0``.
    """
    ids = list(image_ids)
    if fraction <= 0 or len(ids) < 2:
        return ids, []
    k = max(2, round(1.0 / fraction))
    held = [i for n, i in enumerate(ids) if n % k == 1]
    return [i for i in ids if i not in held], held


def correction_weights(store: Any, image_ids: Sequence[int]) -> dict[int, int]:
    """How many times each image goes into the training list: ``1 + round(2 * c)``, capped at
    :data:`MAX_REPEATS`, where ``c`` is the corrections per object of its latest commit in the
    store's corrections log (0 for imported masks: nothing corrected); divided by their
    greatest common divisor (equal weights: one copy each)."""
    wanted = set(image_ids)
    latest: dict[int, Any] = {}
    for commit in store.commits():
        if commit.image_id in wanted:
            latest[commit.image_id] = commit
    per_commit: dict[int, int] = {}
    for record in store.corrections():
        per_commit[record.commit_id] = per_commit.get(record.commit_id, 0) + 1
    weights = {}
    for image_id in image_ids:
        commit = latest.get(image_id)
        n = 0 if commit is None else per_commit.get(commit.id, 0)
        rate = n / commit.n_objects if commit is not None and commit.n_objects else float(n > 0)
        weights[image_id] = int(min(MAX_REPEATS, 1 + round(2 * rate)))
    common = math.gcd(*weights.values()) if weights else 1  # equal weights: one copy each
    return {i: w // common for i, w in weights.items()}


def committed_sample(store: Any, image_id: int) -> Sample:
    """The image's grey pixels with its committed label map and points.

    A commit of points without objects is a points-only annotation: ``labels`` is None (as in
    :meth:`~napari_cellist.store.ProjectStore.annotated_samples`), so it can train a model that
    learns from points (AIR) but cannot be scored.
    """
    labels, _ = store.load_annotations(image_id)
    pixels = store.load_pixels(image_id)
    rgb = pixels.ndim == 3 and pixels.shape[-1] in (3, 4) and labels.ndim == 2
    points = store.load_points(image_id)
    points = None if points is None or not len(points) else points
    if points is not None and not labels.any():
        labels = None
    return Sample(prepare_grey(pixels, rgb=rgb), labels, points, store.image(image_id).name)
