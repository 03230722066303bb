"""COCO run-length encodings of every object of a label map at once, and back.

The stored format is the one :func:`napari_cellist.geometry.encode_mask` writes for one object
(``{"size": [rows, cols], "counts": str, "shape": [...]}``: pycocotools' compressed RLE of the
object's mask cropped to its box, column-major, a 3D crop with its planes stacked on rows).
Here it is computed for all objects in a few NumPy passes over the pixels of the map (grouped by
object with one stable sort) instead of one mask and one pycocotools call per object, and
decoded into a label map the same way: the strings of all objects are parsed as one byte array
and the pixels of every run assigned in one fancy-index write per chunk of objects. NumPy
releases the GIL in its sorts and element-wise loops, so a worker doing this leaves the viewer's
thread running.

Everything is NumPy; the only Python loops are per object (slicing the strings).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Pixels decoded per chunk of objects (bounds the temporaries of a restore: ~10 int64 arrays)
DECODE_CHUNK_PIXELS = 1 << 22
_MAX_CHARS = 8  # a count below 2**35 needs at most 7 characters of 5 bits


@dataclass(frozen=True)
class EncodedObjects:
    """The objects of a compact label map (ids ``1..N``), encoded.

    Attributes
    ----------
    index : np.ndarray
        int64 ``(M,)`` compact ids of the objects present, ascending.
    box : np.ndarray
        int64 ``(M, 2 * ndim)``: ``[min_0, .., min_{ndim-1}, stop_0, .., stop_{ndim-1}]``
        (half-open, pixels).
    area : np.ndarray
        int64 ``(M,)`` pixels per object.
    rle : list of dict
        COCO RLE dict per object, as :func:`napari_cellist.geometry.encode_mask`.
    """

    index: np.ndarray
    box: np.ndarray
    area: np.ndarray
    rle: list[dict]


def encode_objects(small: np.ndarray) -> EncodedObjects:
    """Boxes, areas and COCO RLEs of every object of a compact 2D / 3D label map.

    Parameters
    ----------
    small : np.ndarray
        Integer label map ``(Y, X)`` or ``(Z, Y, X)`` with ids ``0..N`` (0 = background).

    Returns
    -------
    EncodedObjects
        Byte-identical RLEs to ``encode_mask(crop == id)`` of each object's box crop.
    """
    if small.ndim not in (2, 3):
        raise ValueError(f"A label map must be 2D or 3D, got shape {small.shape}.")
    # column-major inside a crop is (x, z, y) order: walk the map in that order, then a stable
    # sort by id groups each object's pixels already in its RLE order
    axes = (1, 0) if small.ndim == 2 else (2, 0, 1)
    walked = np.ascontiguousarray(small.transpose(axes)).ravel()
    where = np.flatnonzero(walked)
    ids = walked[where]
    order = np.argsort(ids, kind="stable")
    where, ids = where[order], ids[order]
    del order
    if not len(ids):
        empty = np.zeros((0, 2 * small.ndim), np.int64)
        return EncodedObjects(np.zeros(0, np.int64), empty, np.zeros(0, np.int64), [])
    first = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    index = ids[first].astype(np.int64)
    area = np.diff(np.r_[first, len(ids)])
    walked_shape = tuple(small.shape[a] for a in axes)
    coords = np.unravel_index(where, walked_shape)  # (x, y) or (x, z, y)
    del where
    natural = [coords[list(axes).index(k)] for k in range(small.ndim)]  # back to (y, x) / (z, y, x)
    mins = np.stack([np.minimum.reduceat(c, first) for c in natural], axis=1)
    stops = np.stack([np.maximum.reduceat(c, first) for c in natural], axis=1) + 1
    box = np.concatenate([mins, stops], axis=1).astype(np.int64)
    extent = stops - mins
    height = extent[:, 0] if small.ndim == 2 else extent[:, 0] * extent[:, 1]  # stacked rows
    obj = np.repeat(np.arange(len(index)), area)
    local = [c - m[obj] for c, m in zip(natural, mins.T, strict=True)]
    if small.ndim == 2:
        flat = local[1] * height[obj] + local[0]
    else:
        flat = local[2] * height[obj] + local[0] * extent[obj, 1] + local[1]
    del local, natural, coords
    counts, per_object = _counts(flat, obj, first, height * extent[:, -1])
    strings = _to_strings(counts, per_object)
    sizes = np.stack([height, extent[:, -1]], axis=1).tolist()
    shapes = extent.tolist()
    rle = [
        {"size": size, "counts": text, "shape": shape}
        for size, text, shape in zip(sizes, strings, shapes, strict=True)
    ]
    return EncodedObjects(index, box, area.astype(np.int64), rle)


def _counts(
    flat: np.ndarray, obj: np.ndarray, first: np.ndarray, total: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Uncompressed COCO counts of every object, concatenated, and the number per object.

    ``flat``: column-major index of each pixel in its crop, ascending within each object;
    ``obj``: the object of each pixel; ``first``: each object's first pixel; ``total``: pixels
    of each crop. Counts alternate background / object runs, starting with background (maybe
    0) and ending with the last run (trailing background only when there is some).
    """
    starts_run = np.r_[True, flat[1:] != flat[:-1] + 1]
    starts_run[first] = True
    run_first = np.flatnonzero(starts_run)
    run_obj = obj[run_first]
    run_start = flat[run_first]
    run_len = np.diff(np.r_[run_first, len(flat)])
    run_end = run_start + run_len
    is_first_run = np.r_[True, run_obj[1:] != run_obj[:-1]]
    previous_end = np.r_[0, run_end[:-1]]
    previous_end[is_first_run] = 0
    gap = run_start - previous_end
    n_runs = np.bincount(run_obj, minlength=len(first))
    last_run = np.cumsum(n_runs) - 1
    tail = total - run_end[last_run]
    per_object = 2 * n_runs + (tail > 0)
    offset = np.r_[0, np.cumsum(per_object)[:-1]]
    run_rank = np.arange(len(run_obj)) - np.repeat(np.cumsum(n_runs) - n_runs, n_runs)
    counts = np.empty(int(per_object.sum()), np.int64)
    at = offset[run_obj] + 2 * run_rank
    counts[at] = gap
    counts[at + 1] = run_len
    has_tail = tail > 0
    counts[offset[has_tail] + 2 * n_runs[has_tail]] = tail[has_tail]
    return counts, per_object


def _to_strings(counts: np.ndarray, per_object: np.ndarray) -> list[str]:
    """pycocotools' ``rleToString`` of each object's counts (delta of counts two apart after
    the third, 5 bits per character with a continuation bit, offset 48)."""
    offset = np.r_[0, np.cumsum(per_object)[:-1]]
    rank = np.arange(len(counts)) - np.repeat(offset, per_object)
    values = counts.copy()
    later = np.flatnonzero(rank > 2)
    values[later] -= counts[later - 2]
    chars = np.zeros((len(values), _MAX_CHARS), np.uint8)
    used = np.zeros((len(values), _MAX_CHARS), bool)
    more = np.ones(len(values), bool)
    for k in range(_MAX_CHARS):
        c = values & 0x1F
        values = values >> 5
        going_on = np.where(c & 0x10, values != -1, values != 0)
        c = np.where(going_on, c | 0x20, c) + 48
        chars[:, k] = c.astype(np.uint8)
        used[:, k] = more
        more &= going_on
        if not more.any():
            break
    stream = chars[used].tobytes()
    n_chars = used.sum(axis=1)
    ends = np.cumsum(np.add.reduceat(n_chars, offset)) if len(offset) else np.zeros(0, int)
    bounds = np.r_[0, ends].tolist()
    return [stream[a:b].decode("ascii") for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _parse(texts: Sequence[str | bytes]) -> tuple[np.ndarray, np.ndarray]:
    """pycocotools' ``rleFrString`` of many strings: ``(counts, counts per string)``."""
    encoded = [t.encode("ascii") if isinstance(t, str) else bytes(t) for t in texts]
    lengths = np.fromiter((len(t) for t in encoded), np.int64, len(encoded))
    chars = np.frombuffer(b"".join(encoded), np.uint8).astype(np.int64) - 48
    ends = np.flatnonzero((chars & 0x20) == 0)  # last character of each value
    starts = np.r_[0, ends[:-1] + 1]
    n_chunks = ends - starts + 1
    shift = 5 * (np.arange(len(chars)) - np.repeat(starts, n_chunks))
    parts = (chars & 0x1F) << shift
    values = np.add.reduceat(parts, starts) if len(starts) else np.zeros(0, np.int64)
    negative = (chars[ends] & 0x10) != 0
    values[negative] -= np.left_shift(1, 5 * n_chunks[negative])
    string_end = np.cumsum(lengths)
    per_string = np.diff(np.r_[0, np.searchsorted(ends, string_end - 1, side="right")])
    offset = np.r_[0, np.cumsum(per_string)[:-1]]
    rank = np.arange(len(values)) - np.repeat(offset, per_string)
    # counts[i] = values[i] + counts[i - 2] for i > 2: cumulative sums along the odd ranks and
    # along the even ranks from 2, per string
    chain = np.where(rank == 0, 0, np.where(rank % 2 == 1, 1, 2))
    group = np.repeat(np.arange(len(per_string)), per_string) * 3 + chain
    order = np.argsort(group, kind="stable")
    ordered = values[order]
    summed = np.cumsum(ordered)
    g = group[order]
    group_start = np.r_[True, g[1:] != g[:-1]]
    segment = np.maximum.accumulate(np.where(group_start, np.arange(len(g)), 0))
    counts = np.empty_like(values)
    counts[order] = summed - (summed - ordered)[segment]
    return counts, per_string


def paint_objects(
    labels: np.ndarray,
    label_ids: Sequence[int],
    boxes: Sequence[Sequence[int]],
    rles: Sequence[dict],
) -> None:
    """Write the objects of stored RLEs into ``labels`` (in place, later objects on top).

    Parameters
    ----------
    labels : np.ndarray
        C-contiguous label map ``(Y, X)`` or ``(Z, Y, X)`` to paint into.
    label_ids : sequence of int
        The id of each object.
    boxes : sequence of sequence of int
        Each object's box ``[min_0, .., stop_0, ..]`` (as stored).
    rles : sequence of dict
        Each object's COCO RLE of its box crop (:func:`encode_objects`,
        :func:`napari_cellist.geometry.encode_mask`).
    """
    if not len(rles):
        return
    counts, per = _parse([r["counts"] for r in rles])
    ndim = labels.ndim
    box = np.asarray(boxes, np.int64).reshape(len(rles), 2 * ndim)
    extent = box[:, ndim:] - box[:, :ndim]
    height = np.array([int(r["size"][0]) for r in rles], np.int64)
    ids = np.asarray(label_ids, np.int64)
    offset = np.r_[0, np.cumsum(per)[:-1]]
    rank = np.arange(len(counts)) - np.repeat(offset, per)
    obj = np.repeat(np.arange(len(rles)), per)
    position = np.cumsum(counts) - counts  # start of each count, from the first string's start
    position -= np.repeat(position[offset] if len(offset) else position[:0], per)
    ones = np.flatnonzero(rank % 2 == 1)
    run_obj, run_start, run_len = obj[ones], position[ones], counts[ones]
    pixels_per_object = np.bincount(run_obj, weights=run_len, minlength=len(rles))
    chunk = np.cumsum(pixels_per_object) // DECODE_CHUNK_PIXELS
    flat_labels = labels.reshape(-1)
    for part in np.unique(chunk):
        keep = chunk[run_obj] == part
        _paint_runs(
            flat_labels, labels.shape, run_obj[keep], run_start[keep], run_len[keep],
            box, extent, height, ids,
        )  # fmt: skip


def _paint_runs(
    flat_labels: np.ndarray,
    shape: tuple[int, ...],
    run_obj: np.ndarray,
    run_start: np.ndarray,
    run_len: np.ndarray,
    box: np.ndarray,
    extent: np.ndarray,
    height: np.ndarray,
    ids: np.ndarray,
) -> None:
    """Assign the pixels of runs (crop column-major starts and lengths) of objects."""
    total = int(run_len.sum())
    run_offset = np.cumsum(run_len) - run_len
    index = np.repeat(run_start - run_offset, run_len) + np.arange(total)
    obj = np.repeat(run_obj, run_len)
    h = height[obj]
    col, row = np.divmod(index, h)
    del index
    if len(shape) == 2:
        target = (box[obj, 0] + row) * shape[1] + box[obj, 1] + col
    else:
        plane, row = np.divmod(row, extent[obj, 1])
        target = ((box[obj, 0] + plane) * shape[1] + box[obj, 1] + row) * shape[2]
        target += box[obj, 2] + col
    flat_labels[target] = ids[obj]
