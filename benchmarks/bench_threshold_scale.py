"""Threshold model time and peak memory against a bare Otsu + watershed, from 1k to 10k pixels a side.

Images: real GOWT1 nuclei images tiled to ``size x size`` (``benchmarks._data.tiled_real_image``).
Each measurement runs in its own subprocess so that its peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is its own; the image is made before the clock
starts and ``peak_extra_mb`` is the peak minus the resident memory once the image is made.

* ``reference``: the bare recipe (scipy / skimage): Gaussian smoothing of ``diameter / 25`` px,
  Otsu level, Euclidean distance transform, ``peak_local_max`` seeds ``0.35 * diameter`` apart
  per component, watershed; told the diameter (the model estimates it).
* ``threshold``: ``ThresholdModel().predict`` with its defaults (estimates the diameter, refines
  locally, splits touching objects, scores every object).
* ``tiled``: ``napari_cellist.tiling.predict_tiled`` with the threshold model (``--tile``), the
  label map written to a zarr store.

Every figure is also given as a ratio to the reference measured in the same run.

Usage: python -m benchmarks.bench_threshold_scale [--sizes 1024 4096 10240] [--tiled]
       [--tile 2048] [--repeats 1] [--out benchmarks/results/threshold_scale.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._data import result_path, tiled_real_image
from benchmarks._subprocess import run_case

logger = logging.getLogger(__name__)
DIAMETER = 60.0  # GOWT1 nuclei, px (data README)


def reference(image: np.ndarray, diameter: float) -> np.ndarray:
    """Bare Otsu + distance-transform watershed (int32 labels of ``image.shape``)."""
    from scipy import ndimage as ndi
    from skimage import filters, measure, segmentation
    from skimage.feature import peak_local_max

    smooth = ndi.gaussian_filter(image.astype(np.float32), diameter / 25.0)
    mask = smooth > filters.threshold_otsu(smooth)
    dist = ndi.distance_transform_edt(mask)
    components = measure.label(mask)
    peaks = peak_local_max(
        dist, min_distance=int(0.35 * diameter), labels=components, exclude_border=False
    )
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return segmentation.watershed(-dist, markers, mask=mask).astype(np.int32)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def run_one(method: str, size: int, tile: int) -> dict:
    """One measurement in this process: seconds, objects, peak and extra resident memory (MB)."""
    from scipy import ndimage  # noqa: F401 - imports before the clock, for every method
    from skimage import filters, measure, segmentation  # noqa: F401
    from skimage.feature import peak_local_max  # noqa: F401

    from napari_cellist.models.threshold import ThresholdModel
    from napari_cellist.progress import drain
    from napari_cellist.tiling import predict_tiled

    image = tiled_real_image(size)
    base = _rss_mb()
    start = time.perf_counter()
    if method == "reference":
        count = int(reference(image, DIAMETER).max())
    elif method == "threshold":
        count = ThresholdModel().predict(image).count
    elif method == "tiled":
        with tempfile.TemporaryDirectory() as folder:
            result = drain(
                predict_tiled(ThresholdModel(), image, Path(folder) / "labels.zarr", tile_size=tile)
            )
            count = result.count
    else:
        raise ValueError(f"unknown method {method!r}")
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "method": method,
        "size": size,
        "seconds": seconds,
        "objects": count,
        "peak_mb": peak,
        "peak_extra_mb": peak - base,
        "image_mb": image.nbytes / 2**20,
    }


def measure(method: str, size: int, tile: int) -> dict:
    """:func:`run_one` in a fresh subprocess (its own peak memory)."""
    return run_case(
        "benchmarks.bench_threshold_scale", "--one", method, "--sizes", size, "--tile", tile
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096, 10240])
    parser.add_argument("--tiled", action="store_true", help="also the tiled path")
    parser.add_argument("--tile", type=int, default=2048)
    parser.add_argument(
        "--repeats", type=int, default=1, help="runs of each method (in turn); the fastest kept"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(result_path("threshold_scale.json")))
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.sizes[0], args.tile)))
        return
    methods = ["reference", "threshold"] + (["tiled"] if args.tiled else [])
    rows = []
    print(
        "| size | method | seconds | x reference | s / Mpx | peak MB | extra MB | x reference | objects |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        ref = None
        best: dict[str, dict] = {}
        for _ in range(args.repeats):  # methods in turn: a burst of load hits each alike
            for method in methods:
                row = measure(method, size, args.tile)
                if method not in best or row["seconds"] < best[method]["seconds"]:
                    best[method] = row
        for method in methods:
            row = best[method]
            row["repeats"] = args.repeats
            ref = ref or row
            row["time_ratio"] = row["seconds"] / ref["seconds"]
            row["extra_memory_ratio"] = row["peak_extra_mb"] / max(ref["peak_extra_mb"], 1e-6)
            row["seconds_per_mpx"] = row["seconds"] / (size * size / 1e6)
            rows.append(row)
            print(
                f"| {size} | {method} | {row['seconds']:.2f} | {row['time_ratio']:.2f} | "
                f"{row['seconds_per_mpx']:.3f} | {row['peak_mb']:.0f} | {row['peak_extra_mb']:.0f} | "
                f"{row['extra_memory_ratio']:.2f} | {row['objects']} |",
                flush=True,
            )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows, "tile": args.tile}, indent=2))


if __name__ == "__main__":
    main()
