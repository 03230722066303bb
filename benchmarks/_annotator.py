"""The simulated annotator of ``bench_labelling_loop``: the data, the split, the orders, one round.

A person corrects the current model's prediction of an image until it is the ground truth; the
edits it takes are :func:`napari_cellist.metrics.edit_counts` (delete each false object, add each
missed one, redraw each matched object with IoU < 0.7). The annotator then commits the truth
against the prediction (so the project's corrections log is real) and the product's learning
loop retrains (:func:`napari_cellist.learning_loop.retrain`).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from benchmarks._data import data_folder
from napari_cellist.metrics import EditCounts, edit_counts, edit_counts_pooled, score_images
from napari_cellist.progress import drain

logger = logging.getLogger("bench_labelling_loop")

#: The shared annotated sets the benchmark uses (group name -> data folder).
GROUPS = {"U2OS": "coelho2009_u2os", "NIH3T3": "coelho2009_nih3t3"}
#: Orders of the pool: the product's "what to label next", file order, seeded random.
ORDERS = ("useful", "file", "random")


@dataclass(frozen=True)
class Item:
    """One annotated image: ``image`` (Y, X) grey pixels and ``truth`` (Y, X) instance labels."""

    name: str
    group: str
    image: np.ndarray
    truth: np.ndarray


def load_items(quick: bool = False, crop: int = 320) -> list[Item]:
    """The shared Coelho images (6 U2OS + 6 NIH3T3) in file order, each group's files sorted.

    ``quick`` keeps the top-left ``crop x crop`` pixels of the first three images per group
    (for the test: a few objects per image, seconds per round).
    """
    items = []
    for group, folder_name in GROUPS.items():
        folder = data_folder(folder_name)
        paths = sorted((folder / "images").glob("*.tif"))[: 3 if quick else None]
        for path in paths:
            image = tifffile.imread(path)
            truth = tifffile.imread(folder / "masks" / path.name).astype(np.int32)
            if quick:
                image, truth = image[:crop, :crop], _relabel(truth[:crop, :crop])
            items.append(Item(path.name, group, image, truth))
    return items


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Consecutive label ids 1..N (a crop keeps some ids only)."""
    ids = np.unique(labels)
    ids = ids[ids > 0]
    out = np.zeros_like(labels)
    for new, old in enumerate(ids, start=1):
        out[labels == old] = new
    return out


def split_items(items: Sequence[Item], n_test: int, seed: int) -> tuple[list[Item], list[Item]]:
    """``(test, pool)``: ``n_test`` images per group drawn by ``seed`` (fixed before any run,
    never chosen by score); the pool is the rest of both groups together, in file order
    (sorted by name)."""
    rng = random.Random(seed)
    test = []
    for group in GROUPS:
        names = sorted(i.name for i in items if i.group == group)
        test += rng.sample(names, n_test)
    pool = sorted((i for i in items if i.name not in test), key=lambda i: i.name)
    return [i for i in items if i.name in test], pool


def write_pool(pool: Sequence[Item], folder: Path) -> list[Path]:
    """Write the pool images (no masks) as ``folder/<name>``: added with ``ProjectQueue.add`` as
    a person's unannotated images."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for item in pool:
        path = folder / item.name
        tifffile.imwrite(path, item.image)
        paths.append(path)
    return paths


def order_batch(
    order: str, store: Any, remaining: Sequence[int], size: int, rng: random.Random
) -> list[int]:
    """The next ``size`` image ids to label out of ``remaining`` (added order).

    ``useful``: the first of :func:`napari_cellist.what_next.rank_images` (the remaining images
    must carry the current model's prediction); ``file``: added order; ``random``: seeded.
    """
    if order == "useful":
        from napari_cellist.what_next import rank_images

        wanted = set(remaining)
        return [u.image_id for u in rank_images(store) if u.image_id in wanted][:size]
    if order == "file":
        return list(remaining[:size])
    if order == "random":
        return rng.sample(list(remaining), min(size, len(remaining)))
    raise ValueError(f"unknown order {order!r}; choose one of {', '.join(ORDERS)}")


def annotate(store: Any, image_id: int, truth: np.ndarray) -> EditCounts:
    """Correct the image's stored prediction into ``truth``: count the edits, commit the truth
    against the prediction (the corrections log is the diff). Returns the edits."""
    found = store.load_prediction(image_id)
    if found is None:
        raise ValueError(f"image {image_id} has no prediction to correct; predict it first")
    _, predicted, _ = found
    edits = edit_counts(truth, predicted)
    store.commit_annotations(image_id, truth, previous=predicted)
    return edits


def predict_stored(queue: Any, predictor: Any, image_ids: Sequence[int]) -> float:
    """Predict ``image_ids`` with the predictor's current models into the store; seconds."""
    started = time.perf_counter()
    for image_id in image_ids:
        drain(predictor.predict(queue, image_id))
    return time.perf_counter() - started


def score_test(predictor: Any, queue: Any, test: Sequence[Item]) -> dict[str, Any]:
    """Edits per 100 objects (pooled and per group) and AP50 of the current models on the test
    images (predicted outside the project: the test set is never committed)."""
    started = time.perf_counter()
    preds = [predictor.predict_array(queue, item.image) for item in test]
    seconds = time.perf_counter() - started
    truths = [item.truth for item in test]
    out: dict[str, Any] = {
        "edits_per_100": edit_counts_pooled(truths, preds).per_100_objects,
        "ap50": float(score_images(truths, preds).ap50),
        "predict_seconds": seconds,
    }
    for group in GROUPS:
        pairs = [(t, p) for t, p, i in zip(truths, preds, test, strict=True) if i.group == group]
        if pairs:
            counts = edit_counts_pooled([t for t, _ in pairs], [p for _, p in pairs])
            out[f"edits_per_100_{group}"] = counts.per_100_objects
    return out
