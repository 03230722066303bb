"""One :class:`~napari_cellist.session.LabellingSession` per viewer, shared by its dock widgets."""

from __future__ import annotations

import weakref
from typing import Any

from ..session import LabellingSession

_SESSIONS: weakref.WeakKeyDictionary[Any, LabellingSession] = weakref.WeakKeyDictionary()


def session_for(viewer: Any) -> LabellingSession:
    """The labelling session of ``viewer`` (created on first use)."""
    if viewer not in _SESSIONS:
        _SESSIONS[viewer] = LabellingSession()
    return _SESSIONS[viewer]


def set_session(viewer: Any, session: LabellingSession) -> None:
    """Attach a session (e.g. with a chosen project) to ``viewer``."""
    _SESSIONS[viewer] = session
