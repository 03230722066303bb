"""``cellist project add`` / ``status`` / ``retrain``: the project queue and the learning loop
on the command line.

``cli.py`` only wires :func:`add_project_parser` into its sub-commands; the work is here.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .progress import drain
from .project_queue import SORT_KEYS, ProjectQueue
from .store import ImageStatus

#: Orders of ``cellist project status --order``: as added / sorted (``--sort``), or the images
#: most useful to correct next first (:func:`napari_cellist.what_next.rank_images`).
ORDERS = ("added", "useful")

logger = logging.getLogger("napari_cellist.cli")


def cmd_project_add(args: argparse.Namespace) -> int:
    """Add image files and folders to a project; ``images/`` + ``masks/`` masks are committed.

    Exit code 0 when every file was added (or was already there), 1 when some failed, 2 when
    none could be added.
    """
    from tqdm import tqdm

    from .store import ProjectStore

    with ProjectStore(args.project) as store:
        queue = ProjectQueue(store)
        with tqdm(total=0, desc="add", disable=None, file=sys.stderr) as bar:

            def on_progress(progress) -> None:
                bar.total = progress.total
                bar.n = progress.step
                bar.set_postfix_str(progress.message, refresh=True)

            summary = drain(queue.add(args.paths), on_progress)
    for path, reason in summary.failed:
        sys.stderr.write(f"cellist project add: {path}: {reason}\n")
    sys.stdout.write(
        f"{summary.added} image(s) added, {summary.known} already in the project, "
        f"{summary.committed} mask(s) committed, {len(summary.failed)} failed\n"
    )
    if not summary.failed:
        return 0
    return 1 if summary.added or summary.known else 2


def cmd_project_status(args: argparse.Namespace) -> int:
    """Print one line per image of the project: name, status word, objects, model, ...

    The store is opened read-only: nothing is created or written.
    """
    from .store import ProjectStore

    with ProjectStore(args.project, read_only=True) as store:
        queue = ProjectQueue(store)
        rows = queue.rows(args.sort, args.descending)
        useful = None
        if args.order == "useful":
            from .what_next import rank_images

            useful = {u.image_id: u for u in rank_images(store)}
            position = {i: n for n, i in enumerate(queue.useful_order())}
            rows.sort(key=lambda r: position[r.image_id])
    sys.stdout.write("".join(line + "\n" for line in status_table(rows, useful)))
    return 0


def cmd_project_retrain(args: argparse.Namespace) -> int:
    """Retrain the project's model once (the learning loop) and print the decision.

    Exit code 0 whether the new version was accepted or kept back (the decision is printed);
    2 when nothing could be trained.
    """
    from .cli import CliError, _parse_assignments
    from .learning_loop import LoopSettings, retrain
    from .models import check_keys, train_params_class
    from .store import ProjectStore

    values = _parse_assignments(args.train_param)
    try:
        check_keys(train_params_class(args.model), values, "--train-param")
        settings = LoopSettings(
            args.model,
            minutes=args.minutes,
            holdout_fraction=args.holdout,
            weight_by_corrections=not args.no_weights,
            device=args.device,
            train_params=values,
        )
    except ValueError as err:
        raise CliError(str(err)) from None
    with ProjectStore(args.project) as store, _bar(f"retrain {args.model}") as on_progress:
        outcome = drain(retrain(store, settings), on_progress)
    word = "accepted" if outcome.accepted else "kept back"
    if args.json:
        summary = {
            "version": outcome.version.id,
            "accepted": outcome.accepted,
            "reason": outcome.reason,
            "score": outcome.version.metrics["loop"]["score"],
            "current_score": outcome.current_score,
            "held_out": list(outcome.held_out),
            "data_used": list(outcome.version.data_used),
            "train_seconds": round(outcome.train_seconds, 2),
            "checkpoint": outcome.version.checkpoint_path,
        }
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    else:
        sys.stdout.write(f"{args.model} v{outcome.version.id} {word}: {outcome.reason}\n")
    return 0


def _bar(desc: str):
    """A context manager giving a progress callback that drives a tqdm bar on stderr."""
    from contextlib import contextmanager

    from tqdm import tqdm

    @contextmanager
    def bar():
        with tqdm(total=0, desc=desc, disable=None, file=sys.stderr) as progress_bar:

            def on_progress(progress) -> None:
                progress_bar.total = progress.total or None
                progress_bar.n = progress.step
                progress_bar.set_postfix_str(progress.message[:60], refresh=True)

            yield on_progress

    return bar()


def status_table(
    rows: Sequence[ImageStatus], usefulness: Mapping[int, Any] | None = None
) -> list[str]:
    """Text lines of the project table: a header, then one line per image (name first,
    status word second), as ``cellist project status`` prints it.

    With ``usefulness`` (:class:`~napari_cellist.what_next.Usefulness` by image id), two more
    columns: the usefulness score (``-`` for images with annotations) and its reason.
    """
    width = max([len(r.name) for r in rows] + [4])
    header = (
        f"{'name':<{width}}  {'status':<9}  {'objects':>7}  {'model':<20}  {'corr.':>5}  "
        f"{'last change':<23}"
    )
    if usefulness is not None:
        header += "  useful  why"
    lines = [header.rstrip()]
    for r in rows:
        model = "-" if r.model_name is None else r.model_name
        if r.model_version is not None:
            model += f" v{r.model_version}"
        objects = "-" if r.n_objects is None else str(r.n_objects)
        line = (
            f"{r.name:<{width}}  {r.status:<9}  {objects:>7}  {model:<20}  {r.n_corrections:>5}  "
            f"{_when(r.last_change):<23}"
        )
        if usefulness is not None:
            found = usefulness.get(r.image_id)
            score = "-" if found is None or not found.predicted else f"{found.score:.2f}"
            line += f"  {score:>6}  {'' if found is None else found.reason}"
        lines.append(line.rstrip())
    return lines


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def add_project_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``project`` command (``add``, ``status``, ``retrain``) to ``cellist``'s
    sub-parsers."""
    project = sub.add_parser(
        "project",
        help="Work through a dataset: add images, print the status table, retrain the model.",
        description=(
            "A project's images with their status (new / predicted / draft / committed). "
            "'add' adds image files and folders (an images/ + masks/ folder's masks become "
            "committed annotations); 'status' prints one line per image (name, status, "
            "objects, model, corrections, last change) and writes nothing; 'retrain' runs "
            "the learning loop once: the model is retrained from its current version and "
            "replaces it only if it scores at least as well on held-out committed images."
        ),
    )
    actions = project.add_subparsers(dest="project_command", required=True)
    add = actions.add_parser("add", help="Add image files and folders to the project.")
    add.add_argument("paths", nargs="+", help="Image files or folders (images/ + masks/ too).")
    add.add_argument(
        "--project", required=True, help="Project folder, SQLite file or database URL."
    )
    add.set_defaults(func=cmd_project_add)
    status = actions.add_parser("status", help="Print the project's images and their status.")
    status.add_argument(
        "--project", required=True, help="Project folder, SQLite file or database URL."
    )
    status.add_argument("--sort", default="order", choices=SORT_KEYS, help="Column to sort by.")
    status.add_argument("--descending", action="store_true", help="Sort in descending order.")
    status.add_argument(
        "--order",
        default="added",
        choices=ORDERS,
        help="'useful': images without annotations most useful to correct next first (the "
        "model's doubt on their predictions), with a usefulness column; default: --sort.",
    )
    status.set_defaults(func=cmd_project_status)
    _add_retrain_parser(actions)


def _add_retrain_parser(actions: argparse._SubParsersAction) -> None:
    from .models import trainable_models

    retrain = actions.add_parser(
        "retrain",
        help="Retrain the project's model once; keep it only if it is not worse.",
        description=(
            "Retrain the model from its current version on the committed images, except "
            "every k-th committed image (k = 1 / --holdout) which is held out; the new version "
            "is accepted iff its AP50 on the held-out images is at least the current "
            "version's (ties accepted). Either way it is recorded with its scores; prints the "
            "decision."
        ),
    )
    retrain.add_argument(
        "--project", required=True, help="Project folder, SQLite file or database URL."
    )
    retrain.add_argument("--model", default="threshold", choices=trainable_models())
    retrain.add_argument(
        "--minutes", type=float, default=2.0, help="Training time budget in minutes."
    )
    retrain.add_argument(
        "--holdout",
        type=float,
        default=0.25,
        help="Fraction of committed images held out to judge the new version (default 0.25).",
    )
    retrain.add_argument(
        "--no-weights",
        action="store_true",
        help="Do not weigh images by the corrections they needed.",
    )
    retrain.add_argument(
        "--device",
        choices=("auto", "cuda", "mps", "cpu"),
        default="auto",
        help="Where torch models (Cellpose, AIR) train and predict.",
    )
    retrain.add_argument(
        "--train-param", action="append", metavar="KEY=VALUE", help="Training parameter."
    )
    retrain.add_argument("--json", action="store_true", help="Print the decision as JSON.")
    retrain.set_defaults(func=cmd_project_retrain)
