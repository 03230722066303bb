"""The main job: napari with the Cellist widgets, the nuclei sample and the whole labelling loop.

With a display the viewer stays open after the base model has run. Headless (``--headless``)
the same loop runs to the end, on the same widgets: predict -> correct -> commit -> fit ->
predict again, and writes the outputs and screenshots.

The corrections of the headless run come from the sample's ground truth (a simulated
annotator), so the loop is reproducible without a person at the mouse.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..io import count_row, export_coco, export_counts, save_overlay_png, write_labels_tiff
from ..metrics import score_image
from ..session import LabellingSession
from ._session import set_session

logger = logging.getLogger(__name__)
PLUGIN = "napari-cellist"


def open_viewer(project: Path, show: bool) -> tuple[Any, dict[str, Any]]:
    """A viewer with the sample (and its truth) and the three docked Cellist widgets."""
    import napari

    viewer = napari.Viewer(show=show, title="napari-cellist")
    viewer.window.resize(1500, 1000)
    set_session(viewer, LabellingSession(project))
    viewer.open_sample(PLUGIN, "nuclei_with_truth")
    widgets = {}
    for title in ("Base model", "Annotations", "Fine-tune"):
        # tabbed: each widget gets the dock's full height, the tab bar switches between them
        _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, title, tabify=True)
        widgets[title] = widget
    truth = viewer.layers["nuclei ground truth"]
    truth.visible = False
    return viewer, widgets


def show_tab(widget: Any) -> None:
    """Bring a tabbed dock widget to the front."""
    from qtpy.QtWidgets import QDockWidget, QTabBar

    dock = widget.native
    while dock is not None and not isinstance(dock, QDockWidget):
        dock = dock.parentWidget()
    if dock is None:
        return
    _settle()  # Qt builds the tab bar of tabified docks lazily
    dock.raise_()
    for bar in dock.parentWidget().findChildren(QTabBar):  # Qt's tab bar of tabified docks
        for index in range(bar.count()):
            if bar.tabText(index) == dock.windowTitle():
                bar.setCurrentIndex(index)


def run_base_model(widgets: dict[str, Any]) -> Any:
    """Press Run in the Base model widget and wait for the prediction."""
    base = widgets["Base model"]
    base.image.value = "nuclei"
    base.confirm = lambda _question: True  # the loop replaces its own committed labels
    base.run()
    base.runner.wait()
    return base.last_prediction


def simulate_corrections(viewer: Any, truth: np.ndarray) -> None:
    """Replace the predicted labels by the ground truth, as an annotator's corrections would."""
    viewer.layers["nuclei labels"].data = truth.astype(np.int32)


def main(out: Path, headless: bool) -> dict[str, Any]:
    """Run the demo; returns a summary (also written to ``out/summary.json``)."""
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("CELLIST_SYNC", "1" if headless else "0")
    # shown headless too (on the virtual display of scripts/demo.sh, or Qt's offscreen platform):
    # the docks are laid out only in a shown window, and the screenshots show what a user sees
    viewer, widgets = open_viewer(out / "project", show=True)
    image = np.asarray(viewer.layers["nuclei"].data)
    truth = np.asarray(viewer.layers["nuclei ground truth"].data)
    first = run_base_model(widgets)
    summary: dict[str, Any] = {"first_prediction": _scores(truth, first.labels)}
    show_tab(widgets["Base model"])
    _settle()
    viewer.screenshot(str(out / "screenshot.png"), canvas_only=False)
    if not headless:
        import napari

        napari.run()
        return summary
    simulate_corrections(viewer, truth)
    commit = widgets["Annotations"].commit(wait=True)
    summary["commit"] = {"objects": commit.n_objects, "corrections": commit.corrections.summary()}
    finetune = widgets["Fine-tune"]
    finetune.params_form.controls["max_candidates"].value = 16
    finetune.train()
    finetune.runner.wait(600_000)
    second = run_base_model(widgets)
    summary["fitted_prediction"] = _scores(truth, second.labels)
    summary["model_version"] = second.model_version
    show_tab(finetune)
    _settle()
    viewer.screenshot(str(out / "screenshot_after_fit.png"), canvas_only=False)
    _write_outputs(out, image, second)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    viewer.close()
    return summary


def _settle() -> None:
    """Let Qt lay out and paint what changed (before a screenshot)."""
    from qtpy.QtCore import QCoreApplication

    for _ in range(10):
        QCoreApplication.processEvents()


def _scores(truth: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    scores = score_image(truth, labels)
    return {
        "objects": scores.n_pred,
        "ap50": round(scores.ap50, 3),
        "mean_ap": round(scores.mean_ap, 3),
    }


def _write_outputs(out: Path, image: np.ndarray, prediction: Any) -> None:
    write_labels_tiff(out / "nuclei_labels.tif", prediction.labels)
    save_overlay_png(out / "nuclei_overlay.png", image, prediction.labels)
    export_counts(out / "counts.csv", [count_row("nuclei", prediction.labels, prediction.objects)])
    export_coco(out / "nuclei_coco.json", [("nuclei", prediction.labels, prediction.objects)])


WIDGET_IMAGES = {
    "Base model": "widget_base_model.png",
    "Annotations": "widget_annotations.png",
    "Fine-tune": "widget_finetune.png",
    "Target model": "widget_target_model.png",
    "Segment Anything": "widget_sam.png",
}


def widget_screenshots(out: Path, project: Path) -> list[Path]:
    """Screenshots of each dock widget docked alone at napari's default width, after the
    loop's first steps (a run, corrections committed): Fine-tune after a short fit, Target model's forms, Segment Anything without weights (it says what it needs).

    Needs a display (``xvfb-run`` headless). Returns the files written under ``out``.
    """
    os.environ.setdefault("CELLIST_SYNC", "1")
    out.mkdir(parents=True, exist_ok=True)
    viewer, widgets = open_viewer(project, show=True)
    run_base_model(widgets)
    simulate_corrections(viewer, np.asarray(viewer.layers["nuclei ground truth"].data))
    widgets["Annotations"].commit(wait=True)
    viewer.window.remove_dock_widget("all")
    written = []
    for title, name in WIDGET_IMAGES.items():
        _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, title)
        if title == "Base model":
            widget.image.value = "nuclei"
            widget.confirm = lambda _question: True
            widget.run()
        elif title == "Annotations":
            widget.image.value = "nuclei"
            widget.sync()
        elif title == "Fine-tune":
            widget.params_form.controls["max_candidates"].value = 8
            widget.train()
            widget.runner.wait(600_000)
        _settle()
        path = out / name
        widget.native.parentWidget().grab().save(str(path))  # the dock, with its title bar
        written.append(path)
        viewer.window.remove_dock_widget(widget.native)
    viewer.close()
    return written
