"""Fixtures of the widget tests: notifications as the user sees them, a viewer with a project,
and the dock widgets opened the way napari's Plugins menu opens them."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

PLUGIN = "napari-cellist"


@dataclass(eq=False)
class Notifications:
    """Every notification napari dispatched during a test (toasts: info, warnings, errors)."""

    shown: list = field(default_factory=list)

    def __call__(self, notification) -> None:
        self.shown.append(notification)

    @property
    def errors(self) -> list[str]:
        """Messages of the error notifications, oldest first."""
        return [n.message for n in self.shown if str(n.severity).lower() == "error"]

    @property
    def infos(self) -> list[str]:
        """Messages of the information notifications, oldest first."""
        return [n.message for n in self.shown if str(n.severity).lower() == "info"]

    def clear(self) -> None:
        self.shown.clear()


@pytest.fixture
def notifications(monkeypatch):
    """Collect napari's notifications (``show_error``, ``show_info`` and failed workers)."""
    from napari.utils.notifications import notification_manager

    collected = Notifications()
    monkeypatch.setattr(notification_manager, "catch_error", True)
    monkeypatch.setattr(notification_manager, "exit_on_error", False)
    notification_manager.notification_ready.connect(collected)
    yield collected
    notification_manager.notification_ready.disconnect(collected)


@pytest.fixture
def viewer(make_napari_viewer, tmp_path, monkeypatch):
    """A viewer with the DSB2018 nuclei sample and its truth, on a fresh project; jobs run on
    the calling thread (``CELLIST_SYNC=1``)."""
    from napari_cellist._widgets._session import set_session
    from napari_cellist.session import LabellingSession

    monkeypatch.setenv("CELLIST_SYNC", "1")
    viewer = make_napari_viewer()
    set_session(viewer, LabellingSession(tmp_path / "project"))
    viewer.open_sample(PLUGIN, "nuclei_with_truth")
    return viewer


def _dock(viewer, title: str):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, title)
    return widget


@pytest.fixture
def dock():
    """``dock(viewer, title)`` opens a Cellist widget from the Plugins menu (napari hands it a
    proxy of the viewer, as it does for a user) and returns it."""
    return _dock
