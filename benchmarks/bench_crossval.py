"""Cross-validated accuracy with the defaults a user gets (threshold, AIR, Cellpose; issue #22).

k-fold cross-validation over the shared annotated Coelho images (6 U2OS + 6 NIH3T3), stratified
by set: each set's images are dealt into ``--folds`` folds (seeded), fold ``f`` holds out fold
``f`` of every set, and one model is trained on all the other images of all sets, as
``cellist train --model M`` does with no options (``pipeline.train_model`` with the training
parameters' defaults, a checkpoint written and read back as ``cellist predict --checkpoint``
reads it). Only the time budget of AIR and Cellpose may be set smaller (``--minutes``) on a
loaded CPU. ``--folds 6`` is leave-one-image-out per set.

Variants (a row each): ``default``; ``flatten`` = every image (training and test) first goes
through :func:`napari_cellist.background.flatten_background` (robust background removal, bright
artefacts clipped); ``augment`` = intensity augmentation (``intensity_augment=0.3``) for AIR and
Cellpose.

Reported per model, variant and set: AP50, mean AP, F1, count error and edits per 100 objects
(``metrics.edit_counts_pooled``) of the held-out images, as mean and min-max over folds. The JSON
is rewritten after every fold (partial runs keep their folds; ``--resume`` skips them).

Run: ``python -m benchmarks.bench_crossval --models threshold air cellpose --minutes 2``;
``--report a.json b.json`` prints the table of several result files together.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._data import data_folder, result_path
from napari_cellist.background import flatten_background
from napari_cellist.metrics import edit_counts_pooled, score_images
from napari_cellist.models import build_model, train_params_class
from napari_cellist.models.base import params_from_mapping
from napari_cellist.pipeline import samples_from_folders, train_model
from napari_cellist.progress import drain
from napari_cellist.splits import kfold_indices
from napari_cellist.types import Sample

logger = logging.getLogger(__name__)

SETS = {"u2os": "coelho2009_u2os", "nih3t3": "coelho2009_nih3t3"}
MODELS = ("threshold", "air", "cellpose")
VARIANTS = ("default", "flatten", "augment")
TIMED = ("air", "cellpose")  # models whose time budget --minutes sets
METRICS = ("ap50", "mean_ap", "f1", "count_error", "edits_per_100")


def load_sets(names: list[str]) -> dict[str, list[Sample]]:
    """The annotated samples of each set, named ``<set>/<file>``."""
    out = {}
    for name in names:
        samples = samples_from_folders([data_folder(SETS[name])])
        out[name] = [Sample(s.image, s.labels, s.points, f"{name}/{s.name}") for s in samples]
    return out


def folds_of(sets: dict[str, list[Sample]], n_folds: int, seed: int) -> list[dict[str, list[int]]]:
    """``folds[f][set]``: indices of the set's images held out in fold ``f``."""
    per_set = {name: kfold_indices(len(s), n_folds, seed) for name, s in sets.items()}
    n = max(len(f) for f in per_set.values())
    return [{name: (f[k] if k < len(f) else []) for name, f in per_set.items()} for k in range(n)]


def prepared(sample: Sample, variant: str) -> Sample:
    """The sample as the variant feeds it to the model (images flattened for ``flatten``)."""
    if variant != "flatten":
        return sample
    return Sample(flatten_background(sample.image), sample.labels, sample.points, sample.name)


def train_params(model: str, variant: str, minutes: float | None) -> Any:
    """The model's training defaults; only ``minutes`` (AIR, Cellpose) and the variant change."""
    values: dict[str, Any] = {}
    if minutes and model in TIMED:
        values["minutes"] = minutes
    if variant == "augment" and model in TIMED:
        values["intensity_augment"] = 0.3
    return params_from_mapping(train_params_class(model), values)


def run_fold(
    model_name: str,
    variant: str,
    train: list[Sample],
    test: dict[str, list[Sample]],
    minutes: float | None,
    workdir: Path,
) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """Train with the defaults, save and reload the checkpoint, score each set's test images."""
    tp = train_params(model_name, variant, minutes)
    model = build_model(model_name)
    start = time.perf_counter()
    result = train_model(model, train, tp, workdir / f"{model_name}.ckpt")
    train_s = time.perf_counter() - start
    trained = build_model(model_name, workdir / f"{model_name}.ckpt")
    scores, predict_s = {}, 0.0
    for name, samples in test.items():
        if not samples:
            continue
        start = time.perf_counter()
        preds = [drain(trained.predict_iter(s.image)).labels for s in samples]
        predict_s += time.perf_counter() - start
        truths = [np.asarray(s.labels) for s in samples]
        pooled = score_images(truths, preds)
        scores[name] = {
            "ap50": pooled.ap50,
            "mean_ap": pooled.mean_ap,
            "f1": pooled.f1,
            "count_error": pooled.count_error,
            "edits_per_100": edit_counts_pooled(truths, preds).per_100_objects,
            "n_true": pooled.n_true,
            "n_pred": pooled.n_pred,
        }
    info = {
        "train_s": train_s,
        "predict_s": predict_s,
        "fit_metrics": {k: float(v) for k, v in result.metrics.items()},
        "train_params": {f: getattr(tp, f) for f in tp.__dataclass_fields__},
    }
    return scores, info


def summarise(records: list[dict]) -> list[dict]:
    """Rows (model, variant, set) with mean, min and max over folds of every metric."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["model"], r["variant"], r["set"]), []).append(r)
    rows = []
    for (model, variant, name), rs in sorted(groups.items()):
        row = {"model": model, "variant": variant, "set": name, "n_folds": len(rs)}
        for m in METRICS:
            values = np.array([r[m] for r in rs], float)
            row[m] = {"mean": values.mean(), "min": values.min(), "max": values.max()}
        row["train_s_mean"] = float(np.mean([r["train_s"] for r in rs]))
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    """Markdown table: mean (min-max) over folds."""
    head = "| model | variant | set | folds | AP50 | mAP | F1 | count error | edits/100 | train s |"
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        cells = [
            f"{r[m]['mean']:.3f} ({r[m]['min']:.3f}-{r[m]['max']:.3f})"
            if m != "edits_per_100"
            else f"{r[m]['mean']:.1f} ({r[m]['min']:.1f}-{r[m]['max']:.1f})"
            for m in METRICS
        ]
        lines.append(
            f"| {r['model']} | {r['variant']} | {r['set']} | {r['n_folds']} | "
            + " | ".join(cells)
            + f" | {r['train_s_mean']:.0f} |"
        )
    return "\n".join(lines)


def write(out: Path, payload: dict) -> None:
    """Rewrite the result JSON atomically (a crash keeps the previous folds)."""
    payload["summary"] = summarise(payload["records"])
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=float))
    os.replace(tmp, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--variants", nargs="+", default=["default"], choices=VARIANTS)
    parser.add_argument("--folds", type=int, default=3, help="folds per set (6 = leave-one-out)")
    parser.add_argument(
        "--only-folds", type=int, nargs="+", default=None, help="run these folds only (0-based)"
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="AIR / Cellpose time budget (default: their training default, 10 min)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the fold assignment")
    parser.add_argument("--out", default=str(result_path("crossval.json")))
    parser.add_argument("--resume", action="store_true", help="keep the folds already in --out")
    parser.add_argument("--report", nargs="+", default=None, help="print the table of these JSONs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.report:
        records = [r for p in args.report for r in json.loads(Path(p).read_text())["records"]]
        print(table(summarise(records)))
        return 0
    out = Path(args.out)
    payload: dict[str, Any] = {
        "command": "python -m benchmarks.bench_crossval "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "design": f"{args.folds}-fold per set (stratified), seed {args.seed}; trained on all "
        "other images of the sets, scored per set on the held-out ones",
        "minutes": args.minutes,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs shared with other jobs",
        "load_average_at_start": list(os.getloadavg()),
        "records": [],
    }
    if args.resume and out.is_file():
        payload["records"] = json.loads(out.read_text())["records"]
    done = {(r["model"], r["variant"], r["fold"]) for r in payload["records"]}
    sets = load_sets(args.sets)
    folds = folds_of(sets, args.folds, args.seed)
    for k, held in enumerate(folds):
        if args.only_folds is not None and k not in args.only_folds:
            continue
        test = {n: [sets[n][i] for i in idx] for n, idx in held.items()}
        train = [s for n, ss in sets.items() for i, s in enumerate(ss) if i not in held[n]]
        for model in args.models:
            for variant in args.variants:
                if (model, variant, k) in done or (variant == "augment" and model not in TIMED):
                    continue
                with tempfile.TemporaryDirectory() as tmp:
                    scores, info = run_fold(
                        model,
                        variant,
                        [prepared(s, variant) for s in train],
                        {n: [prepared(s, variant) for s in ss] for n, ss in test.items()},
                        args.minutes,
                        Path(tmp),
                    )
                for name, s in scores.items():
                    payload["records"].append(
                        {
                            "model": model,
                            "variant": variant,
                            "fold": k,
                            "set": name,
                            "seed": 0,
                            "test_images": [x.name for x in test[name]],
                            **s,
                            **info,
                            "load_average": list(os.getloadavg()),
                        }
                    )
                    print(
                        f"fold {k} {model} {variant} {name}: AP50 {s['ap50']:.3f} "
                        f"edits/100 {s['edits_per_100']:.1f} (train {info['train_s']:.0f} s)",
                        flush=True,
                    )
                write(out, payload)
    print(table(summarise(payload["records"])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
