"""Qt layout details of the dock widgets: labels that are never cut, text that never widens a dock.

magicgui sizes the label column with the application font; napari's stylesheet (applied when a
widget is docked) draws labels larger, which cut the longer ones ("diamete"). Each form label
gets an event filter that keeps its minimum width at its own size hint whenever it is polished
or its font changes. Status lines wrap their text and ignore its width, so a long error message
can grow the dock in height (it scrolls) but never in width.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QLabel, QSizePolicy

_REFIT = {QEvent.Type.Polish, QEvent.Type.FontChange, QEvent.Type.StyleChange, QEvent.Type.Show}


class _FitLabel(QObject):
    """Keeps a QLabel at least as wide as its text, in the font it is drawn with."""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if event.type() in _REFIT and isinstance(obj, QLabel) and not obj.wordWrap():
            width = obj.sizeHint().width()
            if obj.minimumWidth() < width:
                obj.setMinimumWidth(width)
        return False


_FILTER: _FitLabel | None = None


def fit_labels(native: Any) -> None:
    """Make every (non-wrapping) QLabel under the Qt widget ``native`` keep its full text width."""
    global _FILTER
    if _FILTER is None:
        _FILTER = _FitLabel()
    for label in native.findChildren(QLabel):
        if label.wordWrap() or label.property("cellist_fit"):
            continue
        label.setProperty("cellist_fit", True)
        label.installEventFilter(_FILTER)
        width = label.sizeHint().width()
        if label.minimumWidth() < width:
            label.setMinimumWidth(width)


def wrapping(label: Any) -> Any:
    """Make a magicgui Label wrap its text and never ask for more width than the dock gives."""
    native = label.native
    native.setWordWrap(True)
    native.setMinimumWidth(0)
    policy = QSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
    policy.setHeightForWidth(True)
    native.setSizePolicy(policy)
    return label


class ParentWatcher(QObject):
    """Calls ``callback(parent)`` whenever the watched Qt widget gets a new parent (docked into
    napari's dock widget, or un-parented by napari's ``remove_dock_widget``)."""

    def __init__(self, widget: Any, callback: Any) -> None:
        super().__init__(widget)
        self._callback = callback
        widget.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Type.ParentChange:
            self._callback(obj.parent())
        return False
