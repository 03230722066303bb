"""Add a model of one's own to the registry, with a parameter form built from its dataclass.

A model is a :class:`~napari_cellist.models.Segmenter` subclass with a frozen ``Params``
dataclass. Each field's ``metadata`` describes it for the user interfaces: ``help`` (tooltip and
``--param`` help), ``choices``, ``min``/``max`` and ``advanced`` (folded under "Advanced").
Registering a :class:`~napari_cellist.models.ModelEntry` makes the model appear wherever the
registry is read: ``build_model``, the Base model widget's model list and its parameter form::

    python examples/register_custom_model.py                   # predict the packaged sample
    python examples/register_custom_model.py IMAGE --param sigma=3 --out labels.tif
    python examples/register_custom_model.py --form            # also build the widget form

``--form`` builds the magicgui form the widgets show (needs the ``napari`` extra; without a
display Qt's offscreen platform is used) and lists its controls.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_li, threshold_otsu
from skimage.measure import regionprops

from napari_cellist._sample_data import sample_image_path
from napari_cellist.images import prepare_grey
from napari_cellist.io import read_image, write_labels_tiff
from napari_cellist.models import ModelEntry, Segmenter, available_models, build_model, register
from napari_cellist.types import ObjectMeta, Prediction, Progress

logger = logging.getLogger("register_custom_model")
THRESHOLDS = {"otsu": threshold_otsu, "li": threshold_li, "mean": np.mean}


@dataclass(frozen=True)
class BlobParams:
    """Prediction parameters of :class:`BlobModel` (the metadata builds the form)."""

    sigma: float = field(
        default=2.0,
        metadata={
            "help": "Gaussian smoothing before thresholding, in pixels.",
            "min": 0.0,
            "max": 20.0,
        },
    )
    method: str = field(
        default="otsu",
        metadata={"help": "How the foreground level is chosen.", "choices": tuple(THRESHOLDS)},
    )
    min_area: int = field(
        default=20,
        metadata={
            "help": "Objects smaller than this (pixels) are dropped.",
            "min": 0,
            "advanced": True,
        },
    )


class BlobModel(Segmenter):
    """Smooth, threshold, and label the connected foreground regions (one object each)."""

    name = "blobs"
    Params = BlobParams

    def predict_iter(
        self, image: np.ndarray, params: BlobParams | None = None
    ) -> Generator[Progress, None, Prediction]:
        """Label the bright regions of a grey ``(Y, X)`` or ``(Z, Y, X)`` image.

        Yields two :class:`Progress` reports and returns a :class:`Prediction` whose objects
        carry their bounding boxes.
        """
        p = params or self.params
        smooth = ndi.gaussian_filter(np.asarray(image, np.float32), p.sigma)
        yield Progress(1, 2, "smoothed")
        labels, _ = ndi.label(smooth > THRESHOLDS[p.method](smooth))
        small = np.bincount(labels.ravel()) < p.min_area
        small[0] = False
        labels[small[labels]] = 0  # ids stay as labelled (not consecutive), as the format allows
        labels = labels.astype(np.int32)
        yield Progress(2, 2, "labelled")
        objects = {
            r.label: ObjectMeta(r.label, box=tuple(int(v) for v in r.bbox), source=self.name)
            for r in regionprops(labels)
        }
        return Prediction(labels, objects, source=self.name)


def register_blobs() -> None:
    """Put :class:`BlobModel` in the registry as a base model named ``"blobs"``."""
    register(
        ModelEntry(
            name="blobs",
            target=f"{__name__}:BlobModel",  # "module:Class", imported when the model is built
            kind="base",
            description="Smoothed threshold + connected components (example model).",
            params=f"{__name__}:BlobParams",
        )
    )


def describe_form() -> list[dict]:
    """Build the widgets' form for the registered params class; one row per control."""
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from napari_cellist._widgets._params import ParamsForm
    from napari_cellist.models import params_class

    form = ParamsForm(params_class("blobs"))
    advanced = {w.name for w in form.advanced}
    return [
        {
            "name": name,
            "control": type(control).__name__,
            "value": control.value,
            "tooltip": control.tooltip,
            "advanced": name in advanced,
        }
        for name, control in form.controls.items()
    ]


def _assignment(text: str) -> tuple[str, object]:
    """``"sigma=3"`` -> ``("sigma", 3)``: JSON values where they parse, else the text."""
    key, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"--param takes KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?", type=Path, default=None, help="Image file.")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=None, help="Write the label map here.")
    parser.add_argument("--form", action="store_true", help="Build and list the widget form.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    register_blobs()
    logger.info("registered models: %s", ", ".join(available_models()))
    model = build_model("blobs", overrides=dict(_assignment(p) for p in args.param))
    data = read_image(args.image or sample_image_path())
    prediction = model.predict(
        prepare_grey(data.data, rgb=data.rgb, channel_axis=data.channel_axis)
    )
    logger.info("%s: %d objects with %s", data.name, prediction.count, model.params)
    if args.out:
        write_labels_tiff(args.out, prediction.labels)
    if args.form:
        for row in describe_form():
            logger.info("form control %s", json.dumps(row, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
