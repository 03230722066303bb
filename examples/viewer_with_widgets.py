"""Open napari with an image and the Cellist dock widgets, optionally run the base model.

The widgets are the plugin's own (*Plugins > Cellist*), docked the way napari does it for any
plugin. With ``--run`` the Base model widget predicts the image (labels, polygons and centres
layers appear); ``--screenshot`` saves the window and ``--no-block`` exits instead of handing
control to the napari event loop (for scripts and tests, e.g. under ``xvfb-run``)::

    python examples/viewer_with_widgets.py                        # the packaged DSB2018 sample
    python examples/viewer_with_widgets.py IMAGE --run
    python examples/viewer_with_widgets.py --run --screenshot shot.png --no-block

Without an image it opens ``$CELLIST_DATA/dsb2018_stardist/images/dsb2018_img2d.tif`` when
``CELLIST_DATA`` is set, else the DSB2018 nuclei image shipped with the package.
``--project`` sets the project folder the widgets commit to (``CELLIST_PROJECT``).
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

PLUGIN = "napari-cellist"
WIDGETS = ("Base model", "Annotations", "Fine-tune", "Target model", "Segment Anything")
logger = logging.getLogger("viewer_with_widgets")


def default_image() -> Path:
    """The DSB2018 image of ``$CELLIST_DATA`` if there is one, else the packaged sample."""
    from napari_cellist._sample_data import sample_image_path

    data = os.environ.get("CELLIST_DATA")
    candidate = Path(data) / "dsb2018_stardist" / "images" / "dsb2018_img2d.tif" if data else None
    return candidate if candidate is not None and candidate.is_file() else sample_image_path()


def open_viewer(image: Path, widgets: list[str], show: bool):
    """A napari viewer with ``image`` (read by the plugin's reader) and the named dock widgets.

    Returns
    -------
    tuple
        ``(viewer, {title: widget})``.
    """
    import napari

    viewer = napari.Viewer(show=show, title="napari-cellist example")
    viewer.window.resize(1500, 1000)
    viewer.open(str(image), plugin=PLUGIN)
    docked = {}
    for title in widgets:
        _, docked[title] = viewer.window.add_plugin_dock_widget(PLUGIN, title)
    return viewer, docked


def run_base_model(viewer, base_widget, timeout_ms: int = 300_000):
    """Run the Base model widget on the first image layer and wait for its prediction."""
    base_widget.image.value = viewer.layers[0].name
    if not base_widget.run():  # the widget's Run button; False when it could not start
        raise RuntimeError("the Base model widget did not start (see the log)")
    base_widget.runner.wait(timeout_ms)
    return base_widget.last_prediction


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?", type=Path, default=None, help="Image file to open.")
    parser.add_argument("--widgets", nargs="+", default=list(WIDGETS[:3]), choices=WIDGETS)
    parser.add_argument("--run", action="store_true", help="Run the Base model widget once.")
    parser.add_argument("--project", type=Path, default=None, help="Project folder (store).")
    parser.add_argument("--screenshot", type=Path, default=None, help="Save the window as PNG.")
    parser.add_argument("--no-block", action="store_true", help="Exit instead of napari.run().")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.project is not None:
        os.environ["CELLIST_PROJECT"] = str(args.project)
    if args.run and "Base model" not in args.widgets:
        parser.error("--run needs the 'Base model' widget")
    viewer, docked = open_viewer(args.image or default_image(), args.widgets, show=True)
    if args.run:
        prediction = run_base_model(viewer, docked["Base model"])
        logger.info("base model: %d objects", prediction.count if prediction else 0)
    logger.info("layers: %s", ", ".join(layer.name for layer in viewer.layers))
    logger.info("dock widgets: %s", ", ".join(docked))
    if args.screenshot is not None:
        viewer.screenshot(str(args.screenshot), canvas_only=False)
        logger.info("screenshot: %s", args.screenshot)
    if args.no_block:
        viewer.close()
        return 0
    import napari

    napari.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
