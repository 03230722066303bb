"""``cellist eval``: score predicted label maps, or several model versions, against ground truth.

Two modes:

* ``cellist eval --gt FOLDER --pred FOLDER``: label maps already predicted (same file names),
  scores printed as JSON;
* ``cellist eval --gt FOLDER --model threshold --checkpoint A.json B.json`` (or ``--project P
  --version 3 5``): each version predicts the images of the annotated folder (``images/`` +
  ``masks/``) and a table of AP50, mean AP, F1, count error and edits per 100 objects is
  printed, one line per version (``--json`` for JSON). ``--model`` alone scores the base model.

``cli.py`` wires :func:`add_eval_parser` into its sub-commands.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def cmd_eval(args: argparse.Namespace) -> int:
    """Score predictions (``--pred``) or model versions (``--model`` / ``--checkpoint`` /
    ``--version``) against the ground truth of ``--gt``."""
    from .cli import CliError

    versions = bool(args.checkpoint or args.version or args.model)
    if args.pred is not None and versions:
        raise CliError(
            "Give either --pred (label maps already predicted) or --model / --checkpoint / "
            "--version (models to predict with), not both."
        )
    if args.pred is None and not versions:
        raise CliError(
            "Nothing to score: give --pred FOLDER, or --model NAME with --checkpoint FILE... "
            "or --project P --version ID..."
        )
    if args.pred is not None:
        from . import pipeline

        scores = pipeline.evaluate_folders(
            Path(args.gt), Path(args.pred), border_margin=args.border_margin
        )
        sys.stdout.write(json.dumps(scores, indent=2) + "\n")
        return 0
    return _eval_versions(args)


def _eval_versions(args: argparse.Namespace) -> int:
    from .cli import CliError, _apply_device, _parse_assignments, _progress_bar
    from .model_eval import evaluate_models, score_table
    from .pipeline import _check_folder, samples_from_folders

    candidates = _candidates(args)
    overrides = _parse_assignments(args.param)
    for model in {c.model for c in candidates}:
        _apply_device(model, overrides, args.device)
    _check_folder(Path(args.gt), "ground-truth (--gt)")
    if not (Path(args.gt) / "images").is_dir():
        raise CliError(
            f"--gt '{args.gt}' needs an images/ folder next to masks/ to predict with the "
            "models (or give --pred with label maps already predicted)."
        )
    samples = samples_from_folders([args.gt])
    missing = [s.name for s in samples if s.labels is None]
    if missing:
        raise CliError(f"No ground-truth mask in {args.gt}/masks for {', '.join(missing)}.")
    with _progress_bar(0, "eval") as bar:

        def on_progress(progress) -> None:
            bar.total = progress.total
            bar.n = progress.step
            bar.set_postfix_str(progress.message[:60], refresh=True)

        rows = evaluate_models(samples, candidates, overrides, args.border_margin, on_progress)
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        sys.stdout.write("".join(line + "\n" for line in score_table(rows)))
    return 0


def _candidates(args: argparse.Namespace) -> list[Any]:
    """The model versions to score, in the order given: checkpoints, then store versions."""
    from .cli import CliError
    from .model_eval import Candidate, candidates_from_versions

    if args.checkpoint and not args.model:
        raise CliError("--checkpoint needs --model (the model the checkpoints belong to).")
    candidates = []
    for path in args.checkpoint or ():
        if not Path(path).is_file():
            raise CliError(f"Checkpoint '{path}' does not exist or is not a file.")
        candidates.append(Candidate(_label(path, args.checkpoint), args.model, path))
    if args.version:
        if not args.project:
            raise CliError("--version needs --project (the store the versions are in).")
        from .project_export import _check_store_exists
        from .store import ProjectStore

        _check_store_exists(args.project)
        with ProjectStore(args.project, read_only=True) as store:
            try:
                candidates += candidates_from_versions(store, args.version)
            except ValueError as err:
                raise CliError(str(err)) from None
    if not candidates:  # --model alone: its base model
        candidates.append(Candidate(args.model, args.model, None))
    return candidates


def _label(path: str, paths: list[str]) -> str:
    """The file name, or the whole path when two checkpoints share a file name."""
    name = Path(path).name
    return name if sum(Path(p).name == name for p in paths) == 1 else path


def add_eval_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``eval`` to ``cellist``'s sub-parsers."""
    from .models import available_models

    evaluate = sub.add_parser(
        "eval",
        help="Score predictions, or several model versions, against ground truth (AP50, mean "
        "AP, F1, count error, edits per 100 objects).",
        description=(
            "With --pred: score label maps already predicted (same file names as the ground "
            "truth) and print JSON. With --model and --checkpoint FILE... and/or --project P "
            "--version ID...: predict the images of the --gt images/ + masks/ folder with each "
            "version and print one table line per version (--json: JSON); --model alone "
            "scores the base model."
        ),
    )
    evaluate.add_argument(
        "--gt",
        required=True,
        help="Folder of ground-truth label maps (or an images/+masks/ folder).",
    )
    evaluate.add_argument("--pred", help="Folder of predicted label maps (same file names).")
    evaluate.add_argument("--model", choices=available_models(), help="Model to predict with.")
    evaluate.add_argument("--checkpoint", nargs="+", help="Checkpoint files of --model to compare.")
    evaluate.add_argument(
        "--project", help="Project store holding the --version ids (folder, file or URL)."
    )
    evaluate.add_argument(
        "--version", nargs="+", type=int, help="Model version ids of --project to compare."
    )
    evaluate.add_argument(
        "--param", action="append", metavar="KEY=VALUE", help="Prediction parameter (all)."
    )
    evaluate.add_argument(
        "--device",
        choices=("auto", "cuda", "mps", "cpu"),
        default=None,
        help="Where torch models (Cellpose, SAM, AIR) predict.",
    )
    evaluate.add_argument(
        "--border-margin",
        type=int,
        default=0,
        help="Ignore objects within this many pixels of the border.",
    )
    evaluate.add_argument("--json", action="store_true", help="Print the versions' scores as JSON.")
    evaluate.set_defaults(func=cmd_eval)
