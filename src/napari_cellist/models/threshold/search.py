"""Fitting the threshold model: a search of its parameters, judged on images it did not fit.

Every candidate (the current parameters first, then a seeded random sample of the search grid)
segments every annotated fitting image once, within a time budget; its matches are kept per
image. The choice is then judged by k-fold cross-validation over those images: in each fold the
best candidate on the other folds is compared with the current parameters on the held-out fold.
The best candidate on all images replaces the current parameters only when that procedure beats
them on average over the held-out folds by ``min_improvement`` AP50; otherwise the current
parameters stay (a search on a few images otherwise picks parameters that fit those images).
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from ...budget import TimeBudget
from ...diameters import diameter_from_labels
from ...images import prepare_grey
from ...metrics import _counts, _scores, score_images
from ...splits import kfold_indices, split_validation
from ...types import FitResult, Progress, Sample
from ..base import params_to_dict
from .params import ThresholdFitParams, ThresholdParams
from .pipeline import segment

if TYPE_CHECKING:
    from .model import ThresholdModel

logger = logging.getLogger(__name__)


def candidate_params(
    base: ThresholdParams, diameter: float, space: ThresholdFitParams
) -> list[ThresholdParams]:
    """The current parameters first, then a seeded random subset of the search grid (in random
    order, so a search cut short by its time budget has tried a random sample)."""
    grid = [
        replace(
            base,
            method=method,
            diameter=round(float(diameter * factor), 1),
            smoothing=round(float(diameter * factor * smooth), 2),
            background_radius=round(float(diameter * factor), 1) if background else None,
            min_area=None,
            level=None,
        )
        for method in space.methods
        for factor in space.diameter_factors
        for smooth in space.smoothing_factors
        for background in space.background
    ]
    rng = np.random.default_rng(space.seed)
    keep = rng.permutation(len(grid))[: max(0, space.max_candidates - 1)]
    return [base] + [grid[i] for i in keep]


def _score(params: ThresholdParams, samples: Sequence[Sample]) -> float:
    preds = [segment(prepare_grey(s.image), params)[0] for s in samples]
    return score_images([s.labels for s in samples], preds).ap50


def _ap50(counts: Sequence[object]) -> float:
    return _scores(counts).ap50


def cross_validated_choice(
    counts: Sequence[Sequence[object]], n_folds: int, seed: int
) -> tuple[int, dict[str, float]]:
    """Index of the candidate to keep, and the cross-validation numbers behind it.

    Parameters
    ----------
    counts : sequence of sequences
        ``counts[c][i]``: the matches of candidate ``c`` on image ``i``
        (``napari_cellist.metrics._counts``); candidate 0 is the current parameters.
    n_folds : int
        Folds of the images (at most one image per fold).
    seed : int
        Seed of the fold assignment.

    Returns
    -------
    best : int
        The candidate with the best pooled AP50 on all images.
    numbers : dict
        ``cv_current_ap50`` and ``cv_selected_ap50`` (mean over held-out folds of the current
        parameters and of the candidate chosen on the other folds), ``cv_gain`` (their
        difference) and ``cv_folds``.
    """
    n_images = len(counts[0])
    pooled = [_ap50(c) for c in counts]
    best = int(np.argmax(pooled))
    if n_images < 2:
        return best, {"cv_folds": 0.0}
    current, selected = [], []
    for held in kfold_indices(n_images, n_folds, seed):
        rest = [i for i in range(n_images) if i not in set(held)]
        choice = int(np.argmax([_ap50([c[i] for i in rest]) for c in counts]))
        current.append(_ap50([counts[0][i] for i in held]))
        selected.append(_ap50([counts[choice][i] for i in held]))
    numbers = {
        "cv_current_ap50": float(np.mean(current)),
        "cv_selected_ap50": float(np.mean(selected)),
        "cv_folds": float(len(current)),
    }
    numbers["cv_gain"] = numbers["cv_selected_ap50"] - numbers["cv_current_ap50"]
    return best, numbers


def search_parameters(
    model: ThresholdModel, samples: Sequence[Sample], space: ThresholdFitParams
) -> Generator[Progress, None, FitResult]:
    """Evaluate candidate parameter sets; keep the cross-validated choice in ``model.params``.

    Yields one Progress per candidate with ``loss = 1 - AP50`` of that candidate (pooled over the
    fitting images) and the best AP50 so far in ``metrics``. The search stops starting new
    candidates once ``space.minutes`` are spent. Closing the generator early leaves
    ``model.params`` unchanged.
    """
    fit, val = split_validation(samples, space.validation_fraction, space.seed)
    if not fit:
        raise ValueError(
            "Fitting the threshold model needs at least one annotated image; commit corrections first."
        )
    diameter = diameter_from_labels(s.labels for s in fit)
    if diameter is None:
        raise ValueError("No annotated objects: commit some annotations before fitting.")
    candidates = candidate_params(model.params, diameter, space)
    budget = TimeBudget.from_minutes(len(candidates), space.minutes)
    images = [prepare_grey(s.image) for s in fit]
    truths = [np.asarray(s.labels) for s in fit]
    counts, history = [], []
    for step, params in enumerate(candidates, start=1):
        counts.append(
            [_counts(t, segment(im, params)[0]) for t, im in zip(truths, images, strict=True)]
        )
        ap = _ap50(counts[-1])
        best_ap = max(_ap50(c) for c in counts)
        progress = Progress(
            step,
            len(candidates) if not budget.spent(step) else step,
            f"AP50 {ap:.3f} (best {best_ap:.3f})",
            loss=1.0 - ap,
            metrics={"ap50": ap, "best_ap50": best_ap},
        )
        history.append(progress)
        yield progress
        if budget.spent(step):
            logger.info("threshold search: budget spent after %d candidates", step)
            break
    best, numbers = cross_validated_choice(counts, space.cv_folds, space.seed)
    current_ap, best_ap = _ap50(counts[0]), _ap50(counts[best])
    # with one image there is nothing to hold out: the margin on that image decides
    gain = (
        numbers.get("cv_gain", best_ap - current_ap)
        if numbers["cv_folds"]
        else best_ap - current_ap
    )
    adopted = best != 0 and gain > space.min_improvement
    if adopted:
        model.params = candidates[best]
    logger.info(
        "threshold search: %d candidates, best AP50 %.3f (current %.3f), cross-validated gain "
        "%.3f: %s",
        len(counts), best_ap, current_ap, gain, "adopted" if adopted else "current parameters kept",
    )  # fmt: skip
    metrics = {
        "ap50": best_ap if adopted else current_ap,
        "initial_ap50": current_ap,
        "candidates": float(len(counts)),
        "adopted": float(adopted),
        **numbers,
    }
    if val:
        metrics["val_ap50"] = _score(model.params, val)
        metrics["val_initial_ap50"] = _score(candidates[0], val)
    return FitResult(
        params=params_to_dict(model.params),
        metrics=metrics,
        data_used=tuple(s.name for s in fit),
        history=tuple(history),
    )
