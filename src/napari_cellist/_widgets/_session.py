"""One :class:`~napari_cellist.session.LabellingSession` per viewer, shared by its dock widgets.

A widget opened from napari's Plugins menu is handed a ``PublicOnlyProxy`` of the viewer (a
different proxy object for every widget), not the viewer itself. :func:`plain_viewer` finds the
viewer behind it through napari's public API: :func:`napari.current_viewer` is the viewer whose
window docks the widget, and a viewer's hash is its identity (``ViewerModel.__hash__`` is
``id``), which the proxy forwards. When that cannot be established (several windows, no Qt), the
proxy itself is used: everything the widgets do works through it too (no private attributes,
``isinstance`` rather than ``type`` checks).
"""

from __future__ import annotations

import weakref
from typing import Any

from ..session import LabellingSession

_SESSIONS: weakref.WeakKeyDictionary[Any, LabellingSession] = weakref.WeakKeyDictionary()


def plain_viewer(viewer: Any) -> Any:
    """The napari ``Viewer`` behind ``viewer`` (a plugin widget's proxy), else ``viewer``."""
    try:
        from napari import current_viewer
    except ImportError:
        return viewer
    current = current_viewer()
    if current is not None and hash(current) == hash(viewer):
        return current
    return viewer


def session_for(viewer: Any) -> LabellingSession:
    """The labelling session of ``viewer`` (created on first use)."""
    viewer = plain_viewer(viewer)
    if viewer not in _SESSIONS:
        _SESSIONS[viewer] = LabellingSession()
    return _SESSIONS[viewer]


def set_session(viewer: Any, session: LabellingSession) -> None:
    """Attach a session (e.g. with a chosen project) to ``viewer``."""
    _SESSIONS[plain_viewer(viewer)] = session
