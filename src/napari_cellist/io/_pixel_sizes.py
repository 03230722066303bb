"""Pixel sizes from TIFF metadata: OME ``PhysicalSize*``, ImageJ ``unit`` / ``spacing`` and
the ``XResolution`` / ``YResolution`` / ``ResolutionUnit`` tags, converted to µm."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET

import numpy as np

logger = logging.getLogger(__name__)

MICRON = "µm"
#: Length units seen in OME / ImageJ / TIFF metadata, in micrometres.
_UNIT_TO_UM = {
    "µm": 1.0,
    "um": 1.0,
    "micron": 1.0,
    "microns": 1.0,
    "micrometer": 1.0,
    "micrometre": 1.0,
    "nm": 1e-3,
    "nanometer": 1e-3,
    "å": 1e-4,
    "angstrom": 1e-4,
    "mm": 1e3,
    "millimeter": 1e3,
    "cm": 1e4,
    "centimeter": 1e4,
    "m": 1e6,
    "meter": 1e6,
    "inch": 25400.0,
    "in": 25400.0,
}
#: Dots-per-inch values written by image editors by default, not by microscopes.
_DISPLAY_DPI = (72.0, 96.0)


def pixel_sizes(tif) -> tuple[dict[str, float], str]:
    """Pixel sizes of the first series of an open :class:`tifffile.TiffFile`.

    Returns
    -------
    sizes : dict
        ``{"X": .., "Y": .., "Z": ..}`` for the axes the file calibrates (possibly none).
    unit : str
        ``"µm"`` when the unit is a known length, else the unit as written (``"pixel"`` when
        there is no calibration).
    """
    for reader in (_ome_sizes, _imagej_sizes, _tag_sizes):
        try:
            sizes, unit = reader(tif)
        except Exception as err:  # malformed metadata must not stop the pixels from loading
            logger.warning("Ignoring unreadable %s metadata: %s", reader.__name__[1:-6], err)
            continue
        if sizes:
            return sizes, unit
    return {}, "pixel"


def _to_microns(sizes: dict[str, float], unit: str | None) -> tuple[dict[str, float], str]:
    key = (unit or "").strip().replace("\\u00B5", "µ").replace("μ", "µ").lower()
    factor = _UNIT_TO_UM.get(key)
    sizes = {a: float(v) for a, v in sizes.items() if v and np.isfinite(v) and v > 0}
    if factor is None:
        return (
            (sizes, unit) if sizes and key not in ("", "pixel", "pixels", "none") else ({}, "pixel")
        )
    # 10 significant digits undo the float noise of 1 / (pixels per unit)
    return {a: float(f"{v * factor:.10g}") for a, v in sizes.items()}, MICRON


def _ome_sizes(tif) -> tuple[dict[str, float], str]:
    if not tif.is_ome or not tif.ome_metadata:
        return {}, "pixel"
    root = ET.fromstring(tif.ome_metadata)
    pixels = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return {}, "pixel"
    sizes: dict[str, float] = {}
    for axis in "XYZ":
        value = pixels.get(f"PhysicalSize{axis}")
        if value is not None:
            um, _ = _to_microns({axis: float(value)}, pixels.get(f"PhysicalSize{axis}Unit", MICRON))
            sizes.update(um)
    return sizes, MICRON


def _imagej_sizes(tif) -> tuple[dict[str, float], str]:
    meta = tif.imagej_metadata
    if not meta:
        return {}, "pixel"
    sizes = _resolution_sizes(tif.pages[0])
    if "spacing" in meta:
        sizes["Z"] = float(meta["spacing"])
    return _to_microns(sizes, meta.get("unit"))


def _tag_sizes(tif) -> tuple[dict[str, float], str]:
    page = tif.pages[0]
    unit = getattr(page.resolutionunit, "name", str(page.resolutionunit)).lower()
    unit = {"centimeter": "cm", "inch": "inch", "millimeter": "mm", "micrometer": "µm"}.get(unit)
    if unit is None:
        return {}, "pixel"
    if unit == "inch" and page.resolution and float(page.resolution[0]) in _DISPLAY_DPI:
        logger.debug(
            "Ignoring %s dpi resolution (an editor default, not a pixel size)", page.resolution[0]
        )
        return {}, "pixel"
    sizes = _resolution_sizes(page)
    shaped = tif.shaped_metadata[0] if tif.shaped_metadata else {}
    if sizes and "spacing" in shaped:
        sizes["Z"] = float(shaped["spacing"]) / _UNIT_TO_UM[unit]  # written in µm
    return _to_microns(sizes, unit)


def _resolution_sizes(page) -> dict[str, float]:
    res = page.resolution
    if not res or not all(r and r > 0 for r in res) or tuple(res) == (1.0, 1.0):
        return {}
    return {"X": 1.0 / float(res[0]), "Y": 1.0 / float(res[1])}
