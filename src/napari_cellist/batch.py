"""Batch prediction on dask: many images, and the tiles of images larger than memory.

Images that fit in memory are dask tasks (:func:`dask.delayed`), each reading, predicting and
writing one image exactly as :func:`napari_cellist.pipeline.predict_files` does; they run on
dask's local threaded scheduler by default, or on a ``dask.distributed`` cluster when a
scheduler address is given (``tcp://host:8786``, or the address of a ``LocalCluster``). Large
images (OME-Zarr folders, TIFFs over :data:`~napari_cellist.io.lazy.LARGE_BYTES` or pyramidal)
are opened lazily and predicted tile by tile (:func:`napari_cellist.tiling.predict_tiled`), the
tiles on the same cluster (or a local thread pool), into ``<name>.zarr``.

Every task computes what the single-process run computes, so the outputs are identical;
workers need the package and read the input paths themselves (a shared file system).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Generator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .io.lazy import LARGE_BYTES, is_large, is_lazy_path, is_pyramidal, open_lazy
from .progress import drain
from .types import Progress

logger = logging.getLogger(__name__)


def list_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Image files of ``inputs`` (files and folders), OME-Zarr folders taken as one image each.

    Raises
    ------
    ValueError
        If nothing is found.
    """
    from .io import list_images

    found: list[Path] = []
    plain: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir() and is_lazy_path(item):
            found.append(item)
        else:
            plain.append(item)
    found.extend(list_images(plain) if plain else [])
    if not found:
        raise ValueError(f"No images found in {', '.join(map(str, inputs))}.")
    return list(dict.fromkeys(found))


def needs_batch(
    inputs: Sequence[str | Path], scheduler: str | None = None, tiles: bool = False
) -> bool:
    """Whether ``cellist predict`` goes through :func:`predict_batch`: a scheduler is given, an
    input is an OME-Zarr folder or a pyramidal TIFF, or ``tiles`` is asked for (``--tile-size``)
    and an input is a large TIFF (:func:`~napari_cellist.io.lazy.is_large`). A large flat TIFF
    without ``tiles`` keeps the whole-image path, which refuses it from its header when it would
    not fit in memory."""
    if scheduler:
        return True
    for item in map(Path, inputs):
        if not item.exists() or not is_lazy_path(item):
            continue
        if item.is_dir() or is_pyramidal(item) or (tiles and is_large(item)):
            return True
    return False


@contextmanager
def cluster(scheduler: str | None, workers: int | None = None):
    """``(client or None, tile executor)`` for a scheduler address (``None``: local threads).

    With an address, a ``dask.distributed.Client`` connects to it (and is closed after); it is
    also the executor of the tiles. Without, images run on dask's threaded scheduler and tiles
    on a thread pool of ``workers`` threads (default: the CPU count).
    """
    if scheduler:
        from distributed import Client

        try:
            client = Client(scheduler, timeout="20s", set_as_default=False)
        except OSError as err:
            raise ValueError(
                f"Cannot reach the dask scheduler at {scheduler}: {err}. Start one with "
                "'dask scheduler' (and workers with 'dask worker ADDRESS'), or drop --scheduler."
            ) from err
        try:
            yield client, client
        finally:
            client.close()
        return
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        yield None, pool


def predict_batch(
    model: Any,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    scheduler: str | None = None,
    channel: int | None = None,
    tile_size: int = 2048,
    large_bytes: int = LARGE_BYTES,
    workers: int | None = None,
) -> Generator[Progress, None, dict[str, Any]]:
    """Predict many images on dask; yields one Progress per finished image.

    Parameters
    ----------
    model : Segmenter
        Any registry model (sent to the workers).
    inputs : sequence of str or Path
        Image files, folders of images, OME-Zarr folders.
    out_dir : str or Path
        Output folder: ``<name>.tif`` + ``overlays/<name>.png`` per image that fits in memory,
        ``<name>.zarr`` (see :class:`~napari_cellist.tiling.TiledPrediction`) per large image.
    scheduler : str, optional
        ``dask.distributed`` scheduler address; default: local threads.
    channel : int, optional
        Channel of multi-channel images.
    tile_size : int
        Tile side for large images, in pixels.
    large_bytes : int
        Images of more bytes (or pyramidal, or OME-Zarr) go the tiled way.
    workers : int, optional
        Local threads (without a scheduler).

    Returns
    -------
    dict
        ``{"n_images", "total_objects", "outputs": {input: output}, "counts": {input: n},
        "failed": [{"path", "error"}], "scheduler", "out"}``.
    """
    import dask

    from .io.naming import unique_stems
    from .io.readers import stem

    out_dir = Path(out_dir)
    paths = list_inputs(inputs)
    names = unique_stems([stem(p) if p.is_file() else p.name.split(".")[0] for p in paths])
    out_dir.mkdir(parents=True, exist_ok=True)
    large = [is_large(p, large_bytes) for p in paths]
    summary: dict[str, Any] = {
        "n_images": 0,
        "total_objects": 0,
        "outputs": {},
        "counts": {},
        "failed": [],
        "scheduler": scheduler or "threads",
        "out": str(out_dir),
    }
    done = 0
    with cluster(scheduler, workers) as (client, executor):
        small = [(p, n) for p, n, big in zip(paths, names, large, strict=True) if not big]
        tasks = [dask.delayed(_predict_small)(model, p, n, out_dir, channel) for p, n in small]
        if tasks:
            results = (
                client.gather(client.compute(tasks))
                if client is not None
                else dask.compute(*tasks, scheduler="threads", num_workers=workers)
            )
            for (path, _), result in zip(small, results, strict=True):
                done += 1
                _record(summary, path, result)
                yield Progress(done, len(paths), f"{path.name}: {result[1]}")
        for path, name, big in zip(paths, names, large, strict=True):
            if not big:
                continue
            result = _predict_large(model, path, name, out_dir, channel, tile_size, executor)
            done += 1
            _record(summary, path, result)
            yield Progress(done, len(paths), f"{path.name}: {result[1]}")
    return summary


def _record(summary: dict[str, Any], path: Path, result: tuple[str | None, Any]) -> None:
    output, value = result
    if output is None:
        summary["failed"].append({"path": str(path), "error": value})
        logger.error("%s: %s", path, value)
        return
    summary["n_images"] += 1
    summary["total_objects"] += int(value)
    summary["outputs"][str(path)] = output
    summary["counts"][str(path)] = int(value)


def _predict_small(
    model: Any, path: Path, name: str, out_dir: Path, channel: int | None
) -> tuple[str | None, Any]:
    """One image that fits in memory, as :func:`pipeline.predict_files` does it (runs on a
    worker); ``(label file name, count)`` or ``(None, error message)``."""
    from .pipeline import _predict_one

    try:
        labels_path, _, prediction = _predict_one(model, path, name, out_dir, channel, None)
    except (ValueError, OSError, MemoryError) as err:
        return None, str(err) or type(err).__name__
    return labels_path.name, prediction.count


def _predict_large(
    model: Any,
    path: Path,
    name: str,
    out_dir: Path,
    channel: int | None,
    tile_size: int,
    executor: Executor,
) -> tuple[str | None, Any]:
    """One large image tile by tile into ``<name>.zarr``; ``(store name, count)`` or ``(None,
    error message)``."""
    from .io.naming import confined
    from .tiling import predict_tiled

    try:
        image = open_lazy(path).grey(channel or 0)
        store = confined(out_dir, f"{name}.zarr")
        result = drain(predict_tiled(model, image, store, tile_size=tile_size, executor=executor))
    except (ValueError, OSError, MemoryError) as err:
        return None, str(err) or type(err).__name__
    return store.name, result.count
