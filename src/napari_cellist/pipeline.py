"""Headless batch work shared by the CLI, the demo and the benchmarks.

Every function drains the same progress generators the widgets run in workers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .images import prepare_grey
from .metrics import score_images
from .models.base import Segmenter, TrainableSegmenter
from .progress import drain
from .project_export import EXPORT_FORMATS, export_project  # exporting lives there
from .types import FitResult, Prediction, Sample

logger = logging.getLogger(__name__)


def predict_image(
    model: Segmenter, image: np.ndarray, prompts: np.ndarray | None = None
) -> Prediction:
    """Predict one grey image; ``prompts`` (a label map) goes to models that take prompts."""
    if prompts is not None:
        from .models import REGISTRY

        entry = REGISTRY.get(model.name)
        if entry is None or not entry.takes_prompts:
            raise ValueError(f"Model {model.name!r} does not take prompts; drop --prompts-from.")
        return drain(model.refine_iter(image, prompts))
    return drain(model.predict_iter(image))


#: Peak memory of a prediction per pixel beyond the decoded image, an upper bound: tracemalloc
#: measured 43 bytes (scipy threshold model) and 34 bytes (OpenCV threshold model) per pixel on
#: a 2048 x 2048 HeLa tile, plus 4 for the float32 grey copy. Models that tile need less.
PREDICT_BYTES_PER_PIXEL = 48
MAPPING_FILE = "mapping.csv"


def predict_files(
    model: Segmenter,
    inputs: Sequence[str | Path],
    out_dir: Path,
    *,
    channel: int | None = None,
    prompts_dir: Path | None = None,
    progress_bar: Callable[[int, str], Any] | None = None,
) -> dict[str, Any]:
    """Predict every image of ``inputs``; write ``<stem>.tif``, ``counts.csv``, ``overlays/<stem>.png``.

    Output names are the inputs' file stems made safe and unique (see
    :func:`~napari_cellist.io.naming.unique_stems`): two inputs ``a/x.tif`` and ``b/x.tif``
    write ``x.tif`` and ``x-2.tif``, never one over the other. ``mapping.csv`` lists which
    input went to which output (``input, labels, overlay, count, error``). An image whose
    declared size would not fit in memory is refused from its header before decoding. A file
    that cannot be read or segmented is reported in ``failed`` and the others go on.

    Returns
    -------
    dict
        ``{"n_images", "total_objects", "failed": [{"path", "error"}], "outputs": {input:
        label file}, "out"}``.
    """
    from .io import count_row, export_counts, list_images
    from .io.naming import unique_stems
    from .io.readers import stem

    paths = list_images(inputs)
    if not paths:
        raise ValueError(f"No images found in {', '.join(map(str, inputs))}.")
    if prompts_dir is not None:
        _check_folder(prompts_dir, "--prompts-from")
    names = unique_stems([stem(p) for p in paths])
    _check_inputs_not_overwritten(paths, names, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _report_renamed(paths, names)
    rows, failed, mapping = [], [], []
    bar = progress_bar(len(paths), "predict") if progress_bar else None
    for path, name in zip(paths, names, strict=True):
        try:
            written = _predict_one(model, path, name, out_dir, channel, prompts_dir)
        except (ValueError, OSError, MemoryError) as err:
            message = str(err) or type(err).__name__
            logger.error("%s", message if str(path) in message else f"{path}: {message}")
            failed.append({"path": str(path), "error": message})
            mapping.append({"input": str(path), "error": message})
            continue
        finally:
            if bar is not None:
                bar.update(1)
        labels_path, overlay_path, prediction = written
        rows.append(count_row(name, prediction.labels, prediction.objects))
        mapping.append(
            {
                "input": str(path),
                "labels": labels_path.name,
                "overlay": f"overlays/{overlay_path.name}",
                "count": rows[-1]["count"],
            }
        )
    if bar is not None:
        bar.close()
    if rows:
        export_counts(out_dir / "counts.csv", rows)
    _write_mapping(out_dir / MAPPING_FILE, mapping)
    return {
        "n_images": len(rows),
        "total_objects": int(sum(r["count"] for r in rows)),
        "failed": failed,
        "outputs": {m["input"]: m["labels"] for m in mapping if "labels" in m},
        "out": str(out_dir),
    }


def _predict_one(
    model: Segmenter,
    path: Path,
    name: str,
    out_dir: Path,
    channel: int | None,
    prompts_dir: Path | None,
) -> tuple[Path, Path, Prediction]:
    """Check the header, read, predict and write one image; ``(labels, overlay, prediction)``."""
    from .io import read_image, read_labels_tiff, save_overlay_png, write_labels_tiff
    from .io.naming import confined
    from .io.probe import check_memory, probe_image

    header = probe_image(path)
    pixels = int(np.prod(header.shape))
    check_memory(
        header.nbytes + pixels * PREDICT_BYTES_PER_PIXEL,
        f"'{path}' declares {header.describe()}; segmenting it",
    )
    data = read_image(path)
    image = prepare_grey(data.data, rgb=data.rgb, channel=channel, channel_axis=data.channel_axis)
    prompts = read_labels_tiff(prompts_dir / f"{data.name}.tif") if prompts_dir else None
    prediction = predict_image(model, image, prompts)
    labels_path = write_labels_tiff(confined(out_dir, f"{name}.tif"), prediction.labels)
    overlay_path = confined(confined(out_dir, "overlays"), f"{name}.png")
    save_overlay_png(overlay_path, image, prediction.labels)
    return labels_path, overlay_path, prediction


def _check_inputs_not_overwritten(
    paths: Sequence[Path], names: Sequence[str], out_dir: Path
) -> None:
    """Refuse an output folder where a label map or overlay would replace an input image."""
    inputs = {p.resolve() for p in paths}
    for name in names:
        for target in (out_dir / f"{name}.tif", out_dir / "overlays" / f"{name}.png"):
            if target.resolve() in inputs:
                raise ValueError(
                    f"--out '{out_dir}' would overwrite the input image '{target}' with a label "
                    "map; choose another output folder."
                )


def _report_renamed(paths: Sequence[Path], names: Sequence[str]) -> None:
    from .io.readers import stem

    for path, name in zip(paths, names, strict=True):
        if name != stem(path):
            logger.warning(
                "%s: another input has the same name (or it is not a safe file name); "
                "its outputs are %s.tif and overlays/%s.png (see %s).",
                path,
                name,
                name,
                MAPPING_FILE,
            )


def _write_mapping(path: Path, mapping: Sequence[dict[str, Any]]) -> None:
    import csv
    import io

    from .io import atomic_write_text

    buffer = io.StringIO()
    columns = ["input", "labels", "overlay", "count", "error"]
    writer = csv.DictWriter(buffer, columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(mapping)
    atomic_write_text(path, buffer.getvalue())


def samples_from_folders(folders: Sequence[str | Path]) -> list[Sample]:
    """Samples from ``images/`` + ``masks/`` (+ ``points/``) folders; images must be grey."""
    from .io import read_annotated_folder

    samples = []
    for folder in folders:
        for pair in read_annotated_folder(folder):
            image = prepare_grey(
                pair.image.data, rgb=pair.image.rgb, channel_axis=pair.image.channel_axis
            )
            samples.append(Sample(image, pair.mask, pair.points, name=pair.image.name))
    if not samples:
        raise ValueError(
            f"No images found in {', '.join(map(str, folders))} (expected images/ and masks/)."
        )
    return samples


def missing_masks_hint(folders: Sequence[str | Path], samples: Sequence[Sample]) -> str | None:
    """Say which folders have no masks, when no sample has one (else None).

    For the error of a training that needs masks: "commit corrections first" means nothing to
    someone who pointed ``cellist train`` at an ``images/`` folder without ``masks/``.
    """
    if any(s.labels is not None for s in samples):
        return None
    problems = []
    for folder in map(Path, folders):
        masks = folder / "masks"
        if not masks.is_dir():
            problems.append(f"'{folder}' has images/ but no masks/ folder")
        else:
            problems.append(f"no file in '{masks}' has the name of an image in images/")
    return (
        "No masks to train from: "
        + "; ".join(problems)
        + " (masks/<image file name>: label maps, 0 = background)"
    )


def train_model(
    model: TrainableSegmenter,
    samples: Sequence[Sample],
    train_params: Any,
    out: Path,
    on_progress: Callable | None = None,
) -> FitResult:
    """Fit ``model`` and save its checkpoint atomically to ``out``."""
    result = drain(model.fit_iter(samples, train_params), on_progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    return result


def evaluate_folders(gt: Path, pred: Path, border_margin: int = 0) -> dict[str, Any]:
    """Scores of the label maps in ``pred`` against those of the same name in ``gt``.

    ``gt`` may be a folder of masks or an ``images/`` + ``masks/`` folder.

    Returns
    -------
    dict
        ``{"ap50", "mean_ap", "f1", "precision", "recall", "count_error", "n_true", "n_pred",
        "edits_per_100", "n_images", "per_image": {name: {...}}}``; ``edits_per_100`` is the
        deletions, additions and redraws a person would make per 100 true objects
        (:func:`~napari_cellist.metrics.edit_counts`).
    """
    from .io import read_labels_tiff
    from .metrics import edit_counts, edit_counts_pooled, score_image

    _check_folder(gt, "ground-truth (--gt)")
    _check_folder(pred, "prediction (--pred)")
    gt_dir = gt / "masks" if (gt / "masks").is_dir() else gt
    truth_files = sorted(p for p in gt_dir.iterdir() if p.suffix.lower() in (".tif", ".tiff"))
    if not truth_files:
        raise ValueError(f"No ground-truth .tif label maps in {gt_dir}.")
    truths, preds, per_image = [], [], {}
    for truth_path in truth_files:
        pred_path = pred / truth_path.name
        if not pred_path.exists():
            raise ValueError(f"No prediction {pred_path} for ground truth {truth_path}.")
        truth, predicted = read_labels_tiff(truth_path), read_labels_tiff(pred_path)
        truths.append(truth)
        preds.append(predicted)
        per_image[truth_path.stem] = {
            **score_image(truth, predicted, border_margin).as_dict(),
            "edits_per_100": edit_counts(
                truth, predicted, border_margin=border_margin
            ).per_100_objects,
        }
    scores = score_images(truths, preds, border_margin).as_dict()
    edits = edit_counts_pooled(truths, preds, border_margin=border_margin).per_100_objects
    return {**scores, "edits_per_100": edits, "n_images": len(truths), "per_image": per_image}


def _check_folder(path: Path, what: str) -> None:
    """ValueError naming ``what`` unless ``path`` is an existing, listable folder."""
    from .io.readers import ImageReadError, check_exists

    try:
        check_exists(path)
    except ImageReadError as err:
        raise ValueError(f"The {what} folder: {err}") from None
    if not path.is_dir():
        raise ValueError(f"The {what} path '{path}' is a file; give a folder of label maps.")


__all__ = [
    "EXPORT_FORMATS",
    "evaluate_folders",
    "export_project",
    "missing_masks_hint",
    "predict_files",
    "predict_image",
    "samples_from_folders",
    "train_model",
]
