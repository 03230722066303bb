"""Cellpose benchmark: train from scratch on part of the annotated data, score the rest, time predictions.

Data: ``CELLIST_DATA`` (default ``../shared/data``, see ``benchmarks/_data.py``).

No pretrained Cellpose weights can be downloaded here, so the network is trained from scratch on
the training split (time-capped), then scored on held-out images of every folder, next to the
threshold model on the same images. Run (2 threads)::

    python -m benchmarks.bench_cellpose --minutes 15 --threads 2   # writes benchmarks/results/cellpose.json

``--folders coelho2009_u2os coelho2009_nih3t3`` trains a specialist on those folders only.
Split (fixed): test = u2os_dna-4/5, nih3t3_dna-4/5, gowt1_t52/t72, hela_t75/t79 and the right half
of the DSB2018 image; everything else trains (10 % of it held out as FitResult validation).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from benchmarks._data import data_folder, result_path
from napari_cellist.diameters import diameter_from_labels
from napari_cellist.io.readers import read_annotated_folder
from napari_cellist.metrics import score_images
from napari_cellist.models import create_model
from napari_cellist.models.cellpose_adapter import (
    CellposeModel,
    CellposeParams,
    CellposeTrainParams,
)
from napari_cellist.models.cellpose_adapter.weights import build_network
from napari_cellist.types import Sample

TEST = {
    "u2os_dna-4",
    "u2os_dna-5",
    "nih3t3_dna-4",
    "nih3t3_dna-5",
    "gowt1_t52",
    "gowt1_t72",
    "hela_t75",
    "hela_t79",
}
FOLDERS = ("coelho2009_u2os", "coelho2009_nih3t3", "ctc_gowt1_hela", "dsb2018_stardist")
PREFIX = {
    "coelho2009_u2os": "u2os",
    "coelho2009_nih3t3": "nih3t3",
    "gowt1": "gowt1",
    "hela": "hela",
    "dsb2018_stardist": "dsb2018",
}


def load_split(
    folders: tuple[str, ...] = FOLDERS,
) -> tuple[list[Sample], dict[str, list[Sample]]]:
    """Training samples and, per test group, the held-out samples of ``folders``."""
    train: list[Sample] = []
    test: dict[str, list[Sample]] = {}
    for folder in folders:
        for pair in read_annotated_folder(data_folder(folder)):
            image, mask, name = (
                np.asarray(pair.image.data, np.float32),
                np.asarray(pair.mask),
                pair.image.name,
            )
            group = name.split("_")[0] if folder == "ctc_gowt1_hela" else folder
            if folder == "dsb2018_stardist":
                half = image.shape[1] // 2
                train.append(Sample(image[:, :half], mask[:, :half], name=f"{name}-left"))
                test.setdefault(group, []).append(
                    Sample(image[:, half:], mask[:, half:], name=f"{name}-right")
                )
            elif name in TEST:
                test.setdefault(group, []).append(Sample(image, mask, name=name))
            else:
                train.append(Sample(image, mask, name=name))
    return train, test


def train(
    samples: list[Sample], tp: CellposeTrainParams, minutes: float
) -> tuple[CellposeModel, dict]:
    """Train from scratch; closes the generator (Stop) when the time cap is reached."""
    model = CellposeModel(CellposeParams(model="", resample=False))
    start = time.perf_counter()
    gen = model.fit_iter(samples, tp)
    info: dict = {"stopped_at_cap": False, "losses": []}
    while True:
        try:
            progress = next(gen)
        except StopIteration as stop:
            info["fit_metrics"] = dict(stop.value.metrics)
            info["validation_images"] = sorted(
                set(s.name for s in samples) - set(stop.value.data_used)
            )
            break
        info["losses"].append(round(float(progress.loss), 4))
        if progress.step % 10 == 0:
            print(
                f"epoch {progress.step}/{progress.total} loss {progress.loss:.3f} {time.perf_counter() - start:.0f}s",
                flush=True,
            )
        if time.perf_counter() - start > minutes * 60:
            gen.close()
            info["stopped_at_cap"] = True
            break
    info["epochs_done"] = len(info["losses"])
    info["train_seconds"] = round(time.perf_counter() - start, 1)
    return model, info


def evaluate(
    model, params, test: dict[str, list[Sample]], diameters: dict[str, float] | None
) -> dict:
    """Scores per test group; ``diameters`` = given per group, None = each model's automatic estimate."""
    out = {}
    for group, samples in test.items():
        p = replace(params, diameter=diameters[group]) if diameters else params
        start = time.perf_counter()
        preds = [model.predict(s.image, p).labels for s in samples]
        scores = score_images(
            [s.labels for s in samples], preds, border_margin=20 if group == "hela" else 0
        )
        out[group] = {
            **scores.as_dict(),
            "seconds_per_image": (time.perf_counter() - start) / len(samples),
        }
    return out


def timings(model: CellposeModel, repeats: int = 1) -> dict:
    """Seconds of one 2D 1024x1024 prediction and of a small 3D stack (do_3D and stitching)."""
    gowt1 = [
        p
        for p in read_annotated_folder(data_folder("ctc_gowt1_hela"))
        if p.image.name == "gowt1_t52"
    ][0]
    image = np.asarray(gowt1.image.data, np.float32)
    dsb = read_annotated_folder(data_folder("dsb2018_stardist"))[0]
    crop = np.asarray(dsb.image.data, np.float32)[:128, :128]
    stack = np.stack([np.roll(crop, (z, z), axis=(0, 1)) for z in range(16)])  # (16, 128, 128)
    cases = {
        "2d_1024_resample": (image, CellposeParams(model="", diameter=60.0)),
        "2d_1024_no_resample": (image, CellposeParams(model="", diameter=60.0, resample=False)),
        "3d_16x128x128_do3D": (stack, CellposeParams(model="", diameter=24.0, do_3D=True)),
        "3d_16x128x128_stitch": (
            stack,
            CellposeParams(model="", diameter=24.0, stitch_threshold=0.25),
        ),
    }
    full_size = CellposeModel(CellposeParams(model=""))
    full_size._network, full_size._network_spec = (
        build_network(None, 30.0),
        "",
    )  # cyto3's size, random weights
    out = {
        "2d_1024_cyto3_size_net_diameter30": _time(
            full_size, image, CellposeParams(model="", diameter=30.0)
        )
    }
    for name, (img, params) in cases.items():
        out[name] = min(_time(model, img, params) for _ in range(repeats))
    return out


def _time(model: CellposeModel, image: np.ndarray, params: CellposeParams) -> float:
    start = time.perf_counter()
    model.predict(image, params)
    return round(time.perf_counter() - start, 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="training time cap")
    parser.add_argument("--epochs", type=int, default=500, help="epochs of one batch each")
    parser.add_argument("--bsize", type=int, default=64, help="training patch size")
    parser.add_argument(
        "--diam-mean", type=float, default=17.0, help="object size the network works at"
    )
    parser.add_argument(
        "--folders",
        nargs="+",
        default=list(FOLDERS),
        choices=FOLDERS,
        help="train and test on these folders only (e.g. the two Coelho folders: a specialist model)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--save", default=None, help="also write the trained model here")
    parser.add_argument("--out", default=str(result_path("cellpose.json")))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    train_samples, test = load_split(tuple(args.folders))
    tp = CellposeTrainParams(
        start_from="scratch",
        n_epochs=args.epochs,
        bsize=args.bsize,
        batch_size=8,
        diam_mean=args.diam_mean,
        images_per_epoch=8,
        validation_fraction=0.1,
        num_threads=args.threads,
    )
    load_start = list(os.getloadavg())
    model, info = train(train_samples, tp, args.minutes)
    info["load_average_after_training"] = list(os.getloadavg())
    if args.save:
        model.save(args.save)
    # "told the diameter": median of the group's *training* annotations (never the test ones)
    given = {
        g: diameter_from_labels([s.labels for s in train_samples if s.name.startswith(PREFIX[g])])
        for g in test
    }
    threshold = create_model("threshold")
    params = replace(model.params, resample=False)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {args.threads} torch threads, shared 2-core CPU",
        "load_average_at_start": load_start,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "train_images": [s.name for s in train_samples],
        "test": {g: [s.name for s in t] for g, t in test.items()},
        "train_params": vars(args) | {"lr": tp.learning_rate, "batch_size": tp.batch_size},
        "training": info,
        "given_diameters": given,
        "cellpose_auto": evaluate(model, params, test, None),
        "cellpose_given": evaluate(model, params, test, given),
        "threshold_auto": evaluate(threshold, threshold.params, test, None),
        "threshold_given": evaluate(threshold, threshold.params, test, given),
        "timings_s": timings(model),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print_table(result)
    return 0


def print_table(result: dict) -> None:
    """Markdown table of AP50 / mean AP / count error per group and method."""
    print("| group | method | diameter | AP50 | mean AP | count error |")
    print("|---|---|---|---|---|---|")
    for key in ("cellpose_auto", "cellpose_given", "threshold_auto", "threshold_given"):
        method, diameter = key.split("_")
        for group, s in result[key].items():
            print(
                f"| {group} | {method} | {diameter} | {s['ap50']:.3f} | {s['mean_ap']:.3f} | {s['count_error']:.3f} |"
            )
    print("training:", {k: v for k, v in result["training"].items() if k != "losses"})
    print("timings (s):", result["timings_s"])


if __name__ == "__main__":
    sys.exit(main())
