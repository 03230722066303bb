"""Fitting the threshold model: a search of its parameters for the best AP50 on annotated images."""

from __future__ import annotations

import logging
from collections.abc import Generator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from ...diameters import diameter_from_labels
from ...images import prepare_grey
from ...metrics import score_images
from ...splits import split_validation
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
    """The current parameters first, then a seeded random subset of the search grid."""
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
    return [base] + [grid[i] for i in sorted(keep)]


def _score(model: ThresholdModel, params: ThresholdParams, samples: Sequence[Sample]) -> float:
    preds = [segment(prepare_grey(s.image), params)[0] for s in samples]
    return score_images([s.labels for s in samples], preds).ap50


def search_parameters(
    model: ThresholdModel, samples: Sequence[Sample], space: ThresholdFitParams
) -> Generator[Progress, None, FitResult]:
    """Evaluate candidate parameter sets; keep the best in ``model.params``.

    Yields one Progress per candidate with ``loss = 1 - AP50`` of that candidate and the best
    AP50 so far in ``metrics``. Closing the generator early keeps the best found so far.
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
    best_ap, history = -1.0, []
    default_ap = None
    for step, params in enumerate(candidates, start=1):
        ap = _score(model, params, fit)
        # the current parameters (first candidate) are replaced only by a clear improvement
        still_default = default_ap is not None and best_ap <= default_ap
        margin = space.min_improvement if still_default else 0.0
        default_ap = ap if default_ap is None else default_ap
        if ap > best_ap + margin:
            best_ap, model.params = ap, params
            logger.info("candidate %d: AP50 %.3f (best) %s", step, ap, params)
        progress = Progress(
            step,
            len(candidates),
            f"AP50 {ap:.3f} (best {best_ap:.3f})",
            loss=1.0 - ap,
            metrics={"ap50": ap, "best_ap50": best_ap},
        )
        history.append(progress)
        yield progress
    metrics = {"ap50": best_ap, "initial_ap50": float(default_ap)}
    if val:
        metrics["val_ap50"] = _score(model, model.params, val)
        metrics["val_initial_ap50"] = _score(model, candidates[0], val)
    return FitResult(
        params=params_to_dict(model.params),
        metrics=metrics,
        data_used=tuple(s.name for s in fit),
        history=tuple(history),
    )
