"""The Project panel's corrections table: per commit of an image, the model version whose
prediction was corrected and how many objects the user added, deleted, modified, merged and
split (imported masks: none).

This is the evaluation a user sees: as the learning loop's model improves, later versions
should need fewer corrections per image. Rows come from
:func:`napari_cellist.learning_loop.corrections_by_image`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from magicgui.widgets import Container

from ..loop.data import CORRECTION_KINDS

#: The kinds of correction, in column order (those a row does not count show 0).
KINDS = CORRECTION_KINDS
#: Column titles.
TITLES = ("image", "model", *KINDS, "total", "objects")


class CorrectionsTable(Container):
    """A read-only table, one row per commit, oldest first (an image committed twice has two
    rows: the second shows the corrections of its re-commit)."""

    def __init__(self) -> None:
        super().__init__(labels=False)
        from qtpy.QtWidgets import QAbstractItemView, QTableWidget

        self.table = QTableWidget(0, len(TITLES))
        self.table.setHorizontalHeaderLabels(list(TITLES))
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.setMinimumHeight(120)
        self.native.layout().addWidget(self.table)

    def show_rows(self, rows: Sequence[Any]) -> None:
        """Fill the table with ``CorrectionsRow`` s (``name``, ``model_name``, ``model_version``,
        ``counts`` by kind, ``total``, ``n_objects``)."""
        from qtpy.QtWidgets import QTableWidgetItem

        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, value in enumerate(cells(row)):
                self.table.setItem(r, c, QTableWidgetItem(str(value)))
        self.table.resizeColumnsToContents()

    def rows(self) -> list[dict[str, str]]:
        """The shown rows as ``{title: text}`` (in the table's order)."""
        return [
            {t: self.table.item(r, c).text() for c, t in enumerate(TITLES)}
            for r in range(self.table.rowCount())
        ]


def cells(row: Any) -> list[Any]:
    """The values of one row, in :data:`TITLES` order."""
    model = row.model_name or "-"
    if row.model_version is not None:
        model = f"{model} v{row.model_version}"
    counts = dict(row.counts)
    return [row.name, model, *(int(counts.get(k, 0)) for k in KINDS), row.total, row.n_objects]


__all__ = ["KINDS", "TITLES", "CorrectionsTable", "cells"]
