"""Does AIR learn from a user's corrections? One simulated correction round, scored on held-out images.

1. A base AIR model is trained on the training images without labels (as ``bench_air.py --mode
   unsupervised``), or loaded with ``--checkpoint`` (e.g. one that ``bench_air.py --save-dir``
   kept).
2. A simulated user corrects its predictions on the *training* images, one of three ways:
   * ``points``: clicks the centre of every annotated object the model missed (no predicted
     object overlaps it with IoU >= 0.5). Points say "an object is here" and nothing else.
   * ``masks``: corrects the whole label map of the first training image of each group (for
     ``ctc_gowt1_hela``: one GOWT1 and one HeLa image); a committed label map says where every
     object is and that there is none elsewhere. The other images stay unlabelled.
   * ``none``: commits nothing. The control: the same fine-tuning steps with no corrections.
3. Each arm fine-tunes a copy of the base model (``--steps``, resumed from its weights, as the
   *Target model* widget's Train does from a selected version) on all training images with the
   corrections, and is scored on the test images: pooled and per group (cell line, from the file
   name). For ``points`` it also reports how many of the clicked objects the model now finds on
   the training images; for ``masks``, AP50 on the corrected images themselves.

Splits are ``bench_air.py``'s. Prints a Markdown table and writes JSON::

    python -m benchmarks.bench_air_corrections --data ctc_gowt1_hela --seed 0
    python -m benchmarks.bench_air_corrections --checkpoint CKPTS/air_ctc_gowt1_hela_unsupervised_seed0.pt
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from skimage.measure import regionprops

from benchmarks._data import result_path
from benchmarks.bench_air import score, split
from napari_cellist.metrics import best_iou_per_object
from napari_cellist.models.air import AirModel, AirTrainParams
from napari_cellist.progress import drain
from napari_cellist.types import Sample

logger = logging.getLogger("bench_air_corrections")
ARMS = ("none", "points", "masks")
KEYS = ("ap50", "mean_ap", "precision", "recall", "count_error")


def missed_objects(truth: np.ndarray, pred: np.ndarray) -> list[int]:
    """Labels of the objects of ``truth`` that no object of ``pred`` matches with IoU >= 0.5."""
    ids, best = best_iou_per_object(truth, pred)
    return [int(i) for i in ids[best < 0.5]]


def centres(truth: np.ndarray, labels: list[int]) -> np.ndarray:
    """``(P, 2)`` centroids (row, col; pixels) of the objects ``labels`` of ``truth``."""
    wanted = set(labels)
    return np.array([o.centroid for o in regionprops(truth) if o.label in wanted], float).reshape(
        -1, 2
    )


def group_of(name: str) -> str:
    """The group (cell line) of an image: its file name up to the first underscore."""
    return name.split("_")[0]


def corrected_samples(
    train: list[Sample], preds: list[np.ndarray], arm: str
) -> tuple[list[Sample], dict[str, list[int]]]:
    """The training samples with one arm's corrections, and what was corrected per image
    (``points``: the clicked objects' labels; ``masks``: every label of a corrected image)."""
    samples, corrected, seen_groups = [], {}, set()
    for sample, pred in zip(train, preds, strict=True):
        plain = Sample(sample.image, None, None, sample.name)
        if arm == "points":
            clicked = missed_objects(sample.labels, pred)
            if clicked:
                corrected[sample.name] = clicked
                plain = replace(plain, points=centres(sample.labels, clicked))
        elif arm == "masks" and group_of(sample.name) not in seen_groups:
            seen_groups.add(group_of(sample.name))
            corrected[sample.name] = [int(v) for v in np.unique(sample.labels) if v]
            plain = replace(plain, labels=sample.labels)
        samples.append(plain)
    return samples, corrected


def scores_by_group(test: list[Sample], preds: list[np.ndarray]) -> dict[str, dict[str, float]]:
    """Pooled scores (``"all"``) and scores of each group of test images."""
    out = {"all": score(test, preds)}
    for group in sorted({group_of(s.name) for s in test}):
        pairs = [(s, p) for s, p in zip(test, preds, strict=True) if group_of(s.name) == group]
        if len(pairs) < len(test):
            out[group] = score([s for s, _ in pairs], [p for _, p in pairs])
    return {g: {k: round(float(v[k]), 3) for k in KEYS} for g, v in out.items()}


def predict_all(model: AirModel, samples: list[Sample]) -> list[np.ndarray]:
    params = replace(model.params, reconstruction=False)
    return [model.predict(s.image, params).labels for s in samples]


def run_arm(
    base: Path,
    arm: str,
    train: list[Sample],
    base_train_preds: list[np.ndarray],
    test: list[Sample],
    steps: int,
    seed: int,
) -> dict:
    """Fine-tune a copy of the base model with one arm's corrections; score it."""
    model = AirModel.load(base)
    samples, corrected = corrected_samples(train, base_train_preds, arm)
    params = AirTrainParams(steps=steps, seed=seed, threads=1)
    start = time.perf_counter()
    drain(model.fit_iter(samples, params))
    fit_s = time.perf_counter() - start
    torch.set_num_threads(2)
    row = {
        "arm": arm,
        "fit_s": round(fit_s, 1),
        "steps": steps,
        "corrections": sum(len(v) for v in corrected.values()),
        "corrected_images": sorted(corrected),
        "test": scores_by_group(test, predict_all(model, test)),
    }
    by_name = {s.name: s for s in train}
    if arm == "points" and corrected:
        names = sorted(corrected)
        after = dict(zip(names, predict_all(model, [by_name[n] for n in names]), strict=True))
        found = sum(
            len(set(corrected[n]) - set(missed_objects(by_name[n].labels, after[n]))) for n in names
        )
        row["clicked_found_after"] = int(found)
    if arm == "masks" and corrected:
        names = sorted(corrected)
        images = [by_name[n] for n in names]
        base_by_name = {s.name: p for s, p in zip(train, base_train_preds, strict=True)}
        before = [base_by_name[n] for n in names]
        row["corrected_images_ap50"] = {
            "before": round(score(images, before)["ap50"], 3),
            "after": round(score(images, predict_all(model, images))["ap50"], 3),
        }
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="ctc_gowt1_hela")
    parser.add_argument("--checkpoint", default=None, help="Base model (default: train one).")
    parser.add_argument("--base-steps", type=int, default=1500, help="Steps of the base model.")
    parser.add_argument("--steps", type=int, default=300, help="Fine-tuning steps per arm.")
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out",
        default=None,
        help="JSON (default benchmarks/results/air_corrections_<data>_seed<N>.json)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    train, test = split(args.data)
    unlabelled = [Sample(s.image, None, None, s.name) for s in train]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.checkpoint) if args.checkpoint else Path(tmp) / "base.pt"
        base_s = None
        if not args.checkpoint:
            model = AirModel()
            start = time.perf_counter()
            drain(
                model.fit_iter(
                    unlabelled, AirTrainParams(steps=args.base_steps, seed=args.seed, threads=1)
                )
            )
            base_s = round(time.perf_counter() - start, 1)
            model.save(base)
        model = AirModel.load(base)
        torch.set_num_threads(2)
        base_train_preds = predict_all(model, train)
        result = {
            "data": args.data,
            "seed": args.seed,
            "checkpoint": args.checkpoint,
            "base_train_s": base_s,
            "train": [s.name for s in train],
            "test": [s.name for s in test],
            "base": scores_by_group(test, predict_all(model, test)),
            "arms": [],
        }
        for arm in args.arms:
            logger.info("arm %s", arm)
            result["arms"].append(
                run_arm(base, arm, train, base_train_preds, test, args.steps, args.seed)
            )
    groups = list(result["base"])
    print(
        "| model | corrections | "
        + " | ".join(f"{g} AP50 / recall" for g in groups)
        + " | fine-tune s |"
    )
    print("|---|---|" + "---|" * len(groups) + "---|")

    def cells(scores: dict) -> str:
        return " | ".join(f"{scores[g]['ap50']:.3f} / {scores[g]['recall']:.3f}" for g in groups)

    print(f"| base (no labels) | - | {cells(result['base'])} | - |")
    for row in result["arms"]:
        print(
            f"| + {row['arm']} | {row['corrections']} | {cells(row['test'])} | {row['fit_s']:.0f} |"
        )
    out = Path(args.out or result_path(f"air_corrections_{args.data}_seed{args.seed}.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
