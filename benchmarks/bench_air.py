"""Benchmark AIR on the annotated data sets: train on some images, score the others.

Data: ``CELLIST_DATA`` (default ``../shared/data``, see ``benchmarks/_data.py``).

Splits (fixed, by file name order):
* coelho2009_u2os / coelho2009_nih3t3: train images 0-3, test images 4-5;
* ctc_gowt1_hela: train gowt1_t01, t21, t31 + hela_t13, t52; test the other five
  (HeLa scored ignoring objects within 20 px of the border, as its ground truth does);
* dsb2018_stardist (one image): train on the top half, test on the bottom half.

Modes: ``supervised`` (training masks used), ``unsupervised`` (no masks), ``pseudo`` (no masks;
threshold-model pseudo-labels at weight 0.3). The threshold model is scored on the same test
images. AIR is also scored with one grid position (``air_one_grid``) and with its decoded masks
instead of the masks snapped to the image (``air_decoded_masks``). Prints a Markdown table and
writes JSON to benchmarks/results/.

    python -m benchmarks.bench_air --data coelho2009_u2os --mode supervised --steps 1500
    python -m benchmarks.bench_air --timing --checkpoint air.pt   # 1024 x 1024 prediction times
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from benchmarks._data import data_folder, result_path
from napari_cellist.io.readers import read_annotated_folder
from napari_cellist.metrics import exclude_border_objects, score_images
from napari_cellist.models.air import AirModel, AirTrainParams
from napari_cellist.models.threshold import ThresholdModel
from napari_cellist.progress import drain
from napari_cellist.types import Sample

CTC_TRAIN = {"gowt1_t01", "gowt1_t21", "gowt1_t31", "hela_t13", "hela_t52"}


def split(name: str) -> tuple[list[Sample], list[Sample]]:
    """(train, test) samples of a data folder; see the module docstring."""
    pairs = read_annotated_folder(data_folder(name))
    samples = [Sample(np.asarray(p.image.data), p.mask, None, p.image.name) for p in pairs]
    if name.startswith("dsb2018"):
        s = samples[0]
        half = s.image.shape[0] // 2
        return (
            [Sample(s.image[:half], s.labels[:half], name="top")],
            [Sample(s.image[half:], s.labels[half:], name="bottom")],
        )
    if name.startswith("ctc"):
        return (
            [s for s in samples if s.name in CTC_TRAIN],
            [s for s in samples if s.name not in CTC_TRAIN],
        )
    return samples[:4], samples[4:]


def _as_1024(image: np.ndarray) -> np.ndarray:
    """A 1024 x 1024 image made of ``image`` (cropped, or mirrored to fill)."""
    reps = [int(np.ceil(1024 / n)) for n in image.shape]
    tiled = np.pad(
        image, [(0, (r - 1) * n) for r, n in zip(reps, image.shape, strict=True)], mode="symmetric"
    )
    return np.ascontiguousarray(tiled[:1024, :1024])


def score(test: list[Sample], preds: list[np.ndarray]) -> dict[str, float]:
    """Pooled scores; HeLa images ignore objects within 20 px of the border."""
    truths, outs = [], []
    for s, p in zip(test, preds, strict=True):
        margin = 20 if s.name.startswith("hela") else 0
        t, q = exclude_border_objects(s.labels, p, margin)
        truths.append(t)
        outs.append(q)
    return score_images(truths, outs).as_dict()


def run(
    name: str,
    mode: str,
    steps: int,
    time_limit: float,
    threads: int,
    seed: int,
    save_dir: str | None = None,
    device: str = "auto",
) -> dict:
    """Train AIR on the training split, predict the test split, return the measured numbers
    (training and prediction on ``device``: auto / cuda / mps / cpu)."""
    train, test = split(name)
    if mode != "supervised":
        train = [Sample(s.image, None, None, s.name) for s in train]
    model = AirModel(AirModel.Params(device=device))
    params = AirTrainParams(
        steps=steps,
        minutes=time_limit / 60.0,
        threads=threads,
        seed=seed,
        pseudo_labels=mode == "pseudo",
    )
    start = time.perf_counter()
    result = drain(model.fit_iter(train, params))
    train_s = time.perf_counter() - start
    torch.set_num_threads(2)
    times, preds = [], []
    for s in test:
        t0 = time.perf_counter()
        preds.append(model.predict(s.image).labels)
        times.append(time.perf_counter() - t0)
    big = _as_1024(test[0].image)
    big_times = []
    for _ in range(3):
        t0 = time.perf_counter()
        model.predict(big)
        big_times.append(time.perf_counter() - t0)
    one_grid = replace(model.params, test_time_shifts=1)  # without the test-time grid shifts
    single = [model.predict(s.image, one_grid).labels for s in test]
    decoded = replace(model.params, refine_masks=False)  # the decoded masks, not snapped
    unsnapped = [model.predict(s.image, decoded).labels for s in test]
    baseline = [ThresholdModel().predict(s.image).labels for s in test]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(save_dir or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        size = model.save(folder / f"air_{name}_{mode}_seed{seed}.pt").stat().st_size
    return {
        "data": name,
        "mode": mode,
        "train": [s.name for s in train],
        "test": [s.name for s in test],
        "steps_done": int(model.info["steps"]),
        "train_s": train_s,
        "predict_s_mean": float(np.mean(times)),
        "test_shapes": [list(s.image.shape) for s in test],
        "predict_1024_s_median": float(np.median(big_times)),
        "air": score(test, preds),
        "air_one_grid": score(test, single),
        "air_decoded_masks": score(test, unsnapped),
        "test_time_shifts": model.params.test_time_shifts,
        "threshold": score(test, baseline),
        "n_params": model.n_parameters,
        "checkpoint_bytes": size,
        "final_loss": result.history[-1].loss if result.history else None,
        "threads_train": threads,
        "device": str(model.device),
    }


def timing(checkpoint: str | None, repeats: int = 5, device: str = "auto") -> list[dict]:
    """Median prediction time on 1024 x 1024 images (2 threads) on ``device``, diameter given
    or estimated."""
    import tifffile

    torch.set_num_threads(2)
    model = AirModel.load(checkpoint) if checkpoint else AirModel()
    images = {
        "gowt1_t01 (1024x1024, ~60 px nuclei)": tifffile.imread(
            data_folder("ctc_gowt1_hela") / "images/gowt1_t01.tif"
        ),
        "dsb2018 mirrored to 1024x1024 (~24 px nuclei)": _as_1024(
            tifffile.imread(data_folder("dsb2018_stardist") / "images/dsb2018_img2d.tif")
        ),
    }
    rows = []
    for label, image in images.items():
        settings = list(
            itertools.product(
                (0.0, 60.0 if "gowt1" in label else 24.0), (True, False), (1, 4), (True,)
            )
        ) + [(0.0, False, 4, False)]  # and once without snapping the masks to the image
        for diameter, recon, shifts, refine in settings:
            params = AirModel.Params(
                device=device,
                diameter=diameter,
                reconstruction=recon,
                test_time_shifts=shifts,
                refine_masks=refine,
            )
            model.predict(image, params)  # warm-up
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                pred = model.predict(image, params)
                times.append(time.perf_counter() - t0)
            rows.append(
                {
                    "image": label,
                    "diameter": diameter or "estimated",
                    "reconstruction": recon,
                    "test_time_shifts": shifts,
                    "refine_masks": refine,
                    "median_s": float(np.median(times)),
                    "objects": pred.count,
                    "load_avg_1min": os.getloadavg()[0],
                    "device": str(model.device),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["coelho2009_u2os", "coelho2009_nih3t3"])
    parser.add_argument(
        "--mode", choices=("supervised", "unsupervised", "pseudo"), default="supervised"
    )
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--time-limit", type=float, default=600.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default=None, help="JSON file (default benchmarks/results/air_<mode>.json)"
    )
    parser.add_argument("--timing", action="store_true", help="Only time 1024x1024 predictions.")
    parser.add_argument("--checkpoint", default=None, help="Checkpoint for --timing.")
    parser.add_argument("--save-dir", default=None, help="Also keep each trained model here.")
    parser.add_argument(
        "--device", default="auto", choices=("auto", "cuda", "mps", "cpu"), help="Where AIR runs."
    )
    args = parser.parse_args()
    if args.timing:
        rows = timing(args.checkpoint, device=args.device)
        print(
            "| image | diameter | reconstruction | grid shifts | masks snapped | median s | objects | load avg |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['image']} | {r['diameter']} | {r['reconstruction']} | "
                f"{r['test_time_shifts']} | {r['refine_masks']} | {r['median_s']:.2f} | "
                f"{r['objects']} | {r['load_avg_1min']:.1f} |"
            )
        out = Path(args.out or result_path("air_timing.json"))
        out.write_text(json.dumps(rows, indent=1))
        return
    rows = [
        run(
            n,
            args.mode,
            args.steps,
            args.time_limit,
            args.threads,
            args.seed,
            args.save_dir,
            args.device,
        )
        for n in args.data
    ]
    print(
        "| data | mode | AIR AP50 | AIR mean AP | AIR count err | AIR AP50 / count err, 1 grid | AIR AP50 / mean AP, decoded masks | threshold AP50 | threshold count err | train s | steps | predict s/img | predict s 1024x1024 | params | ckpt KB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        a, t, one, dec = r["air"], r["threshold"], r["air_one_grid"], r["air_decoded_masks"]
        print(
            f"| {r['data']} | {r['mode']} | {a['ap50']:.3f} | {a['mean_ap']:.3f} | "
            f"{a['count_error']:.3f} | {one['ap50']:.3f} / {one['count_error']:.3f} | "
            f"{dec['ap50']:.3f} / {dec['mean_ap']:.3f} | {t['ap50']:.3f} | {t['count_error']:.3f} | {r['train_s']:.0f} | "
            f"{r['steps_done']} | {r['predict_s_mean']:.2f} | {r['predict_1024_s_median']:.2f} | "
            f"{r['n_params']} | {r['checkpoint_bytes'] / 1024:.0f} |"
        )
    out = Path(args.out or result_path(f"air_{args.mode}.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(out.read_text()) if out.is_file() else []
    key = {(r["data"], r["mode"]) for r in rows}
    merged = [r for r in existing if (r["data"], r["mode"]) not in key] + rows
    out.write_text(json.dumps(merged, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
