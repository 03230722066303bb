"""The labelling effort the learning loop saves: a simulated annotator on real data (issue 19).

The shared annotated Coelho images (6 U2OS + 6 NIH3T3) are split, by ``--seed`` before anything
runs, into a fixed test set (``--n-test`` images per cell line) and a labelling pool (the rest
of both lines together, pooled, in file order). For each model and order, in a new project
(a temporary SQLite store, the pool added with ``ProjectQueue.add``):

* round r (0, 1, ...): the current version of the model (the base model in round 0) predicts
  the images of the pool (all remaining ones for the ``useful`` order, which ranks them with
  :func:`napari_cellist.what_next.rank_images`; only the next batch for ``file`` and seeded
  ``random`` order); the next ``--batch`` images are picked; the annotator counts the edits
  that turn each prediction into the truth (:func:`napari_cellist.metrics.edit_counts`),
  commits the truth against the prediction (the corrections log is real), and the product's
  loop retrains (:func:`napari_cellist.learning_loop.retrain`, ``LoopSettings`` defaults but
  the time budget ``--minutes``), accepting the new version or not by its own rule;
* after each round, the current version is scored on the test set: edits per 100 objects
  (pooled and per cell line) and AP50.

Prints a table and writes JSON after every round (partial results survive)::

    python -m benchmarks.bench_labelling_loop --models threshold air --minutes 1
    python -m benchmarks.bench_labelling_loop --quick --models threshold --rounds 2
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks._annotator import (
    ORDERS,
    Item,
    annotate,
    load_items,
    order_batch,
    predict_stored,
    score_test,
    split_items,
    write_pool,
)
from benchmarks._data import result_path
from benchmarks._loop_predictor import MODEL_SPECS, LoopPredictor
from napari_cellist.progress import drain
from napari_cellist.project_queue import ProjectQueue
from napari_cellist.store import ProjectStore

logger = logging.getLogger("bench_labelling_loop")

#: Training parameters of the ``--quick`` mode (the test): a short threshold search.
QUICK_TRAIN = {"threshold": {"max_candidates": 6}}


def run_arm(
    spec: str,
    order: str,
    test: Sequence[Item],
    pool: Sequence[Item],
    args: argparse.Namespace,
    workdir: Path,
    on_round: Any = None,
) -> dict[str, Any]:
    """One model and order: the rounds of labelling, retraining and test scoring.

    Parameters
    ----------
    spec : str
        One of :data:`MODEL_SPECS`.
    order : str
        One of :data:`ORDERS`.
    test, pool : sequence of Item
        The fixed test images and the labelling pool (file order).
    args : argparse.Namespace
        ``rounds``, ``batch``, ``minutes``, ``seed``, ``quick``.
    workdir : Path
        Folder of the project, its checkpoints and the pool's files (kept).
    on_round : callable, optional
        Called with the arm's result after every round (e.g. to write the JSON).

    Returns
    -------
    dict
        ``rounds`` (one dict per round), ``base`` (test scores of the base model) and the
        settings.
    """
    store = ProjectStore(workdir / "project")
    queue = ProjectQueue(store)
    drain(queue.add([workdir / "pool"]))
    by_name = {item.name: item for item in pool}
    truth = {row.image_id: by_name[row.name] for row in store.image_statuses()}
    remaining = list(truth)  # added order = file order
    predictor = LoopPredictor.from_spec(
        spec,
        {"minutes": args.minutes, "checkpoint_dir": str(workdir / "models"), "device": "cpu"},
        QUICK_TRAIN if args.quick else {},
    )
    rng = random.Random(args.seed)
    arm: dict[str, Any] = {"model": spec, "order": order, "rounds": []}
    arm["base"] = score_test(predictor, queue, test)
    for r in range(args.rounds):
        if not remaining:
            break
        arm["rounds"].append(
            _one_round(r, order, queue, predictor, remaining, truth, test, args, rng)
        )
        arm["base_errors"] = dict(predictor.base_errors)
        if on_round is not None:
            on_round(arm)
    store.close()
    return arm


def _one_round(
    r: int,
    order: str,
    queue: ProjectQueue,
    predictor: LoopPredictor,
    remaining: list[int],
    truth: dict[int, Item],
    test: Sequence[Item],
    args: argparse.Namespace,
    rng: random.Random,
) -> dict[str, Any]:
    store = queue.store
    if order == "useful":
        predict_seconds = predict_stored(queue, predictor, remaining)
        batch = order_batch(order, store, remaining, args.batch, rng)
    else:
        batch = order_batch(order, store, remaining, args.batch, rng)
        predict_seconds = predict_stored(queue, predictor, batch)
    images = []
    for image_id in batch:
        edits = annotate(store, image_id, truth[image_id].truth)
        images.append(
            {
                "image_id": image_id,
                "name": truth[image_id].name,
                "deleted": edits.deleted,
                "added": edits.added,
                "redrawn": edits.redrawn,
                "n_true": edits.n_true,
                "edits_per_100": edits.per_100_objects,
            }
        )
        remaining.remove(image_id)
    total = sum(i["deleted"] + i["added"] + i["redrawn"] for i in images)
    n_true = sum(i["n_true"] for i in images)
    retrained = predictor.retrain_all(store)
    scores = score_test(predictor, queue, test)
    row = {
        "round": r,
        "labelled": [i["name"] for i in images],
        "batch_edits_per_100": 100.0 * total / n_true if n_true else 0.0,
        "batch": images,
        "predict_seconds": predict_seconds,
        "retrain": retrained,
        "retrain_seconds": sum(t["retrain_seconds"] for t in retrained),
        "accepted": all(t["accepted"] for t in retrained),
        "test": scores,
        "load_average_1min": os.getloadavg()[0],
    }
    logger.info(
        "round %d: labelled %s (%.1f edits/100), test %.1f edits/100, accepted %s",
        r,
        row["labelled"],
        row["batch_edits_per_100"],
        scores["edits_per_100"],
        row["accepted"],
    )
    return row


def table(arms: Sequence[dict[str, Any]]) -> str:
    """Markdown: one row per model, order and round."""
    lines = [
        "| model | order | round | labelled | edits/100 on the batch | test edits/100 (U2OS / NIH3T3) | test AP50 | retrain s | accepted |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for arm in arms:
        if "base" not in arm:  # an arm that had not started when the JSON was written
            continue
        base = arm["base"]
        lines.append(
            f"| {arm['model']} | {arm['order']} | base | - | - | {_test_cell(base)} "
            f"| {base['ap50']:.2f} | - | - |"
        )
        for row in arm["rounds"]:
            lines.append(
                f"| {arm['model']} | {arm['order']} | {row['round']} | {', '.join(row['labelled'])} "
                f"| {row['batch_edits_per_100']:.1f} | {_test_cell(row['test'])} "
                f"| {row['test']['ap50']:.2f} | {row['retrain_seconds']:.0f} "
                f"| {'yes' if row['accepted'] else 'no'} |"
            )
    return "\n".join(lines)


def summary(arms: Sequence[dict[str, Any]]) -> str:
    """Markdown: one row per model and order; test edits per 100 objects of the base model,
    after round 0 and after the last round; the edits per 100 objects the annotator made on
    all the images it labelled (the labelling effort); mean retraining time; versions
    accepted."""
    lines = [
        "| model | order | base | after round 0 | after last round (round) "
        "| edits/100 while labelling | retrain s (mean) | accepted |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm in arms:
        rounds = arm.get("rounds") or []
        if not rounds:
            continue
        first, last = rounds[0], rounds[-1]
        mean_s = sum(r["retrain_seconds"] for r in rounds) / len(rounds)
        accepted = sum(r["accepted"] for r in rounds)
        batches = [i for r in rounds for i in r["batch"]]
        edits = sum(i["deleted"] + i["added"] + i["redrawn"] for i in batches)
        labelling = 100.0 * edits / max(1, sum(i["n_true"] for i in batches))
        lines.append(
            f"| {arm['model']} | {arm['order']} | {_test_cell(arm['base'])} "
            f"| {_test_cell(first['test'])} | {_test_cell(last['test'])} ({last['round']}) "
            f"| {labelling:.1f} | {mean_s:.0f} | {accepted}/{len(rounds)} |"
        )
    return "\n".join(lines)


def _test_cell(scores: dict[str, Any]) -> str:
    groups = [scores.get(f"edits_per_100_{g}") for g in ("U2OS", "NIH3T3")]
    per = " / ".join("-" if v is None else f"{v:.1f}" for v in groups)
    return f"{scores['edits_per_100']:.1f} ({per})"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["threshold"], choices=MODEL_SPECS)
    parser.add_argument("--orders", nargs="+", default=list(ORDERS), choices=ORDERS)
    parser.add_argument("--rounds", type=int, default=4, help="Rounds (round 0 included).")
    parser.add_argument("--batch", type=int, default=2, help="Images labelled per round.")
    parser.add_argument("--n-test", type=int, default=2, help="Test images per cell line.")
    parser.add_argument("--minutes", type=float, default=1.0, help="Budget of one retraining.")
    parser.add_argument("--seed", type=int, default=0, help="Test split and random order.")
    parser.add_argument("--quick", action="store_true", help="Small crops (for the test).")
    parser.add_argument("--workdir", type=Path, default=None, help="Keep the projects here.")
    parser.add_argument("--out", type=Path, default=None, help="JSON path.")
    parser.add_argument(
        "--table", type=Path, nargs="+", default=None, help="Only print the tables of these JSON."
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.batch < 1 or args.n_test < 1:
        parser.error("--rounds, --batch and --n-test must be 1 or more")
    return args


def default_out(args: argparse.Namespace) -> Path:
    models = "_".join(m.replace("+", "-") for m in args.models)
    quick = "_quick" if args.quick else ""
    return result_path(f"labelling_loop_{models}_seed{args.seed}{quick}.json")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.table:
        arms = [a for path in args.table for a in json.loads(path.read_text())["arms"]]
        print(table(arms), summary(arms), sep="\n\n")
        return {"arms": arms}
    items = load_items(quick=args.quick)
    test, pool = split_items(items, 1 if args.quick else args.n_test, args.seed)
    out = args.out or default_out(args)
    result: dict[str, Any] = {
        "command": "python -m benchmarks.bench_labelling_loop "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "settings": {
            "minutes": args.minutes,
            "rounds": args.rounds,
            "batch": args.batch,
            "seed": args.seed,
            "quick": args.quick,
            "loop": "LoopSettings defaults (every_n_commits 1, holdout_fraction 0.25, "
            "weight_by_corrections on) but minutes and device cpu",
        },
        "test": [i.name for i in test],
        "pool": [i.name for i in pool],
        "arms": [],
    }
    root = Path(args.workdir or tempfile.mkdtemp(prefix="labelling_loop_"))
    started = time.perf_counter()
    for spec in args.models:
        for order in args.orders:
            workdir = root / f"{spec}_{order}"
            write_pool(pool, workdir / "pool")
            partial = {"model": spec, "order": order}
            result["arms"].append(partial)

            def save(arm: dict[str, Any], slot: dict[str, Any] = partial) -> None:
                slot.clear()
                slot.update(arm)
                result["seconds"] = time.perf_counter() - started
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(result, indent=1, default=float))

            save(run_arm(spec, order, test, pool, args, workdir, on_round=save))
    print(table(result["arms"]), summary(result["arms"]), sep="\n\n")
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    main()
