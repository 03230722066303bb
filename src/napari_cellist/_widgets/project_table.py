"""The Project panel's image table: one row per image, sortable, double-click to open.

Columns are the project queue's rows (:class:`~napari_cellist.store.ImageStatus`) plus the
image's usefulness to correct next (:func:`napari_cellist.what_next.rank_images`; ``-`` for an
image with annotations). Clicking a header sorts by it (numbers as numbers, status in the
store's status order, missing values last); :meth:`ImageTable.order` is the order Next and
Previous follow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from magicgui.widgets import Container
from qtpy.QtWidgets import QTableWidgetItem

#: Table columns: (title, attribute of ImageStatus; "order" and "usefulness" are the panel's).
COLUMNS = (
    ("#", "order"),
    ("name", "name"),
    ("status", "status"),
    ("objects", "n_objects"),
    ("model", "model_name"),
    ("corrections", "n_corrections"),
    ("last change", "last_change"),
    ("usefulness", "usefulness"),
)
USEFULNESS_COLUMN = len(COLUMNS) - 1


class ImageTable(Container):
    """A sortable table of the project's images.

    Parameters
    ----------
    on_open : callable
        Called with an image id when its row is double-clicked.
    """

    def __init__(self, on_open: Callable[[int], None]) -> None:
        super().__init__(labels=False)
        from qtpy.QtWidgets import QAbstractItemView, QTableWidget

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([title for title, _ in COLUMNS])
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSortingEnabled(True)
        self.table.sortItems(0)  # the order images were added, until the user sorts
        self.table.verticalHeader().setVisible(False)
        self.table.setMinimumHeight(180)
        self.table.cellDoubleClicked.connect(lambda row, _col: on_open(self.row_id(row)))
        self.native.layout().addWidget(self.table)

    def show_rows(self, rows: Sequence[Any], usefulness: Mapping[int, float]) -> None:
        """Fill the table (keeps the user's sort order).

        Parameters
        ----------
        rows : sequence of ImageStatus
            The images, in the order they were added.
        usefulness : mapping
            Usefulness score by image id (higher: more useful to correct next); images not in
            it show ``-`` and sort last.
        """
        from qtpy.QtCore import Qt

        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, (_, attribute) in enumerate(COLUMNS):
                value = _value(row, attribute, r, usefulness)
                item = _item(_cell(row, attribute, value), _sort_key(attribute, value))
                item.setData(Qt.UserRole, row.image_id)
                self.table.setItem(r, c, item)
        self.table.setSortingEnabled(True)
        self.table.resizeColumnsToContents()

    def show_usefulness(self, usefulness: Mapping[int, float]) -> None:
        """Rewrite the usefulness column only (the ranking arrived after the rows)."""
        from qtpy.QtCore import Qt

        self.table.setSortingEnabled(False)
        for r in range(self.table.rowCount()):
            image_id = self.row_id(r)
            value = usefulness.get(image_id)
            item = _item(_cell(None, "usefulness", value), _sort_key("usefulness", value))
            item.setData(Qt.UserRole, image_id)
            self.table.setItem(r, USEFULNESS_COLUMN, item)
        self.table.setSortingEnabled(True)

    def sort_by_usefulness(self) -> None:
        """Most useful first (images with annotations last)."""
        from qtpy.QtCore import Qt

        self.table.sortItems(USEFULNESS_COLUMN, Qt.AscendingOrder)

    def order(self) -> list[int]:
        """Image ids in the table's current (sorted) order."""
        return [self.row_id(r) for r in range(self.table.rowCount())]

    def row_of(self, image_id: int) -> dict[str, str]:
        """The table's cells of an image by column title."""
        for r in range(self.table.rowCount()):
            if self.row_id(r) == image_id:
                return {t: self.table.item(r, c).text() for c, (t, _) in enumerate(COLUMNS)}
        raise KeyError(f"Image {image_id} is not in the project table.")

    def row_id(self, row: int) -> int:
        """The image id of table row ``row``."""
        from qtpy.QtCore import Qt

        return int(self.table.item(row, 0).data(Qt.UserRole))

    def select(self, image_id: int) -> None:
        """Select the row of ``image_id``."""
        for r in range(self.table.rowCount()):
            if self.row_id(r) == image_id:
                self.table.selectRow(r)


def _value(row: Any, attribute: str, index: int, usefulness: Mapping[int, float]) -> Any:
    if attribute == "order":
        return index + 1
    if attribute == "usefulness":
        return usefulness.get(row.image_id)
    return getattr(row, attribute)


def _cell(row: Any, attribute: str, value: Any) -> str:
    """The text of a table cell."""
    if attribute == "last_change":
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if value is None:
        return "-"
    if attribute == "model_name" and row.model_version is not None:
        return f"{value} v{row.model_version}"
    if attribute == "usefulness":
        return f"{value:.2f}"
    return str(value)


def _sort_key(attribute: str, value: Any) -> tuple:
    """How a cell sorts: numbers as numbers, status in STATUSES order, the most useful image
    first, missing values last."""
    from ..store import STATUSES

    if value is None:
        return (1, 0)
    if attribute == "status":
        return (0, STATUSES.index(value))
    if attribute in ("name", "model_name"):
        return (0, str(value).lower())
    if attribute == "usefulness":
        return (0, -float(value))
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


__all__ = ["COLUMNS", "ImageTable"]
