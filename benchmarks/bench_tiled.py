"""Tiled prediction of a large OME-Zarr image: time and peak memory, local threads vs a
dask.distributed cluster, against the bare Otsu + watershed on the whole image.

The image: real GOWT1 nuclei images tiled to ``--size`` pixels a side
(``benchmarks._data.tiled_real_image``), written as a one-level OME-Zarr (1024^2 chunks). Each
run is a subprocess (its own peak resident memory, ``ru_maxrss``):

* ``reference``: the bare recipe of ``bench_threshold_scale`` on the whole image in memory;
* ``tiled-local``: ``batch.predict_batch`` on the OME-Zarr folder, tiles on a local thread pool;
* ``tiled-cluster``: the same on a ``dask.distributed.LocalCluster`` given by its address
  (``--workers`` workers of one thread, in this process so that their memory is counted).

Per model (``--model threshold|air|cellpose --sizes 1024 4096 10240``): ``whole`` (the model's
``predict`` on the whole image in memory) and ``tiled-local`` (the tiled path) at each size, time
and peak memory. AIR and Cellpose need a checkpoint: ``--train-steps N`` trains one first (AIR:
N steps on the annotated GOWT1 images; Cellpose: from scratch, N epochs; no pretrained weights
needed) and ``--checkpoint`` reuses one. ``--max-seconds`` skips the larger sizes of a method
once one run took longer (stated in the JSON as skipped, with the extrapolation).

Usage: python -m benchmarks.bench_tiled [--size 12288] [--tile 2048] [--workers 2]
       [--out benchmarks/results/tiled.json]
       python -m benchmarks.bench_tiled --model air --sizes 1024 4096 10240 --train-steps 300 \
           --out benchmarks/results/tiled_air.json
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
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


def load_model(name: str, checkpoint: str | None):
    """The benchmarked model: threshold (defaults), or AIR / Cellpose from a checkpoint."""
    if name == "threshold":
        from napari_cellist.models.threshold import ThresholdModel

        return ThresholdModel()
    if checkpoint is None:
        raise ValueError(f"--model {name} needs --checkpoint or --train-steps.")
    if name == "air":
        from napari_cellist.models.air import AirModel

        return AirModel.load(checkpoint)
    from napari_cellist.models.cellpose_adapter import CellposeModel

    return CellposeModel.load(checkpoint)


def train_checkpoint(name: str, steps: int, folder: Path) -> tuple[Path, float]:
    """Train AIR (``steps`` steps, supervised) or Cellpose (from scratch, ``steps`` epochs) on
    the annotated GOWT1 images, 2 threads; ``(checkpoint path, training seconds)``."""
    import tifffile

    from benchmarks._data import data_folder
    from napari_cellist.progress import drain
    from napari_cellist.types import Sample

    root = data_folder("ctc_gowt1_hela")
    samples = [
        Sample(tifffile.imread(path), tifffile.imread(root / "masks" / path.name), None, path.stem)
        for path in sorted((root / "images").glob("gowt1_*.tif"))[:3]
    ]
    start = time.perf_counter()
    if name == "air":
        from napari_cellist.models.air import AirModel
        from napari_cellist.models.air.params import AirTrainParams

        model = AirModel()
        drain(model.fit_iter(samples, AirTrainParams(steps=steps, minutes=10.0, threads=2)))
    else:
        from napari_cellist.models.cellpose_adapter import CellposeModel
        from napari_cellist.models.cellpose_adapter.params import CellposeTrainParams

        model = CellposeModel()
        train = CellposeTrainParams(start_from="scratch", n_epochs=steps, minutes=10.0)
        drain(model.fit_iter(samples, train))
    seconds = time.perf_counter() - start
    return model.save(folder / f"{name}.pt"), seconds


def run_one(
    method: str,
    image_path: Path,
    tile: int,
    workers: int,
    model_name: str = "threshold",
    checkpoint: str | None = None,
) -> dict:
    """One measurement in this process."""
    import torch

    torch.set_num_threads(2)
    model = load_model(model_name, checkpoint)
    out = Path(tempfile.mkdtemp())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_start = usage.ru_utime + usage.ru_stime
    start = time.perf_counter()
    if method == "whole":
        import zarr

        image = np.asarray(zarr.open_group(str(image_path), mode="r")["0"][:])
        start = time.perf_counter()
        count = len(model.predict(image).objects)
    elif method == "reference":
        import zarr

        image = np.asarray(zarr.open_group(str(image_path), mode="r")["0"][:])
        start = time.perf_counter()
        count = int(reference(image, DIAMETER).max())
    else:
        from napari_cellist.batch import predict_batch
        from napari_cellist.progress import drain

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
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - cpu_start
    peak = usage.ru_maxrss / 1024
    # cpu_s: CPU seconds of this process (all threads), steadier than wall time on a loaded box
    return {"method": method, "seconds": seconds, "cpu_s": cpu, "objects": count, "peak_mb": peak}


def measure(
    method: str,
    image_path: Path,
    tile: int,
    workers: int,
    model_name: str = "threshold",
    checkpoint: str | None = None,
) -> dict:
    extra = ["--checkpoint", checkpoint] if checkpoint else []
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
        "--model",
        model_name,
        *extra,
    )


def per_model(args: argparse.Namespace) -> None:
    """Whole-image and tiled time / peak memory of one model at each of ``args.sizes``."""
    rows: list[dict] = []
    train_s = None
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = args.checkpoint
        if args.model != "threshold" and checkpoint is None:
            keep = Path(args.checkpoint_dir or folder)
            keep.mkdir(parents=True, exist_ok=True)
            path, train_s = train_checkpoint(args.model, args.train_steps, keep)
            checkpoint = str(path)
            print(f"trained {args.model} in {train_s:.0f} s", flush=True)
        too_slow: set[str] = set()
        for size in args.sizes:
            image_path = Path(folder) / f"scan_{size}.zarr"
            write_ome_zarr(image_path, size)
            for method in args.methods:
                if method in too_slow:
                    rows.append({"size": size, "method": method, "skipped": True})
                    continue
                row = measure(method, image_path, args.tile, args.workers, args.model, checkpoint)
                row.update(
                    size=size,
                    s_per_mpx=row["seconds"] / (size * size / 1e6),
                    bytes_per_pixel=row["peak_mb"] * 2**20 / size**2,
                )
                rows.append(row)
                print(
                    f"| {args.model} | {size} | {method} | {row['seconds']:.1f} | "
                    f"{row['s_per_mpx']:.3f} | {row['peak_mb']:.0f} | {row['objects']} |",
                    flush=True,
                )
                if row["seconds"] > args.max_seconds:
                    too_slow.add(method)
            shutil.rmtree(image_path, ignore_errors=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {
                "model": args.model,
                "tile": args.tile,
                "workers": args.workers,
                "train_steps": args.train_steps if train_s is not None else None,
                "train_s": train_s,
                "max_seconds": args.max_seconds,
                "rows": rows,
            },
            indent=2,
        )
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
    parser.add_argument("--model", choices=["threshold", "air", "cellpose"], default=None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096, 10240])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--checkpoint-dir", default=None, help="keep the trained checkpoint")
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--max-seconds", type=float, default=900.0)
    args = parser.parse_args()
    if args.one:
        row = run_one(
            args.one,
            Path(args.image),
            args.tile,
            args.workers,
            args.model or "threshold",
            args.checkpoint,
        )
        print(json.dumps(row))
        return
    if args.model:
        if args.methods == ["reference", "tiled-local", "tiled-cluster"]:
            args.methods = ["whole", "tiled-local"]
        per_model(args)
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
