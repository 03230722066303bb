"""SAM image embeddings: tiling, computation as a progress generator, memory + disk cache.

An image larger than the model's input (1024 px for the official models) is cut into
overlapping tiles of that size, each embedded separately, so that small objects keep the
resolution SAM was trained at. Embeddings are cached in memory (LRU) and on disk
(``<cache>/embeddings/<key>.npz``), keyed by a hash of the uint8 RGB image SAM sees, the tiling
and the model id; reopening an image does not recompute them.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...io.writers import atomic_open
from ...types import Progress

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tile:
    """A rectangle of the image: top-left ``origin`` and ``shape``, both ``(rows, cols)``."""

    origin: tuple[int, int]
    shape: tuple[int, int]

    @property
    def slices(self) -> tuple[slice, slice]:
        """Slices that cut the tile out of a ``(Y, X, ...)`` array."""
        (r, c), (h, w) = self.origin, self.shape
        return slice(r, r + h), slice(c, c + w)

    def contains(self, rc_min: np.ndarray, rc_max: np.ndarray) -> bool:
        """Whether the (row, col) range ``rc_min..rc_max`` (inclusive) lies inside the tile."""
        low = np.asarray(self.origin)
        return bool(np.all(rc_min >= low) and np.all(rc_max <= low + np.asarray(self.shape) - 1))


@dataclass(frozen=True)
class TileEmbedding:
    """SAM's image features of one tile.

    ``features`` is float32 ``(1, C, h, w)`` (C=256, h=w=64 for official models);
    ``input_size`` is the ``(rows, cols)`` of the tile after SAM's longest-side resize.
    """

    tile: Tile
    features: np.ndarray
    input_size: tuple[int, int]


@dataclass(frozen=True)
class ImageEmbedding:
    """All tiles of one image, with the cache ``key`` and the ``(Y, X)`` image shape."""

    key: str
    image_shape: tuple[int, int]
    tiles: tuple[TileEmbedding, ...]


def tile_grid(shape: tuple[int, int], tile_size: int, overlap: int) -> list[Tile]:
    """Overlapping tiles of at most ``tile_size`` covering an image of ``shape`` ``(Y, X)``.

    Neighbouring tiles overlap by at least ``overlap`` pixels; the last tile of a row/column
    is shifted back to end at the image border (so every tile is full size where possible).
    """
    if overlap >= tile_size:
        raise ValueError(
            f"Tile overlap ({overlap}) must be smaller than the tile size ({tile_size})."
        )
    starts = [_starts(n, tile_size, overlap) for n in shape]
    return [
        Tile((r, c), (min(tile_size, shape[0]), min(tile_size, shape[1])))
        for r in starts[0]
        for c in starts[1]
    ]


def _starts(length: int, size: int, overlap: int) -> list[int]:
    if length <= size:
        return [0]
    starts = list(range(0, length - size, size - overlap))
    return starts + [length - size]


def embedding_key(rgb: np.ndarray, model_id: str, tile_size: int, overlap: int) -> str:
    """Hex key of an embedding: sha256 of the uint8 RGB image, its shape, tiling and model."""
    digest = hashlib.sha256(np.ascontiguousarray(rgb).data)
    digest.update(f"{rgb.shape}|{tile_size}|{overlap}|{model_id}".encode())
    return digest.hexdigest()[:32]


class EmbeddingCache:
    """LRU memory cache of :class:`ImageEmbedding`, backed by ``.npz`` files in ``folder``.

    Parameters
    ----------
    folder : Path or None
        Disk cache folder (None: memory only).
    max_items : int
        Images kept in memory (an official-model tile takes 4 MiB).
    """

    def __init__(self, folder: Path | None, max_items: int = 8) -> None:
        self.folder = folder
        self.max_items = max_items
        self._memory: OrderedDict[str, ImageEmbedding] = OrderedDict()

    def get(self, key: str) -> ImageEmbedding | None:
        """The cached embedding (memory first, then disk) or None."""
        if key in self._memory:
            self._memory.move_to_end(key)
            return self._memory[key]
        embedding = self._read(key)
        if embedding is not None:
            self._remember(embedding)
        return embedding

    def put(self, embedding: ImageEmbedding) -> None:
        """Store in memory and (atomically) on disk."""
        self._remember(embedding)
        if self.folder is not None:
            try:
                self._write(embedding)
            except OSError as err:
                logger.warning(
                    "Could not write the SAM embedding cache in %s: %s", self.folder, err
                )

    def _remember(self, embedding: ImageEmbedding) -> None:
        self._memory[embedding.key] = embedding
        self._memory.move_to_end(embedding.key)
        while len(self._memory) > self.max_items:
            self._memory.popitem(last=False)

    def _path(self, key: str) -> Path:
        assert self.folder is not None
        return self.folder / f"{key}.npz"

    def _write(self, embedding: ImageEmbedding) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {"image_shape": np.asarray(embedding.image_shape)}
        for i, item in enumerate(embedding.tiles):
            arrays[f"features_{i}"] = item.features
            arrays[f"geometry_{i}"] = np.asarray(
                item.tile.origin + item.tile.shape + item.input_size
            )
        with atomic_open(self._path(embedding.key), "wb") as stream:
            np.savez(stream, **arrays)

    def _read(self, key: str) -> ImageEmbedding | None:
        if self.folder is None or not self._path(key).is_file():
            return None
        try:
            with np.load(self._path(key)) as data:
                n_tiles = sum(1 for name in data.files if name.startswith("features_"))
                tiles = []
                for i in range(n_tiles):
                    g = [int(v) for v in data[f"geometry_{i}"]]
                    tile = Tile((g[0], g[1]), (g[2], g[3]))
                    tiles.append(TileEmbedding(tile, data[f"features_{i}"], (g[4], g[5])))
                shape = tuple(int(v) for v in data["image_shape"])
        except (OSError, ValueError, KeyError) as err:
            logger.warning(
                "Ignoring unreadable SAM embedding cache file %s: %s", self._path(key), err
            )
            return None
        return ImageEmbedding(key, shape, tuple(tiles))


def compute_embedding_iter(
    predictor: Any, rgb: np.ndarray, tiles: list[Tile], key: str, note: str = ""
) -> Generator[Progress, None, ImageEmbedding]:
    """Embed every tile of ``rgb`` with a ``SamPredictor``, yielding one Progress per tile.

    Parameters
    ----------
    predictor : segment_anything.SamPredictor
        Used for its ``set_image`` (its image state is overwritten).
    rgb : np.ndarray
        uint8 ``(Y, X, 3)`` image.
    tiles : list of Tile
        From :func:`tile_grid`.
    key : str
        Cache key stored in the result.
    note : str
        Added to the first report (e.g. the estimated time).
    """
    out = []
    yield Progress(0, len(tiles), "computing SAM image embedding" + (f" ({note})" if note else ""))
    for i, tile in enumerate(tiles):
        predictor.set_image(np.ascontiguousarray(rgb[tile.slices]))
        features = predictor.features.detach().cpu().numpy().astype(np.float32)
        out.append(TileEmbedding(tile, features, tuple(int(v) for v in predictor.input_size)))
        yield Progress(i + 1, len(tiles), f"SAM embedding: tile {i + 1}/{len(tiles)}")
    return ImageEmbedding(key, (int(rgb.shape[0]), int(rgb.shape[1])), tuple(out))


def activate(predictor: Any, item: TileEmbedding) -> None:
    """Put a tile's cached features into a ``SamPredictor`` as if ``set_image`` had run on it."""
    import torch

    predictor.reset_image()
    predictor.features = torch.from_numpy(item.features).to(predictor.device)
    predictor.original_size = item.tile.shape
    predictor.input_size = item.input_size
    predictor.is_image_set = True
