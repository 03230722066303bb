"""Which annotated objects does AIR miss on the test images, and what presence did each of the
test-time grid positions give them? (The check behind the reading of the U2OS misses in docs/decisions.md.)

For every ground-truth object that the default prediction misses (no predicted object with
IoU >= 0.5), each of the ``test_time_shifts`` runs is repeated on its own (``AirModel.grid_runs``, the
mirroring and grid shifts of ``AirModel.predict``; every slot with presence >= ``--floor`` kept) and the
object that run draws best over it is reported: its presence and IoU. The fused score of the
default prediction is the mean of the runs' presences, so an object found confidently in one
grid position and missed in the others averages below ``min_score``. HeLa images ignore objects
within 20 px of the border, as ``bench_air.score`` does. The table's mean presence
counts, like the fusion, only the runs whose object matches the missed one (IoU >= 0.5).

    python -m benchmarks.bench_air --data coelho2009_u2os --mode supervised --save-dir CKPTS
    python -m benchmarks.diagnostics.air_shift_presence --checkpoint CKPTS/air_coelho2009_u2os_supervised_seed0.pt \
        --data coelho2009_u2os

Prints a Markdown table and writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from skimage.measure import regionprops

from benchmarks.bench_air import split
from napari_cellist.borders import crop_labels, mirror_border, mirror_width
from napari_cellist.images import prepare_grey
from napari_cellist.metrics import best_matches, exclude_border_objects
from napari_cellist.models.air import AirModel
from napari_cellist.models.air.fusion import object_shapes
from napari_cellist.models.air.inference import label_map

HELA_MARGIN = 20  # px: HeLa's border nuclei are not annotated (as bench_air.score)


def matches_by_label(truth: np.ndarray, pred: np.ndarray) -> dict[int, tuple[int, float]]:
    """Per object of ``truth``: (id, IoU) of the object of ``pred`` overlapping it best."""
    ids, pred_ids, ious = best_matches(truth, pred)
    return {int(i): (int(p), float(v)) for i, p, v in zip(ids, pred_ids, ious, strict=True)}


def runs_one_by_one(
    model: AirModel, image: np.ndarray, floor: float
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(label map, scores of labels 1..n) of each test-time grid position on its own, mirrored
    and shifted as ``AirModel.predict`` does (``AirModel.grid_runs``), outlines not redrawn.
    Masks are drawn as the fusion draws them, relative to each object's peak alpha (session 6
    drew absolute alphas, which hid faint objects the encoder had found)."""
    params = model.params
    grey = prepare_grey(image)
    diameter = model.object_diameter(grey, params)
    margin = mirror_width(diameter, params.border_mirror, grey.shape)
    mirrored = mirror_border(grey, margin)
    runs, _ = model.grid_runs(mirrored, diameter, params, floor)
    out = []
    for found in runs:
        shaped = replace(found, alphas=object_shapes(found.alphas))
        labels, scores = label_map(mirrored.shape, shaped, params.alpha_threshold, params.min_keep)
        labels, old_ids = crop_labels(labels, margin)
        out.append((labels, scores[old_ids - 1]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", default="coelho2009_u2os")
    parser.add_argument(
        "--split",
        choices=("test", "train"),
        default="test",
        help="which images of bench_air.py's split (train: for models trained "
        "without masks, whose training never saw the annotations)",
    )
    parser.add_argument("--floor", type=float, default=0.01, help="smallest presence kept per run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--out", default=None, help="JSON path (default: benchmarks/diagnostics/results/...)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = AirModel.load(args.checkpoint)
    train, test = split(args.data)
    rows = []
    for sample in test if args.split == "test" else train:
        default = model.predict(sample.image, replace(model.params, reconstruction=False)).labels
        runs = runs_one_by_one(model, sample.image, args.floor)
        truth = sample.labels
        if sample.name.startswith("hela"):  # scored without its (unannotated) border objects
            truth, _ = exclude_border_objects(truth, truth, HELA_MARGIN)
        h, w = truth.shape
        default_matches = matches_by_label(truth, default)
        run_matches = [(matches_by_label(truth, labels), scores) for labels, scores in runs]
        for obj in regionprops(truth):
            if default_matches[obj.label][1] >= 0.5:
                continue
            r0, c0, r1, c1 = obj.bbox
            per_run = []
            for matches, scores in run_matches:
                pid, iou = matches[obj.label]
                per_run.append(
                    {
                        "presence": round(float(scores[pid - 1]), 3) if pid else 0.0,
                        "iou": round(iou, 3),
                    }
                )
            rows.append(
                {
                    "image": sample.name,
                    "area_px": int(obj.area),
                    "touches_border": bool(r0 == 0 or c0 == 0 or r1 == h or c1 == w),
                    "runs": per_run,
                    # ~ the fused score: runs whose object does not match it (IoU < 0.5) count 0
                    "mean_presence": round(
                        float(
                            np.mean([r["presence"] if r["iou"] >= 0.5 else 0.0 for r in per_run])
                        ),
                        3,
                    ),
                }
            )
    print(
        f"Missed objects of {args.data} ({args.split} images), per test-time grid position "
        f"(presence / IoU of the best object; min_score {model.params.min_score}):\n"
    )
    shifts = model.params.test_time_shifts
    print(
        "| image | area px | border | "
        + " | ".join(f"run {k}" for k in range(shifts))
        + " | mean presence (matching runs) |"
    )
    print("|---|---|---|" + "---|" * shifts + "---|")
    for r in rows:
        cells = " | ".join(f"{x['presence']:.2f} / {x['iou']:.2f}" for x in r["runs"])
        print(
            f"| {r['image']} | {r['area_px']} | {'yes' if r['touches_border'] else 'no'} | "
            f"{cells} | {r['mean_presence']:.2f} |"
        )
    confident_once = [
        r for r in rows if any(x["presence"] >= 0.5 and x["iou"] >= 0.5 for x in r["runs"])
    ]
    print(
        f"\n{len(rows)} missed; {len(confident_once)} of them found (presence >= 0.5, IoU >= 0.5) "
        "by at least one grid position alone."
    )
    out = (
        Path(args.out)
        if args.out
        else (
            Path(__file__).resolve().parent
            / "results"
            / f"air_shift_presence_{args.data}_{args.split}.json"
        )
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"checkpoint": str(args.checkpoint), "data": args.data, "missed": rows}, indent=1
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
