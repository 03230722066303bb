"""Accuracy and speed of the threshold model on the annotated data sets.

Data: ``CELLIST_DATA`` (default ``../shared/data``, see ``benchmarks/_data.py``).

For every folder: the default model (diameter estimated per image) on all images, and a
train/test split (images at even positions of the sorted list fit the parameters, the others
measure; the single DSB2018 image is split into its left and right halves) comparing the
default and the fitted model on the held-out images. HeLa images are scored ignoring objects
within 20 px of the border (not annotated there). Also times one prediction of the largest image.

Usage: python -m benchmarks.bench_threshold [--candidates 24] [--out benchmarks/results/threshold.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import tifffile

from benchmarks._data import data_root, result_path
from napari_cellist.images import prepare_grey
from napari_cellist.metrics import exclude_border_objects, score_images
from napari_cellist.models.threshold import ThresholdFitParams, ThresholdModel
from napari_cellist.progress import drain
from napari_cellist.types import Sample


def load(folder: Path) -> list[Sample]:
    samples = []
    for path in sorted((folder / "images").glob("*.tif")):
        image = prepare_grey(tifffile.imread(path))
        mask = tifffile.imread(folder / "masks" / path.name).astype(np.int32)
        samples.append(Sample(image, mask, name=path.stem))
    if len(samples) == 1:  # one image: its halves are the split
        s = samples[0]
        half = s.image.shape[1] // 2
        samples = [
            Sample(s.image[:, :half], s.labels[:, :half], name=f"{s.name}_left"),
            Sample(s.image[:, half:], s.labels[:, half:], name=f"{s.name}_right"),
        ]
    return samples


def score(model: ThresholdModel, samples: list[Sample]) -> dict:
    truths, preds = [], []
    for s in samples:
        labels = model.predict(s.image).labels
        margin = 20 if s.name.startswith("hela") else 0
        t, p = exclude_border_objects(s.labels, labels, margin)
        truths.append(t)
        preds.append(p)
    return score_images(truths, preds).as_dict()


def time_largest(repeats: int = 3) -> dict:
    paths = sorted(data_root().glob("*/images/*.tif"), key=lambda p: tifffile.imread(p).size)
    image = prepare_grey(tifffile.imread(paths[-1]))
    model = ThresholdModel()
    model.predict(image)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(image)
        times.append(time.perf_counter() - start)
    return {
        "image": paths[-1].name,
        "shape": list(image.shape),
        "seconds_median": float(np.median(times)),
        "seconds_all": times,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--candidates", type=int, default=24)
    parser.add_argument("--out", default=str(result_path("threshold.json")))
    args = parser.parse_args()
    rows = []
    for folder in sorted(p for p in data_root().iterdir() if p.is_dir()):
        samples = load(folder)
        train, test = samples[0::2], samples[1::2]
        default_all = score(ThresholdModel(), samples)
        default_test = score(ThresholdModel(), test)
        fitted = ThresholdModel()
        start = time.perf_counter()
        result = drain(fitted.fit_iter(train, ThresholdFitParams(max_candidates=args.candidates)))
        fit_seconds = time.perf_counter() - start
        fitted_test = score(fitted, test)
        rows.append(
            {
                "folder": folder.name,
                "default_all": default_all,
                "default_test": default_test,
                "fitted_test": fitted_test,
                "fit_seconds": fit_seconds,
                "train": [s.name for s in train],
                "test": [s.name for s in test],
                "fitted_params": dict(result.params),
            }
        )
        print(
            f"{folder.name:20s} all AP50 {default_all['ap50']:.3f} | test: default AP50 {default_test['ap50']:.3f} "
            f"mAP {default_test['mean_ap']:.3f} -> fitted AP50 {fitted_test['ap50']:.3f} mAP {fitted_test['mean_ap']:.3f} "
            f"(fit {fit_seconds:.0f} s)",
            flush=True,
        )
    timing = time_largest()
    print(
        f"one prediction of {timing['image']} {timing['shape']}: {timing['seconds_median']:.2f} s (median of 3)"
    )
    print()
    print(
        "| folder | AP50 all (default) | mean AP all | F1 all | count err all | AP50 test default | AP50 test fitted | mean AP test default | mean AP test fitted |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        a, d, f = r["default_all"], r["default_test"], r["fitted_test"]
        print(
            f"| {r['folder']} | {a['ap50']:.3f} | {a['mean_ap']:.3f} | {a['f1']:.3f} | {a['count_error']:.3f} | {d['ap50']:.3f} | {f['ap50']:.3f} | {d['mean_ap']:.3f} | {f['mean_ap']:.3f} |"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {"folders": rows, "timing": timing, "candidates": args.candidates},
            indent=2,
            default=float,
        )
    )


if __name__ == "__main__":
    main()
