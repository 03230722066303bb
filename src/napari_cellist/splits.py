"""The train / validation split of annotated samples, shared by every trainable model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .types import Sample


def split_validation(
    samples: Sequence[Sample], fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """Split the annotated samples (those with ``labels``) into (fit, validation).

    Parameters
    ----------
    samples : sequence of Sample
        Samples; those without labels are left out of both parts.
    fraction : float
        Share of the annotated samples held out for validation, rounded; when positive and
        there are at least two annotated samples, at least one is held out and one is kept.
    seed : int
        Seed of the draw: the same samples, fraction and seed give the same split.

    Returns
    -------
    fit, validation : list of Sample
        Each in the order the samples were given; validation is empty for fraction 0.
    """
    annotated = [s for s in samples if s.labels is not None]
    n_val = int(round(fraction * len(annotated)))
    if fraction > 0 and len(annotated) > 1:
        n_val = min(max(1, n_val), len(annotated) - 1)
    else:
        n_val = 0
    order = np.random.default_rng(seed).permutation(len(annotated))
    validation = [annotated[i] for i in sorted(order[:n_val])]
    fit = [annotated[i] for i in sorted(order[n_val:])]
    return fit, validation


def kfold_indices(n_items: int, n_folds: int, seed: int) -> list[list[int]]:
    """Indices of ``n_items`` items dealt into ``min(n_folds, n_items)`` folds, seeded.

    Parameters
    ----------
    n_items : int
        Number of items (images), at least 1.
    n_folds : int
        Requested number of folds (at least 2); with fewer items, one item per fold
        (leave-one-out).
    seed : int
        Seed of the shuffle: the same arguments give the same folds.

    Returns
    -------
    list of list of int
        Disjoint folds, sorted indices each, covering ``range(n_items)``; sizes differ by at most 1.
    """
    if n_items < 1 or n_folds < 2:
        raise ValueError(
            f"k-fold needs at least one item and two folds, got {n_items} items and {n_folds} "
            "folds."
        )
    order = np.random.default_rng(seed).permutation(n_items)
    k = min(n_folds, n_items)
    return [sorted(int(i) for i in order[f::k]) for f in range(k)]
