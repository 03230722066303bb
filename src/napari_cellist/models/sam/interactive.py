"""Interactive (prompted) segmentation with Segment Anything.

:class:`PromptableSegmenter` follows ``SamPredictor``: an expensive :meth:`~PromptableSegmenter.
set_image_iter` (a progress generator, run in a worker; cached in memory and on disk) and a cheap
:meth:`~PromptableSegmenter.predict` per prompt, in napari's ``(row, col)`` coordinates of the
full image. Successive predictions for one object reuse SAM's previous low-resolution logits.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...progress import drain
from ...types import Progress
from .embeddings import (
    EmbeddingCache,
    ImageEmbedding,
    TileEmbedding,
    activate,
    compute_embedding_iter,
    embedding_key,
    tile_grid,
)
from .imaging import to_uint8_rgb
from .prompts import box_to_xyxy, rc_to_xy

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MaskResult:
    """One predicted object.

    ``mask``: bool ``(Y, X)`` of the full image; ``score``: SAM's predicted IoU;
    ``logits``: float32 ``(1, 256, 256)`` low-resolution logits (fed back on refinement);
    ``tile``: index of the tile it was predicted in.
    """

    mask: np.ndarray
    score: float
    logits: np.ndarray
    tile: int


class PromptableSegmenter:
    """Prompt -> mask with a SAM model, on images of any size.

    Parameters
    ----------
    sam : segment_anything.modeling.Sam
        The model (eval mode).
    model_id : str
        Identifies the weights in cache keys.
    cache : EmbeddingCache, optional
        Shared embedding cache (default: memory only).
    tile_size : int, optional
        Tile edge in pixels (default: the model's input size, 1024 for official models).
    overlap : int
        Overlap of neighbouring tiles in pixels.
    """

    def __init__(
        self,
        sam: Any,
        model_id: str,
        cache: EmbeddingCache | None = None,
        tile_size: int | None = None,
        overlap: int = 128,
    ) -> None:
        from .torchvision_compat import load_segment_anything

        sam_module = load_segment_anything()
        self.sam = sam
        self.model_id = model_id
        self.cache = cache if cache is not None else EmbeddingCache(None)
        self.tile_size = int(tile_size or sam.image_encoder.img_size)
        self.overlap = int(min(overlap, self.tile_size // 2))
        # two predictors: the worker thread embeds with one while the GUI thread prompts the other
        self._encoder = sam_module.SamPredictor(sam)
        self.predictor = sam_module.SamPredictor(sam)
        self.embedding: ImageEmbedding | None = None
        self._previous: MaskResult | None = None
        self._active_tile: int | None = None

    def embed_iter(
        self,
        image: np.ndarray,
        rgb: bool = False,
        tile_size: int | None = None,
        overlap: int | None = None,
    ) -> Generator[Progress, None, ImageEmbedding]:
        """Embedding of a 2D image (from the cache when possible), yielding progress per tile.

        Does not change the current image (safe in a worker thread while the GUI thread
        prompts); :meth:`set_embedding` makes the result current.

        Parameters
        ----------
        image : np.ndarray
            ``(Y, X)`` grey (any dtype) or ``(Y, X, 3|4)`` colour when ``rgb``.
        rgb : bool
            The last axis holds colours.
        tile_size, overlap : int, optional
            Tiling in image pixels (default: the segmenter's); a tile larger than the model's
            input is shrunk to it by SAM.
        """
        from .estimates import describe_seconds, embedding_seconds

        size = int(tile_size or self.tile_size)
        overlap = int(self.overlap if overlap is None else min(overlap, size // 2))
        rgb_image = to_uint8_rgb(image, rgb)
        key = embedding_key(rgb_image, self.model_id, size, overlap)
        embedding = self.cache.get(key)
        if embedding is None:
            tiles = tile_grid(rgb_image.shape[:2], size, overlap)
            seconds = embedding_seconds(self.sam, len(tiles))
            device = next(self.sam.parameters()).device
            logger.info("SAM embedding of %d tile(s) on %s: %.1f s", len(tiles), device, seconds)
            note = f"{len(tiles)} tile(s) on {device.type}, {describe_seconds(seconds)}"
            embedding = yield from compute_embedding_iter(
                self._encoder, rgb_image, tiles, key, note
            )
            self._encoder.reset_image()
            self.cache.put(embedding)
        else:
            logger.debug("SAM embedding cache hit %s", key)
            yield Progress(1, 1, "SAM embedding from cache")
        return embedding

    def set_image_iter(
        self,
        image: np.ndarray,
        rgb: bool = False,
        tile_size: int | None = None,
        overlap: int | None = None,
    ) -> Generator[Progress, None, ImageEmbedding]:
        """:meth:`embed_iter`, then make the embedding current."""
        embedding = yield from self.embed_iter(image, rgb, tile_size, overlap)
        self.set_embedding(embedding)
        return embedding

    def set_image(self, image: np.ndarray, rgb: bool = False) -> ImageEmbedding:
        """Synchronous :meth:`set_image_iter`."""
        return drain(self.set_image_iter(image, rgb))

    def set_embedding(self, embedding: ImageEmbedding) -> None:
        """Make ``embedding`` the current image (forgets the previous prompts)."""
        self.embedding = embedding
        self._active_tile = None
        self.reset_prompts()

    def reset_prompts(self) -> None:
        """Forget the previous logits (start a new object)."""
        self._previous = None

    def predict(
        self,
        points: np.ndarray | Sequence[Sequence[float]] | None = None,
        point_labels: np.ndarray | Sequence[int] | None = None,
        box: Sequence[float] | None = None,
        refine: bool = True,
        multimask: bool | None = None,
    ) -> MaskResult:
        """Mask of one object from point and/or box prompts.

        Parameters
        ----------
        points : array-like, optional
            ``(N, 2)`` ``(row, col)`` pixel coordinates in the full image (extra leading
            columns such as a plane index are ignored).
        point_labels : array-like, optional
            ``(N,)`` 1 for a positive (object) and 0 for a negative (background) point; default
            all positive.
        box : sequence of 4 numbers, optional
            Half-open ``(min_row, min_col, max_row, max_col)``.
        refine : bool
            Feed the previous prediction's logits back (same object, more clicks).
        multimask : bool, optional
            Ask SAM for 3 candidates and keep the best; default: only for a single point with
            nothing else (SAM's recommendation for ambiguous prompts).

        Returns
        -------
        MaskResult
        """
        if self.embedding is None:
            raise ValueError("No image embedding: call set_image(...) (or set_embedding) first.")
        pts = np.zeros((0, 2)) if points is None else np.atleast_2d(np.asarray(points, float))
        if pts.size == 0 and box is None:
            raise ValueError("Give at least one point or a box as prompt.")
        labels = np.ones(len(pts), int) if point_labels is None else np.asarray(point_labels, int)
        if len(labels) != len(pts):
            raise ValueError(f"{len(pts)} points but {len(labels)} point labels.")
        index = self.choose_tile(pts[:, -2:] if len(pts) else None, box)
        item = self.embedding.tiles[index]
        self.use_tile(index)
        previous = self._previous if refine and self._previous is not None else None
        if previous is not None and previous.tile != index:
            previous = None
        if multimask is None:
            multimask = previous is None and box is None and len(pts) == 1
        masks, scores, logits = self.predictor.predict(
            point_coords=rc_to_xy(pts, item.tile.origin) if len(pts) else None,
            point_labels=labels if len(pts) else None,
            box=box_to_xyxy(box, item.tile.origin) if box is not None else None,
            mask_input=previous.logits if previous is not None else None,
            multimask_output=multimask,
        )
        best = int(np.argmax(scores))
        full = np.zeros(self.embedding.image_shape, bool)
        full[item.tile.slices] = masks[best]
        result = MaskResult(full, float(scores[best]), logits[best : best + 1], index)
        self._previous = result
        return result

    def use_tile(self, index: int) -> None:
        """Load tile ``index`` of the current embedding into :attr:`predictor`."""
        if self._active_tile != index:
            activate(self.predictor, self.embedding.tiles[index])
            self._active_tile = index

    def choose_tile(self, points_rc: np.ndarray | None, box: Sequence[float] | None) -> int:
        """Index of the tile holding all prompts whose centre is nearest to theirs (the nearest
        tile if none holds them all); ``points_rc`` is ``(N, 2)`` (row, col), ``box`` half-open."""
        tiles = self.embedding.tiles
        if len(tiles) == 1:
            return 0
        extent = [] if points_rc is None else [points_rc]
        if box is not None:
            extent.append(np.array([[box[0], box[1]], [box[2] - 1, box[3] - 1]], float))
        corners = np.concatenate(extent)
        rc_min, rc_max = corners.min(axis=0), corners.max(axis=0)
        centre = (rc_min + rc_max) / 2
        distance = [_centre_distance(t, centre) for t in tiles]
        holding = [i for i, t in enumerate(tiles) if t.tile.contains(rc_min, rc_max)]
        candidates = holding or range(len(tiles))
        return min(candidates, key=lambda i: distance[i])


def _centre_distance(item: TileEmbedding, centre: np.ndarray) -> float:
    tile_centre = np.asarray(item.tile.origin) + (np.asarray(item.tile.shape) - 1) / 2
    return float(np.abs(tile_centre - centre).max())
