"""The Project panel's review aids: the objects to check first, and the counts per class / status.

* The review list holds the shown image's objects the model was unsure of (score under the
  "unsure below" threshold), least certain first
  (:func:`napari_cellist.what_next.uncertain_first`); double-clicking one jumps to it.
* The counts line gives the objects per class and per status (untouched / edited / added,
  from the :class:`~napari_cellist._widgets._live.LiveLink`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from magicgui.widgets import Container, FloatSpinBox, Label

from ..types import DEFAULT_CLASS, ObjectMeta

_ID_ROLE = 256  # Qt.UserRole: the label id of a review item


class ReviewAids(Container):
    """The unsure-objects list and the counts line of the shown image.

    Parameters
    ----------
    on_jump : callable
        Called with a label id when an object of the list is double-clicked.
    """

    def __init__(self, on_jump: Callable[[int], None]) -> None:
        super().__init__(labels=False)
        from qtpy.QtWidgets import QListWidget

        self.min_score = FloatSpinBox(
            label="unsure below",
            value=0.5,
            min=0.0,
            max=1.0,
            step=0.05,
            tooltip="Objects with a lower score are listed for review, least certain first.",
        )
        self.review = QListWidget()
        self.review.setMaximumHeight(120)
        self.review.itemDoubleClicked.connect(lambda item: on_jump(int(item.data(_ID_ROLE))))
        box = Container(labels=False)
        box.native.layout().addWidget(self.review)
        self.classes = Label(value="")
        self.extend([Container(widgets=[self.min_score], labels=True), box, self.classes])
        self._objects: Mapping[int, ObjectMeta] | None = None
        self._link: Any = None
        self.min_score.changed.connect(lambda _v: self.show(self._objects, self._link))

    def show(self, objects: Mapping[int, ObjectMeta] | None, link: Any) -> None:
        """List the unsure objects of the shown image (``objects`` None: nothing shown).

        Parameters
        ----------
        objects : mapping or None
            Object metadata (scores, classes) by label id, as opened.
        link : LiveLink or None
            The image's live link; objects no longer in its label map are not listed.
        """
        from qtpy.QtWidgets import QListWidgetItem

        from ..what_next import uncertain_first

        self._objects, self._link = objects, link
        self.review.clear()
        if objects is None:
            self.classes.value = ""
            return
        threshold = float(self.min_score.value)
        unsure = {i: m for i, m in objects.items() if m.score < threshold}
        present = None if link is None else link.index.boxes
        for label_id in uncertain_first(unsure):
            if present is not None and label_id not in present:
                continue
            item = QListWidgetItem(f"object {label_id}: score {objects[label_id].score:.2f}")
            item.setData(_ID_ROLE, int(label_id))
            self.review.addItem(item)
        self.show_counts()

    def clear(self) -> None:
        """Nothing shown."""
        self.show(None, None)

    def show_counts(self) -> None:
        """Counts per class and per object status (untouched / edited / added)."""
        objects, link = self._objects or {}, self._link
        if link is None and not objects:
            self.classes.value = ""
            return
        counts = Counter(
            (objects[i].class_name if i in objects else DEFAULT_CLASS)
            for i in (link.index.boxes if link is not None else objects)
        )
        text = "classes: " + (
            ", ".join(f"{name} {n}" for name, n in sorted(counts.items())) or "none"
        )
        if link is not None:
            status = link.object_status()
            text += "\nobjects: " + ", ".join(f"{n} {k}" for k, n in status.items())
        self.classes.value = text

    def unsure_objects(self) -> list[int]:
        """Label ids listed for review, in the list's order (least certain first)."""
        return [int(self.review.item(r).data(_ID_ROLE)) for r in range(self.review.count())]


__all__ = ["ReviewAids"]
