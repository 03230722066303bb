"""The ``cellist`` command: predict, train and evaluate on folders of images, headless.

Examples
--------
``cellist predict data/images --model threshold --out results``
``cellist train --model threshold --data data/u2os data/nih3t3 --out threshold.json``
``cellist eval --gt data/u2os/masks --pred results``
``cellist eval --gt data/u2os --model threshold --checkpoint a.json b.json``
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__

logger = logging.getLogger("napari_cellist.cli")


class CliError(Exception):
    """A user error: printed as one line, exit code 2."""


def _parse_assignments(items: Sequence[str] | None) -> dict[str, Any]:
    """``["key=value", ...]`` -> dict, values parsed as JSON when possible (numbers, bools)."""
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--param expects key=value, got {item!r}.")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _build_model(name: str, checkpoint: str | None, param_values: dict[str, Any]):
    """The registry's :func:`~napari_cellist.models.build_model`: the checkpoint's stored
    parameters are the base, ``--param`` values win on top."""
    from .models import build_model, check_keys, params_class
    from .models.base import params_from_mapping

    try:
        check_keys(params_class(name), param_values, "--param")
        params_from_mapping(params_class(name), param_values)  # bad values: said before loading
    except ValueError as err:
        raise CliError(str(err)) from None
    if not checkpoint:
        return build_model(name, checkpoint, param_values)
    if not Path(checkpoint).is_file():
        raise CliError(f"Checkpoint '{checkpoint}' does not exist or is not a file.")
    try:
        with (
            warnings.catch_warnings()
        ):  # torch's advice on pickle protocols: not the user's concern
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return build_model(name, checkpoint, param_values)
    except (ImportError, MemoryError):
        raise
    except Exception as err:  # noqa: BLE001 - any unreadable checkpoint: one line naming it
        from .cli_errors import one_line

        raise CliError(
            f"Cannot load the {name} checkpoint '{checkpoint}': {one_line(err)}"
        ) from err


def _apply_device(model: str, values: dict[str, Any], device: str | None) -> None:
    """Put ``--device`` into the model's parameters (models without one run on the CPU)."""
    from dataclasses import fields

    from .models import params_class

    if device is None:
        return
    if "device" in {f.name for f in fields(params_class(model))}:
        values["device"] = device
    elif device.strip().lower() not in ("auto", "cpu"):
        raise CliError(f"Model {model!r} runs on the CPU only; drop --device {device}.")


def _fetch_weights(model: Any) -> None:
    """Download the pretrained files the model needs (first use) with a progress bar on stderr;
    an optional file that fails (e.g. Cellpose's size model) is only a warning."""
    from . import downloads

    for index, name in enumerate(model.downloads_needed()):
        if downloads.find(name) is not None or downloads.is_offline():
            continue  # offline: the model's own message says which file to put where
        item = downloads.get_file(name)
        print(
            f"Downloading {item.filename} from {downloads.source_url(item)} to "
            f"{downloads.cache_folder(item.library)} (first use)",
            file=sys.stderr,
        )
        try:
            downloads.fetch(item, progressbar=True)
        except downloads.DownloadError as err:
            if index == 0:
                raise CliError(str(err)) from None
            logger.warning("%s", err)


def _progress_bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=None, file=sys.stderr)


def cmd_predict(args: argparse.Namespace) -> int:
    """Predict label maps, counts and overlays for images and folders."""
    from .pipeline import predict_files

    values = _parse_assignments(args.param)
    if args.diameter is not None:
        values["diameter"] = args.diameter
    _apply_device(args.model, values, args.device)
    model = _build_model(args.model, args.checkpoint, values)
    _fetch_weights(model)
    prompts = Path(args.prompts_from) if args.prompts_from else None
    from .batch import needs_batch, predict_batch
    from .progress import drain

    if prompts is None and needs_batch(args.images, args.scheduler, args.tile_size is not None):
        # dask: a cluster (--scheduler), OME-Zarr folders and large TIFFs tile by tile
        summary = drain(
            predict_batch(
                model,
                args.images,
                Path(args.out),
                scheduler=args.scheduler,
                channel=args.channel,
                tile_size=args.tile_size or 2048,
            )
        )
    else:
        summary = predict_files(
            model,
            args.images,
            Path(args.out),
            channel=args.channel,
            prompts_dir=prompts,
            progress_bar=_progress_bar,
        )
    logger.info("Wrote %d label maps to %s", summary["n_images"], args.out)
    print(json.dumps(summary, indent=2))
    if not summary["failed"]:
        return 0
    return 1 if summary["n_images"] else 2


def cmd_train(args: argparse.Namespace) -> int:
    """Fit / train a model on annotated folders and save a checkpoint."""
    from .models import check_keys, get_entry, train_params_class
    from .models.base import params_from_mapping
    from .pipeline import missing_masks_hint, samples_from_folders, train_model

    entry = get_entry(args.model)
    if not entry.trainable:
        raise CliError(f"Model {args.model!r} cannot be trained.")
    values = _parse_assignments(args.train_param)
    if args.steps is not None:
        if not entry.steps_field:
            raise CliError(f"--steps is not used by model {args.model!r}; use --train-param.")
        values[entry.steps_field] = args.steps
    train_type = train_params_class(args.model)
    try:
        check_keys(train_type, values, "--train-param")
    except ValueError as err:
        raise CliError(str(err)) from None
    param_values = _parse_assignments(args.param)
    _apply_device(args.model, param_values, args.device)
    model = _build_model(args.model, args.init, param_values)
    samples = samples_from_folders(args.data)
    train_params = params_from_mapping(train_type, values)
    with _progress_bar(0, f"train {args.model}") as bar:

        def on_progress(progress) -> None:
            bar.total = progress.total or None
            bar.n = progress.step
            bar.set_postfix_str(progress.message, refresh=True)

        try:
            result = train_model(model, samples, train_params, Path(args.out), on_progress)
        except ValueError as err:
            hint = missing_masks_hint(args.data, samples)
            if hint is None:
                raise
            raise CliError(f"{hint}. ({err})") from err
    summary = {
        "checkpoint": str(args.out),
        "metrics": dict(result.metrics),
        "data_used": list(result.data_used),
    }
    print(json.dumps(summary, indent=2))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export the committed annotations of a project store."""
    from .pipeline import export_project

    summary = export_project(args.project, args.format, Path(args.out))
    print(json.dumps(summary, indent=2))
    return 1 if summary["skipped"] else 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Open napari with the plugin and the sample and run the labelling loop."""
    import os

    headless = args.headless or not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    from ._widgets.demo import main as demo_main

    summary = demo_main(Path(args.out), headless=headless)
    print(json.dumps(summary, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``cellist``."""
    from .models import available_models

    parser = argparse.ArgumentParser(prog="cellist", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"napari-cellist {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="Log details.")
    sub = parser.add_subparsers(dest="command", required=True)

    predict = sub.add_parser(
        "predict",
        help="Segment images; write label maps, counts.csv and overlays/.",
        description=(
            "Segment images; write OUT/NAME.tif, OUT/overlays/NAME.png, counts.csv and "
            "mapping.csv (which input went to which output). Inputs with the same file name "
            "get NAME.tif, NAME-2.tif, ... in the order given. Images whose declared size "
            "would not fit in memory are refused from their header. Exit code 1 when some "
            "inputs failed (each named on stderr), 2 when none could be segmented."
        ),
    )
    predict.add_argument(
        "images", nargs="+", help="Image files or folders (an images/+masks/ folder uses images/)."
    )
    predict.add_argument("--model", default="threshold", choices=available_models())
    predict.add_argument("--checkpoint", help="Model checkpoint / weights file.")
    predict.add_argument(
        "--diameter", type=float, help="Object diameter in pixels (default: estimated)."
    )
    predict.add_argument(
        "--channel", type=int, help="Channel to segment in RGB / multi-channel images."
    )
    predict.add_argument(
        "--param", action="append", metavar="KEY=VALUE", help="Any model parameter (repeatable)."
    )
    predict.add_argument(
        "--prompts-from", help="Folder of label maps whose boxes prompt the model (SAM refinement)."
    )
    predict.add_argument("--out", required=True, help="Output folder.")
    predict.add_argument(
        "--scheduler",
        help="dask.distributed scheduler address (tcp://host:8786): run the images (and the tiles "
        "of large ones) on that cluster; default: local threads.",
    )
    predict.add_argument(
        "--tile-size",
        type=int,
        help="Predict OME-Zarr folders, pyramidal TIFFs and (with this option) TIFFs too large "
        "for memory tile by tile into NAME.zarr, with tiles of this side in pixels (default 2048).",
    )
    predict.add_argument(
        "--device",
        choices=("auto", "cuda", "mps", "cpu"),
        default=None,
        help="Where torch models (Cellpose, SAM, AIR) run: auto = cuda, else mps, else cpu (default: the model's setting, auto).",
    )
    predict.set_defaults(func=cmd_predict)

    train = sub.add_parser("train", help="Fit a model to annotated images/ + masks/ folders.")
    train.add_argument("--model", default="threshold", choices=available_models())
    train.add_argument(
        "--data", nargs="+", required=True, help="Folders with images/ and masks/ (and/or points/)."
    )
    train.add_argument("--out", required=True, help="Checkpoint file to write.")
    train.add_argument("--steps", type=int, help="Training steps / epochs / candidates.")
    train.add_argument("--init", help="Start from this checkpoint (fine-tuning).")
    train.add_argument(
        "--param", action="append", metavar="KEY=VALUE", help="Prediction parameter."
    )
    train.add_argument(
        "--train-param", action="append", metavar="KEY=VALUE", help="Training parameter."
    )
    train.add_argument(
        "--device",
        choices=("auto", "cuda", "mps", "cpu"),
        default=None,
        help="Where torch models (Cellpose, SAM, AIR) run: auto = cuda, else mps, else cpu (default: the model's setting, auto).",
    )
    train.set_defaults(func=cmd_train)

    from .cli_eval import add_eval_parser

    add_eval_parser(sub)

    from .pipeline import EXPORT_FORMATS

    export = sub.add_parser(
        "export",
        help="Export committed annotations: label TIFFs, COCO, GeoJSON, polygon CSV, ImageJ ROIs, counts.",
        description=(
            "Export the committed annotations of a project store (only read, never created). "
            "File names come from image names made safe and unique: nothing is written outside "
            "--out, and two images with the same name become NAME.tif and NAME-2.tif. COCO, "
            "GeoJSON, polygon CSV and ImageJ ROIs are 2D formats: 3D images are left out of "
            "them (each is named on stderr and under 'skipped' in the JSON summary; they still "
            "get label TIFFs and counts) and the exit code is then 1."
        ),
    )
    export.add_argument(
        "--project", required=True, help="Project folder, SQLite file or database URL."
    )
    export.add_argument(
        "--format",
        nargs="+",
        default=["tiff", "coco", "counts"],
        choices=EXPORT_FORMATS,
        help="One or more formats.",
    )
    export.add_argument("--out", required=True, help="Output folder.")
    export.set_defaults(func=cmd_export)

    demo = sub.add_parser(
        "demo",
        help="napari with the plugin and the nuclei sample; headless: run the whole loop and save outputs + screenshots.",
    )
    demo.add_argument(
        "--out", default="cellist-demo", help="Output folder (project store, results, screenshots)."
    )
    demo.add_argument(
        "--headless",
        action="store_true",
        help="Do not keep a window open: run the loop and save (also when there is no display).",
    )
    demo.set_defaults(func=cmd_demo)

    from .project_cli import add_project_parser

    add_project_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cellist`` command; returns the exit code.

    Exit codes: 0 done; 1 done in part (some inputs failed or were skipped: each is named on
    stderr and in the JSON summary); 2 nothing done (the error is one line on stderr; a
    traceback only with ``--verbose`` and only for unexpected errors); 130 interrupted.
    """
    from .cli_errors import command_output, describe_error, one_line

    parser = build_parser()
    args = parser.parse_args(argv)
    with command_output(args.command, args.verbose):
        try:
            return args.func(args)
        except KeyboardInterrupt:
            print(f"cellist {args.command}: interrupted", file=sys.stderr)
            return 130
        except Exception as err:  # noqa: BLE001 - the command's boundary: one line, no traceback
            if args.verbose:
                logger.info("details of the error reported below", exc_info=err)
            message = one_line(err) if isinstance(err, CliError) else describe_error(err)
            print(f"cellist {args.command}: error: {message}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
