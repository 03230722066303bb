"""Prediction of images larger than memory, tile by tile, into a zarr label map.

The image (any 2D array that can be sliced: numpy, dask, zarr, a tifffile zarr store) is cut into
``tile_size`` squares; each is predicted with a halo of about one object diameter around it, so
that an object near a tile's edge is whole in the tile that predicts it. An object belongs to
the tile whose core holds its centre of mass; its pixels (also those in the halo) are written to
the output label map where no earlier object is. An object that mostly lies on pixels already
labelled is the same object seen from the neighbouring tile and is dropped, so objects on tile
borders are kept once. Ids are given in tile order, 1..N, unique over the image.

Memory is bounded by one tile with its halo (the model's working memory on ``(tile_size + 2 *
halo)^2`` pixels, plus that window of the int32 label map), times the number of tiles in
flight, whatever the image size; the label map lives in the zarr store. The per-object table
(id, score, box: 7 numbers, 56 bytes an object) is kept in memory and written to the store.

Tiles are predicted in this thread, or on any :class:`concurrent.futures.Executor` (a
``ThreadPoolExecutor``, a :class:`dask.distributed.Client`); stitching always runs here, in tile
order, so the label map does not depend on the executor.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from .types import ObjectMeta, Prediction, Progress

logger = logging.getLogger(__name__)

LABELS = "labels"
OBJECTS = "objects"


@dataclass(frozen=True)
class Tile:
    """One tile: its core (the pixels it owns) and its window (core + halo), ``(row, col)``
    half-open pixel ranges ``(start, stop)``."""

    index: int
    core: tuple[tuple[int, int], tuple[int, int]]
    window: tuple[tuple[int, int], tuple[int, int]]

    def window_slices(self) -> tuple[slice, slice]:
        """Slices that cut the window out of the image."""
        return tuple(slice(a, b) for a, b in self.window)  # type: ignore[return-value]


@dataclass(frozen=True)
class TiledPrediction:
    """What :func:`predict_tiled` returns.

    Parameters
    ----------
    store : Path
        The zarr group: ``labels`` (int32 ``(Y, X)``, 0 = background) and ``objects`` (float64
        ``(N, 7)``: id, score, min_row, min_col, max_row, max_col, area).
    shape : tuple of int
        ``(Y, X)``.
    count : int
        Number of objects.
    source : str
        Model name.
    """

    store: Path
    shape: tuple[int, int]
    count: int
    source: str

    def labels(self) -> Any:
        """The label map as a lazy dask array (read chunk by chunk)."""
        import dask.array as da

        return da.from_zarr(str(self.store), component=LABELS)

    def to_prediction(self) -> Prediction:
        """The whole label map in memory as a :class:`Prediction` (for images that fit)."""
        import zarr

        group = zarr.open_group(str(self.store), mode="r")
        table = np.asarray(group[OBJECTS][:])
        objects = {
            int(row[0]): ObjectMeta(
                int(row[0]),
                score=float(row[1]),
                box=tuple(int(v) for v in row[2:6]),
                source=self.source,
            )
            for row in table
        }
        return Prediction(np.asarray(group[LABELS][:]), objects, source=self.source)


def plan_tiles(shape: tuple[int, int], tile_size: int, halo: int) -> list[Tile]:
    """Tiles covering an image of ``shape`` ``(Y, X)``, row by row.

    Raises
    ------
    ValueError
        If ``tile_size`` < 1 or ``halo`` < 0.
    """
    if tile_size < 1 or halo < 0:
        raise ValueError(f"Tile size must be >= 1 and halo >= 0, got {tile_size} and {halo}.")
    tiles = []
    for r0 in range(0, shape[0], tile_size):
        for c0 in range(0, shape[1], tile_size):
            core = ((r0, min(r0 + tile_size, shape[0])), (c0, min(c0 + tile_size, shape[1])))
            window = tuple(
                (max(0, a - halo), min(n, b + halo)) for (a, b), n in zip(core, shape, strict=True)
            )
            tiles.append(Tile(len(tiles), core, window))  # type: ignore[arg-type]
    return tiles


def default_halo(model: Any, image: Any, tile_size: int) -> tuple[int, Any]:
    """About one object diameter of halo, and the model's parameters with that diameter fixed.

    The diameter is the model's ``diameter`` parameter when set, else estimated on the central
    tile (:func:`napari_cellist.diameters.diameter_from_image`); models with a ``diameter``
    parameter get it fixed so that every tile uses the same.
    """
    from .diameters import diameter_from_image

    params = getattr(model, "params", None)
    diameter = getattr(params, "diameter", None)
    if not diameter:
        rows, cols = image.shape[-2:]
        r0, c0 = max(0, rows // 2 - tile_size // 2), max(0, cols // 2 - tile_size // 2)
        centre = np.asarray(image[r0 : r0 + tile_size, c0 : c0 + tile_size], np.float32)
        diameter = diameter_from_image(centre)
        if params is not None and "diameter" in {f.name for f in fields(params)}:
            params = replace(params, diameter=round(float(diameter), 1))
    return int(math.ceil(diameter)), params


def predict_tile(model: Any, tile_image: np.ndarray, params: Any) -> tuple[np.ndarray, dict]:
    """Predict one tile: ``(int32 labels of the tile window, {id: score})`` (runs on workers)."""
    prediction = model.predict(tile_image, params)
    scores = {int(i): float(meta.score) for i, meta in prediction.objects.items()}
    return np.asarray(prediction.labels, np.int32), scores


def predict_tiled(
    model: Any,
    image: Any,
    store: str | Path,
    tile_size: int = 2048,
    halo: int | None = None,
    params: Any | None = None,
    executor: Executor | None = None,
    in_flight: int = 2,
    chunk_size: int = 1024,
) -> Generator[Progress, None, TiledPrediction]:
    """Predict a 2D image tile by tile into a zarr label map (see the module docstring).

    Parameters
    ----------
    model : Segmenter
        Any registry model (``predict(image, params)``).
    image : array-like
        Grey ``(Y, X)`` image, any real dtype, sliceable (numpy, dask, zarr).
    store : str or Path
        Folder of the zarr group written (replaced if it exists).
    tile_size : int
        Side of a tile's core, in pixels.
    halo : int, optional
        Pixels added on each side of a core; default about one object diameter.
    params : Params, optional
        The model's parameters (default its own; a missing diameter is estimated once).
    executor : concurrent.futures.Executor, optional
        Where tiles are predicted (a ``dask.distributed.Client``, a thread pool); default here.
    in_flight : int
        Tiles submitted to the executor ahead of the one being stitched (bounds memory).
    chunk_size : int
        Side of the zarr chunks of the label map.

    Returns
    -------
    TiledPrediction
        The store, the shape and the number of objects.

    Raises
    ------
    ValueError
        If the image is not 2D or the sizes are not positive.
    """
    import zarr

    if len(image.shape) != 2:
        raise ValueError(
            f"Tiled prediction takes a 2D grey (Y, X) image, got shape {tuple(image.shape)}; "
            "pick one channel / plane first."
        )
    if tile_size < 16:
        raise ValueError(f"Tile size must be at least 16 pixels, got {tile_size}.")
    shape = (int(image.shape[0]), int(image.shape[1]))
    base_params = params if params is not None else getattr(model, "params", None)
    if halo is None:
        halo, base_params = _halo_and_params(model, image, tile_size, base_params)
    tiles = plan_tiles(shape, tile_size, halo)
    group = zarr.open_group(str(store), mode="w")
    labels_out = group.create_array(
        LABELS,
        shape=shape,
        chunks=(min(chunk_size, shape[0]), min(chunk_size, shape[1])),
        dtype="int32",
        fill_value=0,
    )
    group.attrs.update({"source": model.name, "tile_size": tile_size, "halo": halo})
    table: list[tuple[float, ...]] = []
    next_id = 1
    logger.info("%d tiles of %d px with a %d px halo", len(tiles), tile_size, halo)
    for tile, (labels, scores) in _tile_results(
        model, image, tiles, base_params, executor, in_flight
    ):
        next_id = _stitch(labels_out, tile, labels, scores, next_id, table)
        yield Progress(
            tile.index + 1, len(tiles), f"tile {tile.index + 1}/{len(tiles)}: {next_id - 1} objects"
        )
    group.create_array(
        OBJECTS, data=np.asarray(table, np.float64).reshape(-1, 7), chunks=(65536, 7)
    )
    group.attrs["count"] = next_id - 1
    return TiledPrediction(Path(store), shape, next_id - 1, model.name)


def _halo_and_params(model: Any, image: Any, tile_size: int, params: Any) -> tuple[int, Any]:
    saved = getattr(model, "params", None)
    if params is not None and saved is not None:
        model.params = params
    try:
        return default_halo(model, image, tile_size)
    finally:
        if saved is not None:
            model.params = saved


def _tile_results(
    model: Any,
    image: Any,
    tiles: list[Tile],
    params: Any,
    executor: Executor | None,
    in_flight: int,
) -> Iterator[tuple[Tile, tuple[np.ndarray, dict]]]:
    """``(tile, predict_tile result)`` in tile order; at most ``in_flight + 1`` tiles pending."""

    def read(tile: Tile) -> np.ndarray:
        return np.asarray(image[tile.window_slices()])

    if executor is None:
        for tile in tiles:
            yield tile, predict_tile(model, read(tile), params)
        return
    pending: deque = deque()
    queue = iter(tiles)
    for tile in queue:
        pending.append((tile, executor.submit(predict_tile, model, read(tile), params)))
        if len(pending) > in_flight:
            done_tile, future = pending.popleft()
            yield done_tile, future.result()
    while pending:
        done_tile, future = pending.popleft()
        yield done_tile, future.result()


def _stitch(
    labels_out: Any,
    tile: Tile,
    labels: np.ndarray,
    scores: dict,
    next_id: int,
    table: list[tuple[float, ...]],
) -> int:
    """Write the objects this tile owns into the label map; returns the next free id."""
    (wr0, wr1), (wc0, wc1) = tile.window
    (cr0, cr1), (cc0, cc1) = tile.core
    if labels.shape != (wr1 - wr0, wc1 - wc0):
        raise ValueError(
            f"Model returned labels of shape {labels.shape} for a tile of {(wr1 - wr0, wc1 - wc0)}."
        )
    ids, centres, counts = _centres(labels)
    rows, cols = centres[:, 0] + wr0, centres[:, 1] + wc0
    owned = ids[(rows >= cr0) & (rows < cr1) & (cols >= cc0) & (cols < cc1)]
    if len(owned) == 0:
        return next_id
    window = np.asarray(labels_out[wr0:wr1, wc0:wc1])
    boxes = ndi.find_objects(labels)
    free = window == 0
    changed = False
    for label_id in owned.tolist():
        box = boxes[label_id - 1]
        mine = labels[box] == label_id
        empty = mine & free[box]
        area = int(counts[label_id])
        if empty.sum() * 2 < area:  # mostly on pixels labelled already: the neighbour's copy
            continue
        window[box][empty] = next_id
        free[box][empty] = False
        rr, cc = np.nonzero(empty)
        table.append(
            (
                next_id,
                scores.get(label_id, 1.0),
                rr.min() + box[0].start + wr0,
                cc.min() + box[1].start + wc0,
                rr.max() + box[0].start + wr0 + 1,
                cc.max() + box[1].start + wc0 + 1,
                len(rr),
            )
        )
        next_id += 1
        changed = True
    if changed:
        labels_out[wr0:wr1, wc0:wc1] = window
    return next_id


def _centres(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ids, (N, 2) centres of mass, counts per id)`` of a 2D label map, one bincount pass."""
    from .geometry import centres

    ids, points = centres(labels)
    counts = np.bincount(labels.ravel().astype(np.intp, copy=False))
    return ids, points, counts
