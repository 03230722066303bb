"""Whole-image SAM: "segment everything" and refinement of existing objects by their boxes.

Both work on a :class:`~.interactive.PromptableSegmenter` whose embedding is already set (so the
cached, tiled embedding is reused) and return a :class:`~napari_cellist.types.Prediction`.
Overlapping SAM masks become one label map by :func:`paint_masks`: smaller masks first, each
taking only still-free pixels, a mask dropped when less than half of it stays visible (in cell
images the large, overlapping masks are usually clusters of the small ones).
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...geometry import bounding_boxes
from ...types import DEFAULT_CLASS, ObjectMeta, Prediction, Progress
from .embeddings import Tile, activate
from .interactive import PromptableSegmenter
from .prompts import box_to_xyxy

SOURCE = "sam"


@dataclass(frozen=True)
class AutomaticParams:
    """Parameters of ``SamAutomaticMaskGenerator`` (see its docstring) used here."""

    points_per_side: int = 32
    points_per_batch: int = 32
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    box_nms_thresh: float = 0.7
    min_mask_region_area: int = 0


# An object should span at least this many pixels of SAM's 256 x 256 low-resolution masks.
MIN_OBJECT_MASK_PX = 6.0
# Prompt spacing in object diameters: a grid this fine puts a point inside every round object
# (a disk of diameter d always holds a point of a square grid of spacing < d / sqrt(2)).
POINT_SPACING = 0.7


@dataclass(frozen=True)
class EverythingPlan:
    """How "segment everything" covers an image, and what it will cost.

    Parameters
    ----------
    tile_size : int
        Tile edge in image pixels (each tile is resized to the model's input).
    overlap : int
        Overlap of neighbouring tiles in pixels (at least one object diameter).
    points_per_side : int
        Prompt grid per tile side.
    n_tiles : int
        Tiles of the image.
    diameter : float
        Object diameter in pixels the plan is sized for.
    seconds : float or None
        Estimated run time (embedding and decoding) on the model's device, when known.
    """

    tile_size: int
    overlap: int
    points_per_side: int
    n_tiles: int
    diameter: float
    seconds: float | None = None

    @property
    def prompts(self) -> int:
        """Prompt points decoded in all (tiles x points per tile)."""
        return self.n_tiles * self.points_per_side**2

    def describe(self) -> str:
        """One line for a progress bar / the log."""
        from .estimates import describe_seconds

        cost = "" if self.seconds is None else f", {describe_seconds(self.seconds)}"
        return (
            f"segment everything: {self.n_tiles} tile(s) of {self.tile_size} px, "
            f"{self.points_per_side}x{self.points_per_side} points each for objects of "
            f"~{self.diameter:.0f} px{cost}"
        )


def plan_everything(
    image_shape: tuple[int, int],
    diameter: float,
    model_input: int,
    max_points_per_side: int = 32,
    min_points_per_side: int = 4,
) -> EverythingPlan:
    """Size the tile grid and the prompt grid to the image and the objects.

    A tile is as large as possible while an object of ``diameter`` still spans
    :data:`MIN_OBJECT_MASK_PX` pixels of SAM's low-resolution mask (``diameter * 256 / tile``),
    never smaller than the model's input (a tiny model does not cut an image into hundreds of
    tiles), never larger than the image. Prompts are spaced :data:`POINT_SPACING` diameters
    apart, at most ``max_points_per_side`` per side.

    Parameters
    ----------
    image_shape : tuple of int
        ``(Y, X)`` in pixels.
    diameter : float
        Typical object diameter in pixels (> 0).
    model_input : int
        The model's input edge (``sam.image_encoder.img_size``: 1024 for the official models).
    max_points_per_side, min_points_per_side : int
        Bounds of the prompt grid per tile side.
    """
    if diameter <= 0:
        raise ValueError(f"The object diameter must be positive, got {diameter}.")
    from .embeddings import tile_grid

    longest = max(int(image_shape[0]), int(image_shape[1]))
    wanted = int(diameter * 256 / MIN_OBJECT_MASK_PX)
    tile = min(max(wanted, int(model_input)), longest)
    overlap = min(int(np.ceil(1.5 * diameter)), tile // 2)
    points = int(np.ceil(tile / (POINT_SPACING * diameter)))
    points = int(
        np.clip(points, min_points_per_side, max(min_points_per_side, max_points_per_side))
    )
    n_tiles = len(tile_grid(tuple(int(v) for v in image_shape), tile, overlap))
    return EverythingPlan(tile, overlap, points, n_tiles, float(diameter))


def estimate_plan(plan: EverythingPlan, sam: Any) -> EverythingPlan:
    """``plan`` with :attr:`EverythingPlan.seconds` estimated for ``sam`` on its device."""
    from dataclasses import replace

    from .estimates import decoder_seconds_per_point, embedding_seconds

    per_point = decoder_seconds_per_point(sam, plan.tile_size)
    seconds = embedding_seconds(sam, plan.n_tiles) + plan.prompts * per_point
    return replace(plan, seconds=seconds)


def paint_masks(
    masks: Sequence[np.ndarray],
    scores: Sequence[float],
    shape: tuple[int, int],
    ids: Sequence[int] | None = None,
    min_area: int = 1,
    min_visible: float = 0.5,
) -> tuple[np.ndarray, dict[int, float]]:
    """Combine possibly overlapping bool masks into one int32 label map.

    Parameters
    ----------
    masks : sequence of np.ndarray
        bool ``(Y, X)`` masks of ``shape``.
    scores : sequence of float
        One score per mask.
    shape : tuple of int
        ``(Y, X)``.
    ids : sequence of int, optional
        Label id per mask (default 1..N in the order given).
    min_area : int
        Masks with fewer visible pixels are dropped.
    min_visible : float
        Masks of which a smaller fraction stays visible are dropped.

    Returns
    -------
    labels : np.ndarray
        int32 ``shape``.
    scores : dict
        ``{label_id: score}`` of the objects kept.
    """
    labels = np.zeros(shape, np.int32)
    ids = list(range(1, len(masks) + 1)) if ids is None else list(ids)
    kept: dict[int, float] = {}
    for i in np.argsort([int(m.sum()) for m in masks], kind="stable"):
        visible = masks[i] & (labels == 0)
        n_visible = int(visible.sum())
        if n_visible < max(min_area, 1) or n_visible < min_visible * int(masks[i].sum()):
            continue
        labels[visible] = ids[i]
        kept[int(ids[i])] = float(scores[i])
    return labels, kept


def to_prediction(
    labels: np.ndarray, scores: Mapping[int, float], classes: Mapping[int, str] | None = None
) -> Prediction:
    """Prediction with source ``sam`` from a label map and per-object scores."""
    classes = classes or {}
    objects = {
        int(i): ObjectMeta(
            int(i),
            float(np.clip(scores.get(int(i), 1.0), 0.0, 1.0)),
            classes.get(int(i), DEFAULT_CLASS),
            box,
            SOURCE,
        )
        for i, box in bounding_boxes(labels).items()
    }
    return Prediction(labels=labels, objects=objects, source=SOURCE)


def _core(
    tile: Tile, tiles: Sequence[Tile], shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` (row, col) bounds of the part of ``tile`` it owns among ``tiles``."""
    low, high = np.zeros(2), np.asarray(shape, float)
    for axis in range(2):
        start = tile.origin[axis]
        end = start + tile.shape[axis]
        others = sorted({t.origin[axis] for t in tiles})
        before = [s for s in others if s < start]
        after = [s for s in others if s > start]
        if before:
            low[axis] = (before[-1] + tile.shape[axis] + start) / 2
        if after:
            high[axis] = (end + after[0]) / 2
    return low, high


def segment_everything_iter(
    segmenter: PromptableSegmenter, params: AutomaticParams | None = None
) -> Generator[Progress, None, Prediction]:
    """Run ``SamAutomaticMaskGenerator`` on every tile of the current embedding.

    A mask found in a tile is kept when the centre of its box lies in the part of the tile that
    tile owns (up to the middle of each overlap), so objects in overlaps are kept once.
    """
    from .torchvision_compat import load_segment_anything

    params = params or AutomaticParams()
    embedding = _require_embedding(segmenter)
    generator = load_segment_anything().SamAutomaticMaskGenerator(
        segmenter.sam,
        points_per_side=params.points_per_side,
        points_per_batch=params.points_per_batch,
        pred_iou_thresh=params.pred_iou_thresh,
        stability_score_thresh=params.stability_score_thresh,
        box_nms_thresh=params.box_nms_thresh,
        min_mask_region_area=params.min_mask_region_area,
    )
    generator.predictor = _cached_predictor(segmenter.sam)
    tiles = [item.tile for item in embedding.tiles]
    masks, scores = [], []
    for i, item in enumerate(embedding.tiles):
        generator.predictor.preset(item)
        dummy = np.zeros(item.tile.shape + (3,), np.uint8)  # features come from the cache
        low, high = _core(item.tile, tiles, embedding.image_shape)
        for record in generator.generate(dummy):
            x, y, w, h = record["bbox"]
            centre = np.array([y + h / 2, x + w / 2]) + item.tile.origin
            if np.all(centre >= low) and np.all(centre < high):
                full = np.zeros(embedding.image_shape, bool)
                full[item.tile.slices] = record["segmentation"]
                masks.append(full)
                scores.append(float(record["predicted_iou"]))
        yield Progress(i + 1, len(tiles), f"segment everything: tile {i + 1}/{len(tiles)}")
    labels, kept = paint_masks(
        masks, scores, embedding.image_shape, min_area=max(1, params.min_mask_region_area)
    )
    return to_prediction(labels, kept)


def refine_boxes_iter(
    segmenter: PromptableSegmenter,
    labels: np.ndarray,
    classes: Mapping[int, str] | None = None,
    batch_size: int = 16,
) -> Generator[Progress, None, Prediction]:
    """Replace each object of ``labels`` by SAM's mask for the object's bounding box.

    Parameters
    ----------
    segmenter : PromptableSegmenter
        With the embedding of the image ``labels`` annotates.
    labels : np.ndarray
        int ``(Y, X)`` instance label map (from threshold, Cellpose, AIR or a person).
    classes : mapping, optional
        ``{label_id: class}`` carried over to the result.
    batch_size : int
        Boxes per SAM decoder call.

    Returns
    -------
    Prediction
        Same label ids; an object keeps its old mask where SAM returns an empty one.
    """
    embedding = _require_embedding(segmenter)
    if tuple(labels.shape) != embedding.image_shape:
        raise ValueError(
            f"Label map {labels.shape} does not match the image {embedding.image_shape}."
        )
    boxes = bounding_boxes(np.asarray(labels))
    ids = list(boxes)
    by_tile: dict[int, list[int]] = {}
    for label_id in ids:
        by_tile.setdefault(segmenter.choose_tile(None, boxes[label_id]), []).append(label_id)
    masks: dict[int, np.ndarray] = {}
    scores: dict[int, float] = {}
    done = 0
    for index, tile_ids in by_tile.items():
        item = embedding.tiles[index]
        segmenter.use_tile(index)
        for start in range(0, len(tile_ids), batch_size):
            batch = tile_ids[start : start + batch_size]
            tile_masks, tile_scores = _predict_boxes(
                segmenter.predictor, item, [boxes[i] for i in batch]
            )
            for label_id, mask, score in zip(batch, tile_masks, tile_scores, strict=True):
                full = np.zeros(embedding.image_shape, bool)
                full[item.tile.slices] = mask
                masks[label_id] = full if mask.any() else labels == label_id
                scores[label_id] = score if mask.any() else 0.0
            done += len(batch)
            yield Progress(done, len(ids), f"SAM box refinement: {done}/{len(ids)} objects")
    out, kept = paint_masks(
        [masks[i] for i in ids],
        [scores[i] for i in ids],
        embedding.image_shape,
        ids=ids,
        min_visible=0.0,
    )
    for label_id in set(ids) - set(kept):  # hidden under other objects' SAM masks: keep its pixels
        free = (np.asarray(labels) == label_id) & (out == 0)
        out[free] = label_id
        kept[label_id] = 0.0
    return to_prediction(out, kept, classes)


def _predict_boxes(
    predictor: Any, item: Any, boxes: list[tuple[int, ...]]
) -> tuple[np.ndarray, list[float]]:
    import torch

    xyxy = np.stack([box_to_xyxy(b, item.tile.origin) for b in boxes])
    transformed = predictor.transform.apply_boxes(xyxy, item.tile.shape)
    with torch.no_grad():
        masks, iou, _ = predictor.predict_torch(
            None,
            None,
            boxes=torch.as_tensor(transformed, dtype=torch.float32, device=predictor.device),
            multimask_output=False,
        )
    return masks[:, 0].cpu().numpy(), [float(v) for v in iou[:, 0]]


def _require_embedding(segmenter: PromptableSegmenter) -> Any:
    if segmenter.embedding is None:
        raise ValueError("No image embedding: call set_image(...) on the segmenter first.")
    return segmenter.embedding


def _cached_predictor(sam: Any) -> Any:
    """A ``SamPredictor`` whose ``set_image`` takes the features given to ``preset`` instead."""
    from .torchvision_compat import load_segment_anything

    class CachedPredictor(load_segment_anything().SamPredictor):
        _preset = None

        def preset(self, item: Any) -> None:
            self._preset = item

        def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
            if self._preset is not None and tuple(image.shape[:2]) == self._preset.tile.shape:
                activate(self, self._preset)
            else:
                super().set_image(image, image_format)

    return CachedPredictor(sam)
