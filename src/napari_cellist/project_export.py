"""Exporting a project's committed annotations (``cellist export``): label TIFFs, COCO, GeoJSON,
polygon CSV, ImageJ ROIs and a counts table, reading the store without changing it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

EXPORT_FORMATS = ("tiff", "coco", "coco-rle", "geojson", "csv", "rois", "counts")


def export_project(project: str | Path, formats: Sequence[str], out_dir: Path) -> dict[str, Any]:
    """Export every committed annotation of a project store.

    File names come from image names made safe and unique (see
    :mod:`~napari_cellist.io.naming`): nothing is written outside ``out_dir`` whatever an image
    is called (``../x``, ``/abs/x``, ``CON``, ...), and two images with the same name get
    ``name.tif`` and ``name-2.tif``. COCO, GeoJSON, polygon CSV and ImageJ ROIs are 2D formats:
    3D images are left out of them (they still get label TIFFs and counts) and listed in
    ``skipped``. The store is only read: a folder without a store is an error, not a new store.

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
        ``{"n_images", "files": [...], "skipped": [{"image", "format", "reason"}]}``.
    """
    from .io.naming import unique_stems

    unknown = sorted(set(formats) - set(EXPORT_FORMATS))
    if unknown:
        raise ValueError(
            f"Unknown export format {', '.join(unknown)}; choose from {', '.join(EXPORT_FORMATS)}."
        )
    items = _committed_items(project)
    if not items:
        raise ValueError(f"Nothing committed in {project}: commit annotations before exporting.")
    stems = unique_stems([name for name, _, _ in items])
    for (name, _, _), stem in zip(items, stems, strict=True):
        if stem != name:
            logger.warning(
                "Image %r is exported as %r (unsafe or duplicate file name).", name, stem
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    skipped: list[dict[str, str]] = []
    for fmt in formats:
        files += _export_format(fmt, items, stems, out_dir, skipped)
    if skipped:
        images = sorted({s["image"] for s in skipped})
        logger.warning(
            "Skipped %d 3D image(s) in %s (2D formats; they have label TIFFs and counts): %s.",
            len(images),
            ", ".join(dict.fromkeys(s["format"] for s in skipped)),
            ", ".join(images),
        )
    return {"n_images": len(items), "files": [str(f) for f in files], "skipped": skipped}


#: Export formats that hold 2D outlines only.
FLAT_FORMATS = ("coco", "coco-rle", "geojson", "csv", "rois")


def _committed_items(project: str | Path) -> list[tuple[str, np.ndarray, Any]]:
    """``(name, labels, objects)`` of every image with committed annotations, store read only."""
    from .store import ProjectStore

    _check_store_exists(project)
    with ProjectStore(project, read_only=True) as store:
        items = []
        for record in store.images():
            found = store.load_annotations(record.id)
            if found is not None:
                items.append((record.name, *found))
    return items


def _check_store_exists(project: str | Path) -> None:
    """Refuse a path that holds no store (opening it would create an empty one)."""
    from .io.readers import check_exists
    from .store.connection import resolve_location

    if isinstance(project, str) and "://" in project:
        return
    check_exists(Path(project))
    _, path = resolve_location(project)
    if path is not None and not path.is_file():
        raise ValueError(
            f"No project store in '{project}' (no {path.name} there): give the project folder, "
            "its .sqlite file or its database URL."
        )


def _is_flat(labels: np.ndarray) -> bool:
    return sum(n > 1 for n in labels.shape) <= 2 and labels.ndim >= 2


def _export_format(
    fmt: str,
    items: Sequence[tuple[str, np.ndarray, Any]],
    stems: Sequence[str],
    out_dir: Path,
    skipped: list[dict[str, str]],
) -> list[Path]:
    """Write one format; 3D images are appended to ``skipped`` for 2D-only formats."""
    from .io import (
        count_row,
        export_coco,
        export_counts,
        export_geojson,
        export_imagej_rois,
        export_polygons_csv,
        write_labels_tiff,
    )
    from .io.naming import confined

    if fmt == "counts":
        rows = [count_row(stem, lab, obj) for stem, (_, lab, obj) in zip(stems, items, strict=True)]
        return [export_counts(confined(out_dir, "counts.csv"), rows)]
    kept = []
    for stem, (name, labels, objects) in zip(stems, items, strict=True):
        if fmt in FLAT_FORMATS and not _is_flat(labels):
            reason = f"{fmt} holds 2D outlines; the image is 3D {labels.shape}"
            skipped.append({"image": name, "format": fmt, "reason": reason})
        else:
            kept.append((stem, name, labels, objects))
    if fmt in ("coco", "coco-rle"):
        if not kept:
            return []
        coco_items = [(name, labels, objects) for _, name, labels, objects in kept]
        target = confined(out_dir, f"annotations_{fmt}.json")
        return [export_coco(target, coco_items, use_rle=fmt == "coco-rle")]
    writers = {
        "tiff": (".tif", lambda path, labels, objects: write_labels_tiff(path, labels)),
        "geojson": (".geojson", export_geojson),
        "csv": ("_polygons.csv", export_polygons_csv),
        "rois": ("_rois.zip", lambda path, labels, objects: export_imagej_rois(path, labels)),
    }
    suffix, write = writers[fmt]
    return [
        write(confined(out_dir, f"{stem}{suffix}"), labels, objects)
        for stem, _, labels, objects in kept
        if labels.any() or fmt == "tiff"
    ]
