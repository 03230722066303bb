"""The Project panel in a real napari viewer: a folder of real image crops walked through it
(add, open with a prediction, paint, draft, commit, next), and a draft that survives a viewer
process killed with SIGKILL."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from importlib.resources import files

import numpy as np
import pytest
import tifffile

from napari_cellist.store import ProjectStore

PLUGIN = "napari-cellist"


@pytest.fixture
def crops(tmp_path):
    """Three 128 x 128 crops of the packaged DSB2018 nuclei image in ``tmp/crops``."""
    image = tifffile.imread(str(files("napari_cellist") / "sample_data" / "nuclei_dsb2018.tif"))
    folder = tmp_path / "crops"
    folder.mkdir()
    for k, (r, c) in enumerate([(0, 0), (128, 256), (300, 300)]):
        tifffile.imwrite(
            folder / f"crop{k}.tif", np.ascontiguousarray(image[r : r + 128, c : c + 128])
        )
    return folder


@pytest.fixture
def panel(make_napari_viewer, tmp_path, monkeypatch):
    """The Project panel opened from the Plugins menu on a fresh project (jobs synchronous)."""
    from napari_cellist._widgets._session import set_session
    from napari_cellist.session import LabellingSession

    monkeypatch.setenv("CELLIST_SYNC", "1")
    viewer = make_napari_viewer()
    set_session(viewer, LabellingSession(tmp_path / "project"))
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Project")
    yield viewer, widget
    widget.prefetcher.wait()  # a prediction ahead may still run in a worker
    widget.runner.wait()
    widget.learning.runner.wait(300_000)  # a retraining after a commit
    widget.ranker.wait()
    widget.drafts.close()


def _layer(viewer, suffix):
    return next(layer for layer in viewer.layers if layer.name.endswith(suffix))


def test_walk_a_folder_through_the_panel(panel, crops, notifications, qtbot):
    viewer, widget = panel
    store = widget.session.store
    widget.add_paths([str(crops)])
    assert widget.table.rowCount() == 3
    ids = widget.order()
    # the first image was predicted ahead while nothing was open
    assert widget.row_of(ids[0])["status"] == "predicted"
    assert widget.row_of(ids[0])["model"] == "threshold"
    assert widget.row_of(ids[1])["status"] == "new"

    widget.next_image()  # opens the first image: its prediction at once
    assert widget.current.image_id == ids[0] and widget.current.source == "prediction"
    assert [layer.name for layer in viewer.layers] == [
        "crop0.tif",
        "crop0.tif labels",
        "crop0.tif polygons",
        "crop0.tif centres",
    ]
    labels_layer = _layer(viewer, "labels")
    shapes, points = _layer(viewer, "polygons"), _layer(viewer, "centres")
    n = len(widget.link.index)
    assert n > 3 and len(shapes.data) == n and len(points.data) == n
    # the next image was predicted ahead (prefetch) as soon as this one was shown
    assert widget.row_of(ids[1])["status"] == "predicted"
    assert "classes: object" in widget.classes.value

    # paint a new object: its outline and centre appear, a draft is written
    new_id = int(labels_layer.data.max()) + 1
    empty = np.argwhere(labels_layer.data == 0)[0]
    labels_layer.brush_size = 5
    labels_layer.paint(tuple(int(v) for v in empty), new_id)
    assert new_id in widget.link.index.boxes
    # the outline and centre are shown at the end of the stroke (a short timer)
    qtbot.waitUntil(lambda: new_id in set(shapes.features["id"]), timeout=2000)
    assert new_id in set(points.features["id"])
    assert widget.drafts.flush(timeout_s=10)
    draft = store.load_draft(ids[0])
    assert draft is not None and (draft.snapshot.labels == new_id).any()
    widget.refresh()
    assert widget.row_of(ids[0])["status"] == "draft"
    assert f"{n} untouched, 0 edited, 1 added" in widget.classes.value

    # deleting a centre deletes its object from the label map and the polygons
    victim = int(points.features["id"].iloc[0])
    points.selected_data = {0}
    points.remove_selected()
    assert not (labels_layer.data == victim).any()
    assert victim not in set(shapes.features["id"])
    # deleting a polygon deletes its object too
    row = int(np.flatnonzero(shapes.features["id"].to_numpy() == new_id)[0])
    shapes.selected_data = {row}
    shapes.remove_selected()
    assert not (labels_layer.data == new_id).any()
    assert new_id not in set(points.features["id"])

    widget.commit()
    assert notifications.errors == []
    assert store.load_draft(ids[0]) is None
    committed, _ = store.load_annotations(ids[0])
    np.testing.assert_array_equal(committed, labels_layer.data)
    assert widget.row_of(ids[0])["status"] == "committed"
    # the painted object was deleted again: one correction against the prediction is left
    assert int(widget.row_of(ids[0])["corrections"]) == 1

    widget.next_image()  # the previous image's layers are closed; the prefetched one shown
    assert widget.current.image_id == ids[1] and widget.current.source == "prediction"
    assert all(layer.name.startswith("crop1.tif") for layer in viewer.layers)
    widget.previous_image()
    assert widget.current.source == "committed"
    np.testing.assert_array_equal(_layer(viewer, "labels").data, committed)


def test_shortcuts_and_review(panel, crops):
    from napari.utils.key_bindings import KeyBinding

    viewer, widget = panel
    keys = {key: KeyBinding.from_str(key) for key in ("Alt-N", "Alt-P", "Alt-C")}
    assert all(binding in viewer.keymap for binding in keys.values())
    widget.add_paths([str(crops)])
    viewer.keymap[keys["Alt-N"]](viewer)  # what pressing Alt-N runs
    assert widget.current_name == "crop0.tif"
    scores = {i: m.score for i, m in widget.current.objects.items()}
    widget.min_score.value = 0.5
    listed = widget.unsure_objects()
    assert listed and sorted(listed) == sorted(i for i, s in scores.items() if s < 0.5)
    assert [scores[i] for i in listed] == sorted(scores[i] for i in listed)  # lowest first
    widget.min_score.value = 0.0
    assert widget.unsure_objects() == []
    widget.min_score.value = 0.5
    widget.jump_to(listed[0])
    assert _layer(viewer, "labels").selected_label == listed[0]


def test_sorting_changes_the_next_order(panel, crops):
    _, widget = panel
    widget.add_paths([str(crops)])
    names = [widget.table.item(r, 1).text() for r in range(3)]
    assert names == ["crop0.tif", "crop1.tif", "crop2.tif"]  # the order they were added
    from qtpy.QtCore import Qt

    widget.table.sortItems(1, Qt.DescendingOrder)  # what a second click on "name" does
    names = [widget.table.item(r, 1).text() for r in range(3)]
    assert names == ["crop2.tif", "crop1.tif", "crop0.tif"]
    widget.next_image()
    assert widget.current_name == "crop2.tif"


CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import napari
    from napari_cellist._widgets._session import set_session
    from napari_cellist._widgets.project_panel import ProjectPanel
    from napari_cellist.session import LabellingSession

    project, folder = sys.argv[1], sys.argv[2]
    viewer = napari.Viewer(show=False)
    set_session(viewer, LabellingSession(project))
    panel = ProjectPanel(viewer, draft_interval_s=0.5)
    panel.add_paths([folder])
    panel.next_image()
    layer = next(l for l in viewer.layers if l.name.endswith("labels"))
    new_id = int(layer.data.max()) + 1
    r, c = (int(v) for v in np.argwhere(layer.data == 0)[0])
    layer.paint((r, c), new_id)
    print("PAINTED", panel.current.image_id, new_id, r, c, flush=True)
    while True:
        time.sleep(0.1)
    """
)


def _line_starting(child: subprocess.Popen, prefix: str, timeout_s: float) -> str:
    """The child's first stdout line starting with ``prefix`` ("" at EOF or after the timeout)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([child.stdout], [], [], deadline - time.monotonic())
        line = child.stdout.readline() if ready else ""
        if not line or line.startswith(prefix):
            return line
    return ""


def test_draft_survives_a_killed_viewer(panel, crops, tmp_path):
    env = {**os.environ, "CELLIST_SYNC": "1"}  # the X server of pytest-xvfb
    project = tmp_path / "project"
    log = tmp_path / "child.log"
    with open(log, "w") as errors:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(project), str(crops)],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env=env,
        )
    try:
        line = _line_starting(child, "PAINTED", timeout_s=120)
        assert line, log.read_text()[-3000:]
        image_id, new_id, r, c = (int(v) for v in line.split()[1:])
        time.sleep(2.0)  # > the 0.5 s draft interval plus one write
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert child.returncode == -signal.SIGKILL

    _, widget = panel  # a new viewer on the same project
    widget.refresh()
    assert widget.row_of(image_id)["status"] == "draft"
    widget.open(image_id)
    assert widget.current.source == "draft"
    assert _layer(widget.viewer, "labels").data[r, c] == new_id
    assert isinstance(ProjectStore(project).load_draft(image_id).snapshot.labels, np.ndarray)


def test_prediction_and_prefetch_run_in_workers(panel, crops, monkeypatch, qtbot):
    monkeypatch.delenv("CELLIST_SYNC")  # napari's worker threads, as for a user
    viewer, widget = panel
    widget.prefetch.value = False
    widget.add_paths([str(crops)])
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=60_000)
    ids = widget.order()
    assert widget.row_of(ids[0])["status"] == "new"  # nothing predicted ahead when off
    widget.prefetch.value = True
    widget.next_image()  # predicted in a worker, then shown
    qtbot.waitUntil(lambda: widget.current is not None, timeout=60_000)
    assert widget.current.image_id == ids[0] and widget.current.source == "prediction"
    qtbot.waitUntil(lambda: not widget.prefetcher.busy, timeout=60_000)
    assert widget.row_of(ids[1])["status"] == "predicted"  # the next one, ahead
    widget.next_image()  # shown at once: no job needed
    assert widget.current.image_id == ids[1] and not widget.runner.busy


def test_the_panel_follows_the_sessions_project(panel, crops, tmp_path):
    _, widget = panel
    widget.add_paths([str(crops)])
    first_writer = widget.drafts
    widget.session.open_project(tmp_path / "other")  # e.g. Open project in Annotations
    widget.refresh()
    assert widget.table.rowCount() == 0
    assert widget.drafts is not first_writer  # drafts now go to the other project


def test_commit_writes_and_encodes_in_a_worker_with_progress(panel, crops, monkeypatch, qtbot):
    import threading

    monkeypatch.delenv("CELLIST_SYNC")  # napari's worker threads, as for a user
    viewer, widget = panel
    widget.prefetch.value = False
    widget.add_paths([str(crops)])
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=60_000)
    widget.next_image()
    qtbot.waitUntil(lambda: widget.current is not None and not widget.runner.busy, timeout=60_000)
    image_id, n = widget.current.image_id, len(widget.link.index)
    threads, messages = {}, []
    store = widget.session.store

    def spy(name, fn):
        def wrapped(*args, **kwargs):
            threads[name] = threading.current_thread()
            return fn(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(widget.drafts, "flush", spy("flush", widget.drafts.flush))
    monkeypatch.setattr(store, "commit_draft", spy("commit", store.commit_draft))
    on_progress = type(widget.runner)._on_progress
    monkeypatch.setattr(  # on the class: magicgui containers refuse attribute deletes
        type(widget.runner),
        "_on_progress",
        lambda runner, p, cb: (
            runner is widget.runner and messages.append(p.message),  # not the retraining's
            on_progress(runner, p, cb),
        ),
    )
    widget.commit()
    assert widget.runner.busy  # returned at once, the work is in the worker
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=60_000)
    assert set(threads) == {"flush", "commit"}
    assert all(t is not threading.main_thread() for t in threads.values())
    assert any(f"encoding and committing {n} objects" in m for m in messages)
    assert messages[-1] == "committed"
    assert widget.row_of(image_id)["status"] == "committed"
    assert store.load_draft(image_id) is None
