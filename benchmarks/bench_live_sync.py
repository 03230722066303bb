"""Live sync latency: one edit with 1k / 5k objects, incremental vs a full recomputation.

A synthetic 2048 x 2048 label map of discs on a jittered grid (the cost depends on the number
and size of objects, not on the pixels of a real image). Each edit kind runs on 30 random
objects: a brush stroke that grows an object (radius 5 px, with the ``before`` copy napari's
paint event provides), an erase stroke, a polygon moved by (3, 3) px, a deleted object. The
reference is the bare full sync of the same map (every outline and centre, as the Sync button
does). Prints a table and writes ``benchmarks/results/live_sync.json``:

    python -m benchmarks.bench_live_sync [--size 2048] [--objects 1000 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from skimage.draw import disk

from benchmarks._data import result_path
from napari_cellist.live_sync import (
    LabelIndex,
    after_paint,
    delete_objects,
    full_sync,
    object_geometry,
    set_polygon,
)

REPEATS = 30


def disc_map(size: int, n_objects: int, seed: int = 0) -> np.ndarray:
    """int32 ``(size, size)`` map of about ``n_objects`` discs on a jittered grid."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n_objects)))
    spacing = size / side
    radius = 0.35 * spacing
    labels = np.zeros((size, size), np.int32)
    for k in range(n_objects):
        r, c = divmod(k, side)
        centre = (np.array([r, c]) + 0.5) * spacing + rng.uniform(-0.1, 0.1, 2) * spacing
        rr, cc = disk(tuple(centre), radius * rng.uniform(0.8, 1.0), shape=labels.shape)
        labels[rr, cc] = k + 1
    return labels


def _stroke(labels, index, label_id, value) -> float:
    box = index.boxes[label_id]
    centre = ((box[0] + box[2]) / 2, box[3])  # at the right edge of the object
    rr, cc = disk(centre, 5, shape=labels.shape)
    region = (slice(rr.min(), rr.max() + 1), slice(cc.min(), cc.max() + 1))
    start = time.perf_counter()
    before = labels[region].copy()
    labels[rr, cc] = value if value is not None else label_id
    after_paint(labels, index, region, before)
    return time.perf_counter() - start


def _move(labels, index, label_id) -> float:
    outline, _ = object_geometry(labels, label_id, index.boxes[label_id])
    start = time.perf_counter()
    set_polygon(labels, index, label_id, outline + 3.0)
    return time.perf_counter() - start


def _delete(labels, index, label_id) -> float:
    start = time.perf_counter()
    delete_objects(labels, index, [label_id])
    return time.perf_counter() - start


def measure(size: int, n_objects: int) -> list[dict]:
    labels = disc_map(size, n_objects)
    start = time.perf_counter()
    full_sync(labels)
    full_s = time.perf_counter() - start
    start = time.perf_counter()
    index = LabelIndex(labels)
    index_s = time.perf_counter() - start
    rng = np.random.default_rng(1)
    kinds = {
        "paint (grow)": lambda i: _stroke(labels, index, i, None),
        "erase": lambda i: _stroke(labels, index, i, 0),
        "move polygon": lambda i: _move(labels, index, i),
        "delete object": lambda i: _delete(labels, index, i),
    }
    rows = []
    for kind, edit in kinds.items():
        ids = rng.choice(sorted(index.boxes), REPEATS, replace=False)
        times = np.array([edit(int(i)) for i in ids]) * 1000
        rows.append(
            {
                "size": size,
                "objects": n_objects,
                "edit": kind,
                "median_ms": float(np.median(times)),
                "max_ms": float(times.max()),
                "full_sync_ms": full_s * 1000,
                "index_build_ms": index_s * 1000,
                "full_over_edit": full_s * 1000 / float(np.median(times)),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--objects", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--out", default=str(result_path("live_sync.json")))
    args = parser.parse_args(argv)
    rows = [row for n in args.objects for row in measure(args.size, n)]
    print(
        f"{'image':>10} {'objects':>8} {'edit':>14} {'median ms':>10} {'max ms':>8} "
        f"{'full sync ms':>13} {'full/edit':>10}"
    )
    for r in rows:
        print(
            f"{r['size']:>5}^2 px {r['objects']:>8} {r['edit']:>14} {r['median_ms']:>10.2f} "
            f"{r['max_ms']:>8.2f} {r['full_sync_ms']:>13.0f} {r['full_over_edit']:>9.0f}x"
        )
    with open(args.out, "w") as handle:
        json.dump(
            {"repeats": REPEATS, "load_average_1min": os.getloadavg()[0], "rows": rows},
            handle,
            indent=2,
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
