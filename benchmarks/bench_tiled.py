"""Tiled prediction of a large OME-Zarr image: time and peak memory, local threads vs a
dask.distributed cluster, against the bare Otsu + watershed on the whole image.

The image: real GOWT1 nuclei images tiled to ``--size`` pixels a side
(``benchmarks._data.tiled_real_image``), written as a one-level OME-Zarr (1024^2 chunks). Each
run is a subprocess (its own peak resident memory, ``ru_maxrss``):

* ``reference``: the bare recipe of ``bench_threshold_scale`` on the whole image in memory;
* ``tiled-local``: ``batch.predict_batch`` on the OME-Zarr folder, tiles on a local thread pool;
* ``tiled-cluster``: the same on a ``dask.distributed.LocalCluster`` given by its address
  (``--workers`` workers of one thread, in this process so that their memory is counted).

Usage: python -m benchmarks.bench_tiled [--size 12288] [--tile 2048] [--workers 2]
       [--out benchmarks/results/tiled.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._data import result_path, tiled_real_image
from benchmarks._subprocess import run_case
from benchmarks.bench_threshold_scale import DIAMETER, reference


def write_ome_zarr(path: Path, size: int) -> None:
    """The tiled real image as a one-level OME-Zarr of 1024^2 chunks."""
    import zarr

    image = tiled_real_image(size)
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.create_array("0", data=image, chunks=(1024, 1024))
    group.attrs["multiscales"] = [
        {"version": "0.4", "axes": [{"name": "y"}, {"name": "x"}], "datasets": [{"path": "0"}]}
    ]


def run_one(method: str, image_path: Path, tile: int, workers: int) -> dict:
    """One measurement in this process."""
    from napari_cellist.models.threshold import ThresholdModel

    out = Path(tempfile.mkdtemp())
    start = time.perf_counter()
    if method == "reference":
        import zarr

        image = np.asarray(zarr.open_group(str(image_path), mode="r")["0"][:])
        start = time.perf_counter()
        count = int(reference(image, DIAMETER).max())
    else:
        from napari_cellist.batch import predict_batch
        from napari_cellist.progress import drain

        model = ThresholdModel()
        if method == "tiled-local":
            summary = drain(
                predict_batch(model, [image_path], out, tile_size=tile, workers=workers)
            )
        else:
            from distributed import LocalCluster

            with LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=False, dashboard_address=None
            ) as cluster:
                start = time.perf_counter()
                summary = drain(
                    predict_batch(
                        model,
                        [image_path],
                        out,
                        tile_size=tile,
                        scheduler=cluster.scheduler_address,
                    )
                )
        count = summary["total_objects"]
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"method": method, "seconds": seconds, "objects": count, "peak_mb": peak}


def measure(method: str, image_path: Path, tile: int, workers: int) -> dict:
    return run_case(
        "benchmarks.bench_tiled",
        "--one",
        method,
        "--image",
        image_path,
        "--tile",
        tile,
        "--workers",
        workers,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=12288)
    parser.add_argument("--tile", type=int, default=2048)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--methods", nargs="+", default=["reference", "tiled-local", "tiled-cluster"]
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--image", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(result_path("tiled.json")))
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, Path(args.image), args.tile, args.workers)))
        return
    with tempfile.TemporaryDirectory() as folder:
        image_path = Path(folder) / "scan.zarr"
        write_ome_zarr(image_path, args.size)
        rows = [measure(m, image_path, args.tile, args.workers) for m in args.methods]
    ref = rows[0]
    print(
        f"{args.size} x {args.size} uint8 ({args.size**2 / 1e6:.0f} Mpx), tiles {args.tile}, "
        f"{args.workers} workers"
    )
    print("| method | seconds | x first | peak MB | x first | bytes / image pixel | objects |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        row["time_ratio"] = row["seconds"] / ref["seconds"]
        row["memory_ratio"] = row["peak_mb"] / ref["peak_mb"]
        row["bytes_per_pixel"] = row["peak_mb"] * 2**20 / args.size**2
        print(
            f"| {row['method']} | {row['seconds']:.1f} | {row['time_ratio']:.2f} | "
            f"{row['peak_mb']:.0f} | {row['memory_ratio']:.2f} | {row['bytes_per_pixel']:.2f} | "
            f"{row['objects']} |"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {"size": args.size, "tile": args.tile, "workers": args.workers, "rows": rows}, indent=2
        )
    )


if __name__ == "__main__":
    main()
