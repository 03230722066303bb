"""*Project* dock widget: work through the images of a project, one after the other.

A thin widget over :class:`~napari_cellist.project_queue.ProjectQueue`,
:class:`~napari_cellist.drafts.DraftWriter`, :mod:`napari_cellist.live_sync` and
:mod:`napari_cellist.learning_loop`, composed of parts in their own modules:

* **Add files... / Add folder...**; the image table (:mod:`.project_table`: status, objects,
  model, corrections, last change, usefulness; click a header to sort, double-click to open).
* **Next / Previous / Next most useful** (``Alt-N`` / ``Alt-P`` / ``Alt-U``; ``Alt-C``
  commits) open an image, closing the previous one's layers (:mod:`.project_layers`): its
  draft, else its committed annotations, else its prediction; an image with none is predicted
  in the background with the model's current version (:mod:`.project_prediction`), and the
  next one is predicted ahead. Next most useful opens the top of
  :func:`napari_cellist.what_next.rank_images`.
* Every edit is kept consistent live and written as a draft in the background; **Commit**
  commits the draft in a worker (:mod:`.project_commit`).
* Review aids (:mod:`.project_review`): unsure objects, least certain first; counts.
* Learning (:mod:`.project_learning`): after commits the trainable model is retrained in the
  background; the decision, a plot of each version's score, corrections per image per version.
"""

from __future__ import annotations

import logging
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, PushButton

from ..drafts import DraftWriter
from ..project_queue import OpenedImage, ProjectQueue
from ._common import DockWidget
from ._live import LiveLink
from ._runner import JobRunner, StatusLine, notify_error, notify_info
from .project_commit import after_commit, commit_job
from .project_layers import close_layers, show_image, snapshot
from .project_learning import LearningSection
from .project_prediction import prediction_job
from .project_ranking import Ranker, scores
from .project_review import ReviewAids
from .project_table import COLUMNS, ImageTable

logger = logging.getLogger(__name__)

#: Keyboard shortcuts bound on the viewer: key -> panel method.
SHORTCUTS = {
    "Alt-N": "next_image",
    "Alt-P": "previous_image",
    "Alt-U": "next_most_useful",
    "Alt-C": "commit",
}
#: Seconds between two draft writes.
DRAFT_INTERVAL_S = 1.0


class ProjectPanel(DockWidget):
    """The Project panel: the image table, navigation, pre-labelling, drafts, commit, review
    aids and the learning loop.

    Public actions (what the buttons and keys call): :meth:`add_paths`, :meth:`open`,
    :meth:`next_image`, :meth:`previous_image`, :meth:`next_most_useful`, :meth:`commit`,
    :meth:`jump_to`, :meth:`retrain`.
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
            tooltip="Pre-labels images without annotations (its current version if any).",
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
        self.images = ImageTable(on_open=self.open)
        self.table = self.images.table
        self.previous_button = PushButton(text="Previous (Alt-P)")
        self.next_button = PushButton(text="Next (Alt-N)")
        self.useful_button = PushButton(
            text="Next most useful (Alt-U)",
            tooltip="Open the image without annotations whose correction teaches the model most "
            "(the current model is least certain of it).",
        )
        self.commit_button = PushButton(
            text="Commit (Alt-C)", tooltip="Store the shown annotations as the image's labels."
        )
        self.aids = ReviewAids(on_jump=self.jump_to)
        self.min_score, self.review, self.classes = (
            self.aids.min_score,
            self.aids.review,
            self.aids.classes,
        )
        self.message = StatusLine()
        self.runner = JobRunner()
        self.prefetcher = JobRunner()
        self.prefetcher.visible = False
        self._usefulness: dict[int, float] = {}
        self.ranker = Ranker(on_ranked=self._ranked)
        self.learning = LearningSection(lambda: self.session.store, on_version=self.refresh)
        self.extend(
            [
                Container(
                    widgets=[self.add_files_button, self.add_folder_button],
                    layout="horizontal",
                    labels=False,
                ),
                Container(widgets=[self.model, self.refine], labels=True),
                self.prefetch,
                self.images,
                Container(
                    widgets=[self.previous_button, self.next_button, self.useful_button],
                    layout="horizontal",
                    labels=False,
                ),
                self.commit_button,
                self.aids,
                self.message,
                self.runner,
                self.prefetcher,
                self.learning,
            ]
        )
        self.add_files_button.changed.connect(self._ask_files)
        self.add_folder_button.changed.connect(self._ask_folder)
        self.previous_button.changed.connect(lambda: self.previous_image())
        self.next_button.changed.connect(lambda: self.next_image())
        self.useful_button.changed.connect(lambda: self.next_most_useful())
        self.commit_button.changed.connect(lambda: self.commit())
        self.current: OpenedImage | None = None
        self.current_name: str | None = None
        self.link: LiveLink | None = None
        self.n_edits_before = 0
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
        """Re-read the image table, the version plot and the corrections table from the store
        (keeps the user's sort order); the usefulness column follows when the ranking of the
        images without annotations has been recomputed (in the background, see
        :mod:`.project_ranking`)."""
        from ..what_next import RANKED_STATUSES

        store, rows = self.session.store, self.queue.rows()
        ranked = {r.image_id for r in rows if r.status in RANKED_STATUSES}
        self._usefulness = {i: v for i, v in self._usefulness.items() if i in ranked}
        self.images.show_rows(rows, self._usefulness)
        self.ranker.update(store, rows)
        self.learning.refresh()

    def _ranked(self, ranking: list[Any]) -> None:
        self._usefulness = scores(ranking)
        self.images.show_usefulness(self._usefulness)

    def order(self) -> list[int]:
        """Image ids in the table's current (sorted) order."""
        return self.images.order()

    def row_of(self, image_id: int) -> dict[str, Any]:
        """The table's cells of an image by column title (for tests and scripts)."""
        return self.images.row_of(image_id)

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

    def next_most_useful(self) -> None:
        """Open the image without annotations that is most useful to correct next (the top
        of :func:`~napari_cellist.what_next.rank_images`, other than the shown one)."""
        current = self._current_id()
        ranking = self.ranker.ranking(self.session.store, self.queue.rows())
        ranked = [u for u in ranking if u.image_id != current]
        if not ranked:
            self.message.say("Every image of the project has annotations.")
            return
        top = ranked[0]
        self.message.say(f"Most useful next: {top.name} ({top.reason}).")
        self.open(top.image_id)

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
        if not opened.needs_prediction and not self._outdated(opened):
            self._show(opened)
            self._prefetch()
            return
        self.message.say(f"Predicting {self._name(image_id)} with {self.model.value}...")
        self.runner.run(
            self._prediction_job(image_id),
            lambda _record: self._opened_after_prediction(image_id),
        )

    def _outdated(self, opened: OpenedImage) -> bool:
        """True when ``opened`` shows a prediction of the panel's model (not refined) made by
        another version than its current one (the learning loop accepted a version since):
        it is predicted again."""
        if opened.source != "prediction" or self.refine.value != "none":
            return False
        model = self.model.value
        row = next(r for r in self.queue.rows() if r.image_id == opened.image_id)
        current = self.session.store.current_model_version(model)
        return row.model_name == model and (current and current.id) != row.model_version

    def _opened_after_prediction(self, image_id: int) -> None:
        self._show(self.queue.open_image(image_id))
        self.refresh()
        self._prefetch()

    def _prediction_job(self, image_id: int) -> Any:
        """The job predicting ``image_id`` with the models chosen now."""
        return prediction_job(self.session.store, image_id, self.model.value, self.refine.value)

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
        name = self._name(opened.image_id)
        pixels = self.session.store.load_pixels(opened.image_id)
        kept, self._kept = self._kept, {}
        self.link = show_image(
            self.viewer, self.session, opened, name, pixels, kept, on_edit=self.save_draft
        )
        self.current, self.current_name = opened, name
        self.n_edits_before = opened.n_edits
        self.aids.show(opened.objects, self.link)
        self.images.select(opened.image_id)
        self.message.say(f"{name}: {opened.source}, {len(self.link.index)} objects.")

    def close_image(self, keep_layers: bool = False) -> None:
        """Write the shown image's draft and remove its layers (``keep_layers``: leave them,
        read-only, for the next image to reuse: napari removes a layer in ~0.3 s)."""
        if self.current is None:
            return
        self.drafts.flush(timeout_s=10)
        if self.link is not None:
            self.link.disconnect()
        self._kept = close_layers(self.viewer, self.current_name, keep_layers)
        self.current, self.current_name, self.link = None, None, None
        self.aids.clear()

    # -- drafts and commit -----------------------------------------------------------------------------
    def save_draft(self) -> None:
        """Hand the shown image's state to the draft writer (returns at once)."""
        if self.current is None or self.link is None:
            return
        self.drafts.submit(
            self.current.image_id, snapshot(self.link, self.current, self.n_edits_before)
        )
        self.aids.show_counts()

    def commit(self) -> None:
        """Commit the shown image's annotations (its draft) in a worker (see
        :mod:`.project_commit`); then retrain the learning loop's model in the background when
        it is due."""
        if self.current is None:
            notify_error("Open an image of the project first (double-click it in the table).")
            return
        image_id, name = self.current.image_id, self.current_name
        if self.link is not None:
            self.link.flush()  # outlines still deferred from the last stroke
        self.save_draft()  # also when nothing was edited: the shown annotations are committed
        n_objects = len(self.link.index) if self.link is not None else 0

        def done(result: Any) -> None:
            self.drafts.discard(image_id)
            if self.current is not None and self.current.image_id == image_id:
                self.current = after_commit(self.current, result.commit_id)
                self.n_edits_before = 0
                if self.link is not None:
                    self.link.n_edits = 0
            self.refresh()
            message = f"Committed {result.n_objects} objects of {self._name(image_id)}."
            self.message.say(message)
            notify_info(message)
            self.learning.after_commit()

        store = self.session.store
        self.runner.run(commit_job(self.drafts, store, image_id, name, n_objects), done)

    def retrain(self) -> None:
        """Retrain the learning loop's model now, in the background (see
        :meth:`LearningSection.retrain`)."""
        self.learning.retrain()

    def _draft_failed(self, error: BaseException, image_ids: tuple[int, ...]) -> None:
        logger.error("draft of images %s not saved: %s", image_ids, error)

    # -- review -------------------------------------------------------------------------------------------
    def unsure_objects(self) -> list[int]:
        """Ids listed for review (score under the threshold), least certain first."""
        return self.aids.unsure_objects()

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


__all__ = ["COLUMNS", "SHORTCUTS", "ProjectPanel"]
