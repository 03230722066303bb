"""Outlines (labels -> polygons + centres) against OpenCV and skimage at 1k / 10k / 50k objects.

Label maps: the real DSB2018 mask (125 nuclei, 512 x 512) tiled side by side, ids made unique,
until the wanted number of objects. Best of ``--repeats`` runs each (shared machine):

* ``cellist``: :func:`napari_cellist.geometry.outlines`: polygons (tolerance 1 px: OpenCV
  ``findContours`` through the boundary pixels' centres of each crop + Douglas-Peucker, then
  every outline shifted half a pixel out in one vectorised pass) and centres; boxes and centres
  from one run-length pass over the map;
* ``opencv``: the bare reference, ``cv2.findContours`` (external, simple chain) on each
  object's crop from ``scipy.ndimage.find_objects``, no simplification;
* ``opencv-full``: the same plus what outlines also give: ``cv2.approxPolyDP`` (1 px) and the
  centre (``cv2.moments``) of each crop, on the pixel-centre contour (no half-pixel grid);
* ``skimage``: ``skimage.measure.find_contours`` at level 0.5 on each padded crop, no
  simplification;
* ``previous``: the implementation before OpenCV (``find_contours`` + ``approximate_polygon``),
  at the smallest size only (it takes 5-10 ms an object).

The repeats run the methods in turn (method A, B, C, A, B, C, ...) so that a burst of load on
the shared machine hits every method alike; each method's best run is kept.

Usage: python -m benchmarks.bench_outlines [--objects 1000 10000 50000] [--repeats 3]
       [--out benchmarks/results/outlines.json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import tifffile
from scipy import ndimage as ndi
from skimage.measure import approximate_polygon, find_contours

from benchmarks._data import data_folder, result_path
from napari_cellist.geometry import outlines


def tiled_labels(objects: int) -> np.ndarray:
    """int32 label map of about ``objects`` real nuclei (DSB2018 mask tiled)."""
    mask = tifffile.imread(next((data_folder("dsb2018_stardist") / "masks").glob("*.tif")))
    mask = mask.astype(np.int32)
    per_tile = int(mask.max())
    tiles = int(np.ceil(objects / per_tile))
    side = int(np.ceil(np.sqrt(tiles)))
    rows = []
    for i in range(side):
        row = [np.where(mask > 0, mask + (i * side + j) * per_tile, 0) for j in range(side)]
        rows.append(np.hstack(row))
    labels = np.vstack(rows)
    labels[labels > objects] = 0
    return labels


def opencv_reference(labels: np.ndarray) -> int:
    count = 0
    for index, slc in enumerate(ndi.find_objects(labels), start=1):
        if slc is None:
            continue
        crop = (labels[slc] == index).astype(np.uint8)
        contours, _ = cv2.findContours(crop, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        count += len(contours) > 0
    return count


def opencv_full_reference(labels: np.ndarray) -> int:
    count = 0
    for index, slc in enumerate(ndi.find_objects(labels), start=1):
        if slc is None:
            continue
        crop = (labels[slc] == index).astype(np.uint8)
        cv2.moments(crop, binaryImage=True)
        contours, _ = cv2.findContours(crop, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        if contours:
            count += len(cv2.approxPolyDP(max(contours, key=cv2.contourArea), 1.0, True)) >= 3
    return count


def skimage_reference(labels: np.ndarray, tolerance: float = 0.0) -> int:
    count = 0
    for index, slc in enumerate(ndi.find_objects(labels), start=1):
        if slc is None:
            continue
        contour = max(
            find_contours(np.pad(labels[slc] == index, 1).astype(np.float32), 0.5), key=len
        )
        if tolerance > 0:
            contour = approximate_polygon(contour, tolerance)
        count += len(contour) >= 3
    return count


def cellist(labels: np.ndarray) -> int:
    polygons, _, _ = outlines(labels, 1.0)
    return len(polygons)


def best_time(
    func: Callable[[np.ndarray], int], labels: np.ndarray, repeats: int
) -> tuple[float, int]:
    times, result = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        result = func(labels)
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(result_path("outlines.json")))
    args = parser.parse_args()
    rows = []
    print("| objects | method | seconds | ms / object | x opencv | x opencv-full | x skimage |")
    print("|---|---|---|---|---|---|---|")
    for count in args.objects:
        labels = tiled_labels(count)
        methods = {
            "opencv": opencv_reference,
            "opencv-full": opencv_full_reference,
            "skimage": skimage_reference,
            "cellist": cellist,
        }
        if count == min(args.objects):
            methods["previous"] = lambda lab: skimage_reference(lab, 1.0)
        times: dict[str, float] = {}
        found: dict[str, int] = {}
        for repeat in range(args.repeats):
            for name, func in methods.items():
                if name == "previous" and repeat > 0:
                    continue
                seconds, found[name] = best_time(func, labels, 1)
                times[name] = min(seconds, times.get(name, np.inf))
        for name in methods:
            rows.append(
                {
                    "objects": count,
                    "method": name,
                    "seconds": times[name],
                    "found": found[name],
                    "shape": list(labels.shape),
                }
            )
        for row in rows[-len(methods) :]:
            row["x_opencv"] = row["seconds"] / times["opencv"]
            row["x_opencv_full"] = row["seconds"] / times["opencv-full"]
            row["x_skimage"] = row["seconds"] / times["skimage"]
            print(
                f"| {count} | {row['method']} | {row['seconds']:.3f} | "
                f"{1000 * row['seconds'] / count:.3f} | {row['x_opencv']:.2f} | "
                f"{row['x_opencv_full']:.2f} | {row['x_skimage']:.2f} |",
                flush=True,
            )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows, "repeats": args.repeats}, indent=2))


if __name__ == "__main__":
    main()
