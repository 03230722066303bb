"""*Project* dock widget: work through the images of a project, one after the other.

A thin widget over :class:`~napari_cellist.project_queue.ProjectQueue`,
:class:`~napari_cellist.drafts.DraftWriter` and :mod:`napari_cellist.live_sync` (through
:class:`~napari_cellist._widgets._live.LiveLink`):

* **Add files... / Add folder...** add images (an ``images/`` + ``masks/`` folder's masks are
  committed); the table lists every image (name, status, objects, model, corrections, last
  change); click a header to sort, double-click a row to open it.
* **Next / Previous** (keys ``Alt-N`` / ``Alt-P``; ``Alt-C`` commits) open the neighbour in the
  table's order and close the previous image's layers. Opening shows the image's draft, else its
  committed annotations, else its prediction; an image with none is predicted in the background
  with the chosen model, and the next image without annotations is predicted ahead (prefetch)
  so that Next shows a prediction at once.
* Every edit (painting, polygons, centres) keeps the layers consistent live and is written to
  the store as a draft in the background; **Commit** turns the draft into the image's committed
  annotations in a worker.
* Review: objects under the score threshold listed (double-click: jump to the object) and the
  counts per class.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Generator
from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, PushButton
from qtpy.QtWidgets import QTableWidgetItem

from ..drafts import DraftWriter
from ..layers import ROLES, labels_to_layer_tuples, layer_name, set_layers
from ..project_queue import OpenedImage, ProjectQueue
from ..store import DraftSnapshot
from ..types import DEFAULT_CLASS, Progress
from ._common import DockWidget
from ._live import LiveLink
from ._runner import JobRunner, StatusLine, notify_error, notify_info

logger = logging.getLogger(__name__)

#: Table columns: (title, attribute of ImageStatus).
COLUMNS = (
    ("#", "order"),
    ("name", "name"),
    ("status", "status"),
    ("objects", "n_objects"),
    ("model", "model_name"),
    ("corrections", "n_corrections"),
    ("last change", "last_change"),
)
#: Keyboard shortcuts bound on the viewer: key -> panel method.
SHORTCUTS = {"Alt-N": "next_image", "Alt-P": "previous_image", "Alt-C": "commit"}
#: Seconds between two draft writes.
DRAFT_INTERVAL_S = 1.0


class ProjectPanel(DockWidget):
    """The Project panel: the image table, navigation, pre-labelling, drafts and commit.

    Public actions (what the buttons and keys call): :meth:`add_paths`, :meth:`open`,
    :meth:`next_image`, :meth:`previous_image`, :meth:`commit`, :meth:`jump_to`.
    """

    def __init__(self, napari_viewer: Any, draft_interval_s: float = DRAFT_INTERVAL_S) -> None:
        super().__init__(napari_viewer, labels=False)
        from ..models import available_models

        self.draft_interval_s = draft_interval_s
        self._drafts: DraftWriter | None = None
        self._drafts_store: Any = None
        self.add_files_button = PushButton(text="Add files...", tooltip="Add image files.")
        self.add_folder_button = PushButton(
            text="Add folder...",
            tooltip="Add a folder of images; an images/ + masks/ folder's masks are committed.",
        )
        models = available_models()
        self.model = ComboBox(
            label="model",
            choices=models,
            value="threshold" if "threshold" in models else models[0],
            tooltip="Pre-labels images without annotations (its latest fitted version if any).",
        )
        self.refine = ComboBox(
            label="refine with",
            choices=["none", *models],
            value="none",
            tooltip="Base -> target: each predicted object refined by this model (AIR, SAM).",
        )
        self.prefetch = CheckBox(
            text="predict the next image ahead",
            value=True,
            tooltip="While you edit, the next image without annotations is predicted, so that "
            "Next shows its prediction at once.",
        )
        self.previous_button = PushButton(text="Previous (Alt-P)")
        self.next_button = PushButton(text="Next (Alt-N)")
        self.commit_button = PushButton(
            text="Commit (Alt-C)", tooltip="Store the shown annotations as the image's labels."
        )
        self.min_score = FloatSpinBox(
            label="unsure below",
            value=0.5,
            min=0.0,
            max=1.0,
            step=0.05,
            tooltip="Objects with a lower score are listed for review.",
        )
        self.classes = Label(value="")
        self.message = StatusLine()
        self.runner = JobRunner()
        self.prefetcher = JobRunner()
        self.prefetcher.visible = False
        self._build_qt()
        self.extend(
            [
                Container(
                    widgets=[self.add_files_button, self.add_folder_button],
                    layout="horizontal",
                    labels=False,
                ),
                Container(widgets=[self.model, self.refine], labels=True),
                self.prefetch,
                self._table_box,
                Container(
                    widgets=[self.previous_button, self.next_button, self.commit_button],
                    layout="horizontal",
                    labels=False,
                ),
                Container(widgets=[self.min_score], labels=True),
                self._review_box,
                self.classes,
                self.message,
                self.runner,
                self.prefetcher,
            ]
        )
        self.add_files_button.changed.connect(self._ask_files)
        self.add_folder_button.changed.connect(self._ask_folder)
        self.previous_button.changed.connect(lambda: self.previous_image())
        self.next_button.changed.connect(lambda: self.next_image())
        self.commit_button.changed.connect(lambda: self.commit())
        self.min_score.changed.connect(lambda _v: self._show_review())
        self.current: OpenedImage | None = None
        self.current_name: str | None = None
        self.link: LiveLink | None = None
        self._prefetching: int | None = None
        self._kept: dict[str, Any] = {}
        self._bind_keys()
        self.refresh()

    # -- the project -----------------------------------------------------------------------------------
    @property
    def queue(self) -> ProjectQueue:
        """The images of the session's project (follows *Open project* in Annotations)."""
        return ProjectQueue(self.session.store)

    @property
    def drafts(self) -> DraftWriter:
        """The draft writer of the session's project (a new one when the project changed)."""
        store = self.session.store
        if self._drafts is None or self._drafts_store is not store:
            if self._drafts is not None:
                self._drafts.close()
            self._drafts = DraftWriter(store, self.draft_interval_s, on_error=self._draft_failed)
            self._drafts_store = store
        return self._drafts

    # -- Qt parts -------------------------------------------------------------------------------------
    def _build_qt(self) -> None:
        from qtpy.QtWidgets import QAbstractItemView, QListWidget, QTableWidget

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([title for title, _ in COLUMNS])
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSortingEnabled(True)
        self.table.sortItems(0)  # the order images were added, until the user sorts
        self.table.verticalHeader().setVisible(False)
        self.table.setMinimumHeight(180)
        self.table.cellDoubleClicked.connect(lambda row, _col: self.open(self._row_id(row)))
        self._table_box = Container(labels=False)
        self._table_box.native.layout().addWidget(self.table)
        self.review = QListWidget()
        self.review.setMaximumHeight(120)
        self.review.itemDoubleClicked.connect(lambda item: self.jump_to(int(item.data(256))))
        self._review_box = Container(labels=False)
        self._review_box.native.layout().addWidget(self.review)

    def _bind_keys(self) -> None:
        for key, method in SHORTCUTS.items():
            bound = getattr(self, method)
            self.viewer.bind_key(key, lambda _viewer, bound=bound: bound(), overwrite=True)

    def _ask_files(self) -> None:
        from qtpy.QtWidgets import QFileDialog

        paths, _ = QFileDialog.getOpenFileNames(self.native, "Add images to the project")
        if paths:
            self.add_paths(paths)

    def _ask_folder(self) -> None:
        from qtpy.QtWidgets import QFileDialog

        path = QFileDialog.getExistingDirectory(self.native, "Add a folder of images")
        if path:
            self.add_paths([path])

    # -- the table ------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the image table from the store (keeps the user's sort order)."""
        from qtpy.QtCore import Qt

        rows = self.queue.rows()
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, (_, attribute) in enumerate(COLUMNS):
                value = r + 1 if attribute == "order" else getattr(row, attribute)
                item = _item(_cell(row, attribute, value), _sort_key(attribute, value))
                item.setData(Qt.UserRole, row.image_id)
                self.table.setItem(r, c, item)
        self.table.setSortingEnabled(True)
        self.table.resizeColumnsToContents()

    def order(self) -> list[int]:
        """Image ids in the table's current (sorted) order."""
        return [self._row_id(r) for r in range(self.table.rowCount())]

    def row_of(self, image_id: int) -> dict[str, Any]:
        """The table's cells of an image by column title (for tests and scripts)."""
        for r in range(self.table.rowCount()):
            if self._row_id(r) == image_id:
                return {t: self.table.item(r, c).text() for c, (t, _) in enumerate(COLUMNS)}
        raise KeyError(f"Image {image_id} is not in the project table.")

    def _row_id(self, row: int) -> int:
        from qtpy.QtCore import Qt

        return int(self.table.item(row, 0).data(Qt.UserRole))

    # -- adding -----------------------------------------------------------------------------------------
    def add_paths(self, paths: list[str]) -> None:
        """Add image files / folders in a worker, then refresh the table."""

        def done(summary: Any) -> None:
            self.refresh()
            failed = f", {len(summary.failed)} failed" if summary.failed else ""
            message = (
                f"{summary.added} images added ({summary.committed} with masks, "
                f"{summary.known} already there{failed})."
            )
            self.message.say(message)
            notify_info(message)
            self._prefetch()

        self.runner.run(lambda: self.queue.add(paths), done)

    # -- opening ------------------------------------------------------------------------------------------
    def next_image(self) -> None:
        """Open the image after the current one in the table's order."""
        self._step(self.queue.next_image(self._current_id(), self.order()), "last")

    def previous_image(self) -> None:
        """Open the image before the current one in the table's order."""
        self._step(self.queue.previous_image(self._current_id(), self.order()), "first")

    def _step(self, image_id: int | None, end: str) -> None:
        if image_id is None:
            self.message.say(f"This is the {end} image of the project.")
            return
        self.open(image_id)

    def _current_id(self) -> int | None:
        return None if self.current is None else self.current.image_id

    def open(self, image_id: int) -> None:
        """Close the shown image and open ``image_id``: draft > committed > prediction; an image
        without any is predicted first (in the background)."""
        if self.runner.busy:
            notify_error("Wait for the running job (or press Stop) before opening another image.")
            return
        self.close_image(keep_layers=True)
        opened = self.queue.open_image(image_id)
        if opened.needs_prediction and self._prefetching == image_id:
            self.prefetcher.wait()  # predicted ahead: take its result
            opened = self.queue.open_image(image_id)
        if not opened.needs_prediction:
            self._show(opened)
            self._prefetch()
            return
        self.message.say(f"Predicting {self._name(image_id)} with {self.model.value}...")
        self.runner.run(
            self._prediction_job(image_id),
            lambda _record: self._opened_after_prediction(image_id),
        )

    def _opened_after_prediction(self, image_id: int) -> None:
        self._show(self.queue.open_image(image_id))
        self.refresh()
        self._prefetch()

    def _prediction_job(self, image_id: int) -> Any:
        """The job predicting ``image_id`` with the models chosen now (read on the GUI thread,
        built and run in the worker)."""
        names = (self.model.value, self.refine.value)
        return lambda: self._predict(image_id, *names)

    def _predict(
        self, image_id: int, model_name: str, refine_name: str
    ) -> Generator[Progress, None, Any]:
        model, version = self._model(model_name)
        refine, refine_version = (None, None)
        if refine_name != "none":
            refine, refine_version = self._model(refine_name)
        return (
            yield from self.queue.predict(
                image_id,
                model,
                model_version=version,
                refine=refine,
                refine_version=refine_version,
            )
        )

    def _model(self, name: str) -> tuple[Any, int | None]:
        """The project's model ``name``: its latest fitted version, else the base model."""
        from ..models import build_model

        record = self.session.store.latest_model_version(name)
        if record is not None and record.checkpoint_path:
            return build_model(name, record.checkpoint_path), record.id
        return build_model(name), None

    def _prefetch(self) -> None:
        """Predict the next image without annotations in the background."""
        if self.prefetcher.busy or not self.prefetch.value:
            return
        candidate = self.queue.prefetch_candidate(self._current_id(), self.order())
        if candidate is None:
            return
        self._prefetching = candidate

        def done(_record: Any) -> None:
            self._prefetching = None
            self.refresh()

        self.prefetcher.run(
            self._prediction_job(candidate), done, on_finally=self._prefetch_finished
        )

    def _prefetch_finished(self) -> None:
        self._prefetching = None

    def _name(self, image_id: int) -> str:
        return self.session.store.image(image_id).name

    def _show(self, opened: OpenedImage) -> None:
        """Add the image and its annotation layers; start live sync and drafts."""
        store = self.session.store
        name = self._name(opened.image_id)
        pixels = store.load_pixels(opened.image_id)
        self._reuse_layers(name, pixels, opened.labels)
        if name not in self.viewer.layers:
            rgb = pixels.ndim == 3 and pixels.shape[-1] in (3, 4)
            self.viewer.add_image(pixels, name=name, rgb=rgb)
        self.viewer.layers[name].metadata["cellist_image"] = name
        tuples = labels_to_layer_tuples(
            opened.labels,
            opened.objects,
            name,
            source="model" if opened.source == "prediction" else "manual",
            tolerance=self.session.tolerance,
            extra_points=opened.points,
        )
        layers = set_layers(self.viewer, tuples)
        by_type = {type(layer).__name__.lower(): layer for layer in layers}
        state = self.session.state(name)
        state.image_id = opened.image_id
        state.committed = opened.source == "committed"
        self.current, self.current_name = opened, name
        self.n_edits_before = opened.n_edits
        self.link = LiveLink(
            by_type["labels"],
            by_type.get("shapes"),
            by_type.get("points"),
            on_edit=self.save_draft,
            tolerance=self.session.tolerance,
        )
        self._show_review()
        self._select_row(opened.image_id)
        self.message.say(f"{name}: {opened.source}, {len(self.link.index)} objects.")

    def close_image(self, keep_layers: bool = False) -> None:
        """Write the shown image's draft and remove its layers (``keep_layers``: leave them,
        read-only, for the next image to reuse: napari removes a layer in ~0.3 s)."""
        if self.current is None:
            return
        self.drafts.flush(timeout_s=10)
        if self.link is not None:
            self.link.disconnect()
        name = self.current_name
        layers = [
            layer
            for layer in self.viewer.layers
            if layer.name == name or layer.metadata.get("cellist_image") == name
        ]
        self._kept = {}
        for layer in layers:
            if keep_layers and _role(layer, name) is not None:
                self._kept[_role(layer, name)] = layer
                layer.editable = False  # edits between two images would be lost
            else:
                self.viewer.layers.remove(layer)
        self.current, self.current_name, self.link = None, None, None
        self.review.clear()

    def _reuse_layers(self, name: str, pixels: np.ndarray, labels: np.ndarray) -> None:
        """Give the kept layers of the previous image the new image's names and data; layers
        that do not fit (another dimensionality, RGB-ness) are removed instead."""
        kept, self._kept = self._kept, {}
        image = kept.get("image")
        rgb = pixels.ndim == 3 and pixels.shape[-1] in (3, 4)
        fits = image is not None and image.rgb == rgb and image.data.ndim == pixels.ndim
        fits = fits and kept.get("labels") is not None and kept["labels"].data.ndim == labels.ndim
        for role, layer in kept.items():
            if not fits:
                self.viewer.layers.remove(layer)
                continue
            layer.name = name if role == "image" else layer_name(name, role)
            layer.metadata["cellist_image"] = name
            layer.editable = True
        if fits:
            image.data = pixels
            image.reset_contrast_limits()
            kept["labels"].data = np.asarray(labels, np.int32)  # a new image: a new undo history

    def _select_row(self, image_id: int) -> None:
        for r in range(self.table.rowCount()):
            if self._row_id(r) == image_id:
                self.table.selectRow(r)

    # -- drafts and commit -----------------------------------------------------------------------------
    def save_draft(self) -> None:
        """Hand the shown image's state to the draft writer (returns at once)."""
        if self.current is None or self.link is None:
            return
        self.drafts.submit(self.current.image_id, self._snapshot())
        self._show_counts()

    def _snapshot(self) -> DraftSnapshot:
        link = self.link
        shapes, points = link.shapes_layer, link.points_layer
        classes = {}
        if shapes is not None and "class" in shapes.features:
            ids = shapes.features["id"].to_numpy(np.int64)
            classes = {
                int(i): str(c)
                for i, c in zip(ids, shapes.features["class"], strict=True)
                if i > 0 and c != DEFAULT_CLASS
            }
        extra = None
        if points is not None and "id" in points.features:
            keep = points.features["id"].to_numpy(np.int64) == 0
            extra = np.asarray(points.data, float)[keep] if keep.any() else None
        return DraftSnapshot(
            np.array(link.labels, np.int32, copy=True),
            classes=classes,
            points=extra,
            based_on_commit=self.current.based_on_commit,
            prediction_id=self.current.prediction_id,
            n_edits=self.n_edits_before + link.n_edits,
            n_objects=len(link.index),
        )

    def commit(self) -> None:
        """Commit the shown image's annotations (its draft) in a worker.

        On the GUI thread only the label map is copied (the draft snapshot); writing the draft
        and the commit (encoding every object's RLE and polygon, the corrections, one
        transaction) run in the worker. Progress has three steps: draft written, committing,
        committed; the store's ``commit_draft`` is one call without a progress hook, so the
        encoding itself is one step.
        """
        if self.current is None:
            notify_error("Open an image of the project first (double-click it in the table).")
            return
        image_id, name = self.current.image_id, self.current_name
        if self.link is not None:
            self.link.flush()  # outlines still deferred from the last stroke
        self.save_draft()  # also when nothing was edited: the shown annotations are committed
        n_objects = len(self.link.index) if self.link is not None else 0

        def job() -> Generator[Progress, None, Any]:
            yield Progress(0, 3, f"writing the draft of {name}...")
            if not self.drafts.flush(timeout_s=60):
                raise RuntimeError(
                    f"The draft of {name} could not be written, so it was not committed; "
                    "check that the project folder is writable and commit again."
                )
            yield Progress(1, 3, f"encoding and committing {n_objects} objects of {name}...")
            result = self.session.store.commit_draft(image_id)
            yield Progress(3, 3, "committed")
            return result

        def done(result: Any) -> None:
            self.drafts.discard(image_id)
            if self.current is not None and self.current.image_id == image_id:
                opened = self.current
                self.current = OpenedImage(
                    image_id,
                    "committed",
                    None,
                    opened.objects,
                    None,
                    None,
                    result.commit_id,
                    opened.prediction_id,
                )
                self.n_edits_before = 0
                if self.link is not None:
                    self.link.n_edits = 0
            self.refresh()
            message = f"Committed {result.n_objects} objects of {self._name(image_id)}."
            self.message.say(message)
            notify_info(message)

        self.runner.run(job, done)

    def _draft_failed(self, error: BaseException, image_ids: tuple[int, ...]) -> None:
        logger.error("draft of images %s not saved: %s", image_ids, error)

    # -- review -------------------------------------------------------------------------------------------
    def _show_review(self) -> None:
        from qtpy.QtWidgets import QListWidgetItem

        self.review.clear()
        if self.current is None:
            self.classes.value = ""
            return
        objects = self.current.objects
        unsure = sorted(
            (m.score, i) for i, m in objects.items() if m.score < float(self.min_score.value)
        )
        for score, label_id in unsure:
            if self.link is not None and label_id not in self.link.index.boxes:
                continue
            item = QListWidgetItem(f"object {label_id}: score {score:.2f}")
            item.setData(256, label_id)  # Qt.UserRole
            self.review.addItem(item)
        self._show_counts()

    def _show_counts(self) -> None:
        """Counts per class and per object status (untouched / edited / added)."""
        if self.current is None:
            self.classes.value = ""
            return
        objects = self.current.objects
        counts = Counter(
            (objects[i].class_name if i in objects else DEFAULT_CLASS)
            for i in (self.link.index.boxes if self.link is not None else objects)
        )
        self.classes.value = "classes: " + (
            ", ".join(f"{name} {n}" for name, n in sorted(counts.items())) or "none"
        )
        if self.link is not None:
            status = self.link.object_status()
            self.classes.value += "\nobjects: " + ", ".join(f"{n} {k}" for k, n in status.items())

    def unsure_objects(self) -> list[int]:
        """Ids listed for review (low score), lowest score first."""
        return [int(self.review.item(r).data(256)) for r in range(self.review.count())]

    def jump_to(self, label_id: int) -> None:
        """Centre the view on an object and select its label for painting."""
        if self.link is None or label_id not in self.link.index.boxes:
            notify_error(f"Object {label_id} is not in the shown image any more.")
            return
        box = self.link.index.boxes[label_id]
        ndim = len(box) // 2
        centre = [(box[k] + box[k + ndim]) / 2 for k in range(ndim)]
        self.viewer.camera.center = tuple(centre[-2:])
        self.link.labels_layer.selected_label = label_id
        self.message.say(f"object {label_id}")

    # -- closing -----------------------------------------------------------------------------------------
    def _on_parent_changed(self, parent: Any) -> None:  # the dock was closed: save what is pending
        super()._on_parent_changed(parent)
        if parent is None:
            self.drafts.flush(timeout_s=10)


def _role(layer: Any, image_name: str) -> str | None:
    """ "image", "labels", "polygons" or "centres" for the layers of an image (None: another)."""
    if layer.name == image_name:
        return "image"
    return next((r for r in ROLES if layer.name == layer_name(image_name, r)), None)


def _cell(row: Any, attribute: str, value: Any) -> str:
    """The text of a table cell."""
    if attribute == "last_change":
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if value is None:
        return "-"
    if attribute == "model_name" and row.model_version is not None:
        return f"{value} v{row.model_version}"
    return str(value)


def _sort_key(attribute: str, value: Any) -> tuple:
    """How a cell sorts: numbers as numbers, status in STATUSES order, missing values last."""
    from ..store import STATUSES

    if value is None:
        return (1, 0)
    if attribute == "status":
        return (0, STATUSES.index(value))
    if attribute in ("name", "model_name"):
        return (0, str(value).lower())
    return (0, value)


class _SortedItem(QTableWidgetItem):
    """A table item that sorts by its ``sort_key`` rather than by its text."""

    sort_key: tuple = (1, 0)

    def __lt__(self, other: Any) -> bool:
        return self.sort_key < getattr(other, "sort_key", (1, 0))


def _item(text: str, key: tuple) -> _SortedItem:
    item = _SortedItem(text)
    item.sort_key = key
    return item


__all__ = ["SHORTCUTS", "ProjectPanel"]
