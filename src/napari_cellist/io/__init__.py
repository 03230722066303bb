"""Reading images and annotations, writing label maps and exporting annotations.

Pure Python (tifffile, imageio, pycocotools, roifile); no napari, no Qt. Every write is atomic
(:func:`~napari_cellist.io.writers.atomic_open`).

- :mod:`.readers`: :func:`read_image`, :func:`read_annotated_folder`, :func:`list_images`.
- :mod:`.writers`: :func:`write_labels_tiff`, :func:`read_labels_tiff`, atomic write helpers.
- :mod:`.exporters`: COCO JSON, GeoJSON, polygon CSV, ImageJ ROI sets, count tables.
- :mod:`.overlays`: :func:`save_overlay_png`.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> sub-module. Loaded on first use, so that the napari reader entry point
#: (which needs only ``readers``) does not import scikit-image, pycocotools or roifile.
_EXPORTS = {
    "IMAGE_EXTENSIONS": "readers",
    "AnnotatedPair": "readers",
    "ImageData": "readers",
    "ImageReadError": "readers",
    "as_label_map": "readers",
    "is_annotated_folder": "readers",
    "list_images": "readers",
    "read_annotated_folder": "readers",
    "read_image": "readers",
    "read_mask": "readers",
    "atomic_open": "writers",
    "atomic_path": "writers",
    "atomic_write_bytes": "writers",
    "atomic_write_text": "writers",
    "read_labels_tiff": "writers",
    "write_labels_tiff": "writers",
    "count_row": "exporters",
    "export_coco": "exporters",
    "export_counts": "exporters",
    "export_geojson": "exporters",
    "export_imagej_rois": "exporters",
    "export_polygons_csv": "exporters",
    "save_overlay_png": "overlays",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "IMAGE_EXTENSIONS",
    "AnnotatedPair",
    "ImageData",
    "ImageReadError",
    "as_label_map",
    "atomic_open",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "count_row",
    "export_coco",
    "export_counts",
    "export_geojson",
    "export_imagej_rois",
    "export_polygons_csv",
    "is_annotated_folder",
    "list_images",
    "read_annotated_folder",
    "read_image",
    "read_labels_tiff",
    "read_mask",
    "save_overlay_png",
    "write_labels_tiff",
]
