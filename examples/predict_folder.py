"""Predict a folder of images with a model from the registry and write one label map per image.

This is the library use of napari-cellist without napari: build a model by its registry name
(optionally from a checkpoint, with parameter overrides), predict each image and write
``OUT/<stem>.tif`` (TIFF label maps: 0 = background, 1..N = objects) plus ``OUT/counts.csv``::

    python examples/predict_folder.py                       # the packaged DSB2018 sample
    python examples/predict_folder.py IMAGES_DIR --model threshold --param diameter=24 --out OUT
    python examples/predict_folder.py IMAGES_DIR --model air --checkpoint air.pt --out OUT

Without inputs it predicts ``$CELLIST_DATA/dsb2018_stardist/images`` when ``CELLIST_DATA`` is
set, else the DSB2018 nuclei image shipped with the package.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
from pathlib import Path

from napari_cellist._sample_data import sample_image_path
from napari_cellist.images import prepare_grey
from napari_cellist.io import list_images, read_image, write_labels_tiff
from napari_cellist.models import available_models, build_model

logger = logging.getLogger("predict_folder")


def default_inputs() -> list[Path]:
    """``$CELLIST_DATA/dsb2018_stardist/images`` if that exists, else the packaged sample."""
    data = os.environ.get("CELLIST_DATA")
    if data and (Path(data) / "dsb2018_stardist" / "images").is_dir():
        return [Path(data) / "dsb2018_stardist" / "images"]
    return [sample_image_path()]


def parse_overrides(pairs: list[str]) -> dict[str, object]:
    """``["diameter=24", "invert=false"]`` -> ``{"diameter": 24, "invert": False}``.

    Values are read as JSON when they are (numbers, ``true``/``false``, ``null``), else kept as
    text, as ``cellist predict --param`` does.

    Raises
    ------
    ValueError
        If an item has no ``=``.
    """
    overrides: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param takes KEY=VALUE, got {pair!r}")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    return overrides


def predict_folder(
    inputs: list[Path], model_name: str, checkpoint: Path | None, overrides: dict, out: Path
) -> list[dict]:
    """Predict every image of ``inputs`` (files or folders) and write the label maps to ``out``.

    Returns
    -------
    list of dict
        One ``{"image", "objects", "labels"}`` row per image, in the order predicted.
    """
    model = build_model(model_name, checkpoint, overrides)
    logger.info("model %s, parameters %s", model_name, model.params)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for path in list_images(inputs):
        data = read_image(path)
        image = prepare_grey(
            data.data, rgb=data.rgb, channel_axis=data.channel_axis
        )  # (Y, X) or (Z, Y, X)
        prediction = model.predict(image)
        labels_path = write_labels_tiff(out / f"{data.name}.tif", prediction.labels)
        rows.append({"image": data.name, "objects": prediction.count, "labels": str(labels_path)})
        logger.info("%s: %d objects -> %s", data.name, prediction.count, labels_path)
    with open(out / "counts.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image", "objects", "labels"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="*", type=Path, help="Image files or folders.")
    parser.add_argument("--model", default="threshold", choices=available_models())
    parser.add_argument("--checkpoint", type=Path, default=None, help="Checkpoint / weights file.")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=Path("cellist-predictions"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = predict_folder(
        args.inputs or default_inputs(),
        args.model,
        args.checkpoint,
        parse_overrides(args.param),
        args.out,
    )
    logger.info(
        "%d images, %d objects, written to %s", len(rows), sum(r["objects"] for r in rows), args.out
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
