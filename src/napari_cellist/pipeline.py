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

    A file that cannot be read or segmented is reported in ``failed`` and the others go on.

    Returns
    -------
    dict
        ``{"n_images", "total_objects", "failed": [{"path", "error"}], "out"}``.
    """
    from .io import (
        count_row,
        export_counts,
        list_images,
        read_image,
        read_labels_tiff,
        save_overlay_png,
        write_labels_tiff,
    )

    paths = list_images(inputs)
    if not paths:
        raise ValueError(f"No images found in {', '.join(map(str, inputs))}.")
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, failed = [], []
    bar = progress_bar(len(paths), "predict") if progress_bar else None
    for path in paths:
        try:
            data = read_image(path)
            image = prepare_grey(
                data.data, rgb=data.rgb, channel=channel, channel_axis=data.channel_axis
            )
            prompts = read_labels_tiff(prompts_dir / f"{data.name}.tif") if prompts_dir else None
            prediction = predict_image(model, image, prompts)
        except (ValueError, OSError) as err:
            logger.error("%s: %s", path, err)
            failed.append({"path": str(path), "error": str(err)})
            continue
        finally:
            if bar is not None:
                bar.update(1)
        write_labels_tiff(out_dir / f"{data.name}.tif", prediction.labels)
        save_overlay_png(out_dir / "overlays" / f"{data.name}.png", image, prediction.labels)
        rows.append(count_row(data.name, prediction.labels, prediction.objects))
    if bar is not None:
        bar.close()
    if rows:
        export_counts(out_dir / "counts.csv", rows)
    return {
        "n_images": len(rows),
        "total_objects": int(sum(r["count"] for r in rows)),
        "failed": failed,
        "out": str(out_dir),
    }


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
        "n_images", "per_image": {name: {...}}}``.
    """
    from .io import read_labels_tiff
    from .metrics import score_image

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
        per_image[truth_path.stem] = score_image(truth, predicted, border_margin).as_dict()
    scores = score_images(truths, preds, border_margin).as_dict()
    return {**scores, "n_images": len(truths), "per_image": per_image}


EXPORT_FORMATS = ("tiff", "coco", "coco-rle", "geojson", "csv", "rois", "counts")


def export_project(project: str | Path, formats: Sequence[str], out_dir: Path) -> dict[str, Any]:
    """Export every committed annotation of a project store.

    Parameters
    ----------
    project : str or Path
        Project folder, SQLite file or database URL.
    formats : sequence of str
        Any of :data:`EXPORT_FORMATS`: label TIFFs, COCO JSON (polygons or RLE), GeoJSON and
        polygon CSV per image, ImageJ ROI zip per image, and one counts CSV.
    out_dir : Path
        Output folder.

    Returns
    -------
    dict
        ``{"n_images", "files": [...]}``.
    """
    from .io import (
        count_row,
        export_coco,
        export_counts,
        export_geojson,
        export_imagej_rois,
        export_polygons_csv,
        write_labels_tiff,
    )
    from .store import ProjectStore

    unknown = sorted(set(formats) - set(EXPORT_FORMATS))
    if unknown:
        raise ValueError(f"Unknown export format {', '.join(unknown)}; choose from {', '.join(EXPORT_FORMATS)}.")
    with ProjectStore(project) as store:
        items = []
        for record in store.images():
            found = store.load_annotations(record.id)
            if found is not None:
                items.append((record.name, *found))
    if not items:
        raise ValueError(f"Nothing committed in {project}: commit annotations before exporting.")
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    per_image = {
        "tiff": lambda name, labels, objects: write_labels_tiff(out_dir / f"{name}.tif", labels),
        "geojson": lambda name, labels, objects: export_geojson(out_dir / f"{name}.geojson", labels, objects),
        "csv": lambda name, labels, objects: export_polygons_csv(out_dir / f"{name}_polygons.csv", labels, objects),
        "rois": lambda name, labels, objects: export_imagej_rois(out_dir / f"{name}_rois.zip", labels),
    }
    for fmt in formats:
        if fmt in per_image:
            files += [per_image[fmt](name, labels, objects) for name, labels, objects in items if labels.any() or fmt == "tiff"]
        elif fmt in ("coco", "coco-rle"):
            files.append(export_coco(out_dir / f"annotations_{fmt}.json", items, use_rle=fmt == "coco-rle"))
        else:
            files.append(export_counts(out_dir / "counts.csv", [count_row(n, lab, obj) for n, lab, obj in items]))
    return {"n_images": len(items), "files": [str(f) for f in files]}
