"""The Project panel's learning loop in a real napari viewer: a commit retrains the threshold
model in the background on real annotated crops while the user goes on labelling, the decision
is shown, the score plot has a point per version, predictions use the current version; Next
most useful opens the top-ranked image; the corrections table matches the store."""

from __future__ import annotations

import threading
from importlib.resources import files

import numpy as np
import pytest
import tifffile

#: (row, col) of the 128 x 128 crops of the packaged DSB2018 nuclei image: annotated, new
ANNOTATED = [(0, 0), (0, 256), (256, 0), (384, 384)]
NEW = [(128, 128), (128, 384), (300, 300)]


@pytest.fixture
def folders(tmp_path):
    """``labelled/`` (images/ + masks/: committed when added) and ``new/`` (no annotations),
    128 x 128 crops of the packaged DSB2018 nuclei image and its truth."""
    sample = files("napari_cellist") / "sample_data"
    image = tifffile.imread(str(sample / "nuclei_dsb2018.tif"))
    truth = tifffile.imread(str(sample / "nuclei_dsb2018_masks.tif"))
    labelled, new = tmp_path / "labelled", tmp_path / "new"
    for sub in ("images", "masks"):
        (labelled / sub).mkdir(parents=True)
    new.mkdir()
    for k, (r, c) in enumerate(ANNOTATED):
        crop = (slice(r, r + 128), slice(c, c + 128))
        tifffile.imwrite(labelled / "images" / f"truth{k}.tif", np.ascontiguousarray(image[crop]))
        tifffile.imwrite(labelled / "masks" / f"truth{k}.tif", np.ascontiguousarray(truth[crop]))
    for k, (r, c) in enumerate(NEW):
        crop = np.ascontiguousarray(image[r : r + 128, c : c + 128])
        tifffile.imwrite(new / f"new{k}.tif", crop)
    return labelled, new


@pytest.fixture
def panel(make_napari_viewer, tmp_path, dock, monkeypatch):
    """The Project panel from the Plugins menu on a fresh project; jobs in napari's workers."""
    from napari_cellist._widgets._session import set_session
    from napari_cellist.session import LabellingSession

    monkeypatch.delenv("CELLIST_SYNC", raising=False)
    viewer = make_napari_viewer()
    set_session(viewer, LabellingSession(tmp_path / "project"))
    widget = dock(viewer, "Project")
    widget.learning.minutes.value = 0.05  # 3 s: a tiny budget
    yield viewer, widget
    for runner in (widget.learning.runner, widget.prefetcher, widget.runner, widget.ranker):
        runner.wait(300_000)
    widget.drafts.close()


def _idle(widget, qtbot, timeout=120_000):
    qtbot.waitUntil(lambda: not widget.runner.busy and not widget.prefetcher.busy, timeout=timeout)


def _add(widget, qtbot, *paths):
    widget.add_paths([str(p) for p in paths])
    _idle(widget, qtbot)


def _open_new(widget, qtbot, image_id):
    widget.open(image_id)
    qtbot.waitUntil(
        lambda: widget.current is not None and widget.current.image_id == image_id,
        timeout=120_000,
    )
    _idle(widget, qtbot)


def _paint_one(widget):
    layer = widget.link.labels_layer
    new_id = int(layer.data.max()) + 1
    r, c = (int(v) for v in np.argwhere(layer.data == 0)[0])
    layer.brush_size = 5
    layer.paint((r, c), new_id)


def _ids_by_name(store):
    return {record.name: record.image_id for record in store.image_statuses()}


def test_a_commit_retrains_in_the_background_while_labelling_goes_on(
    panel, folders, notifications, qtbot, monkeypatch, request
):
    import napari_cellist._widgets.project_process as process
    import napari_cellist.learning_loop as loop

    viewer, widget = panel
    store = widget.session.store
    _add(widget, qtbot, *folders)
    ids = _ids_by_name(store)
    calls, threads, jobs, release = [], [], [], threading.Event()
    real_job = process.retrain_job

    def held_job(store_, settings):  # the real retraining job, held until the test lets go
        job = real_job(store_, settings)
        jobs.append(job)

        def held():
            calls.append(settings)
            threads.append(threading.current_thread())
            release.wait(120)
            return (yield from job())

        return held

    monkeypatch.setattr(process, "retrain_job", held_job)
    request.addfinalizer(release.set)  # before the panel's teardown waits for the runner

    _open_new(widget, qtbot, ids["new0.tif"])
    _paint_one(widget)
    widget.commit()
    _idle(widget, qtbot)
    assert widget.learning.runner.busy
    qtbot.waitUntil(lambda: len(calls) == 1, timeout=10_000)  # the worker entered retrain()
    assert threads[0] is not threading.main_thread()
    settings = calls[0]
    assert (settings.model, settings.every_n_commits, settings.minutes) == ("threshold", 1, 0.05)
    assert settings.weight_by_corrections is True

    # while it retrains: open the next image (predicted in the panel's own runner), edit, commit
    _open_new(widget, qtbot, ids["new1.tif"])
    assert widget.current.source == "prediction"
    _paint_one(widget)
    widget.commit()
    _idle(widget, qtbot)
    assert widget.row_of(ids["new1.tif"])["status"] == "committed"
    widget.retrain()  # the public action: not started twice
    assert len(calls) == 1 and "not started twice" in widget.learning.decision.value

    release.set()
    qtbot.waitUntil(lambda: widget.learning.outcome is not None, timeout=120_000)
    outcome = widget.learning.outcome
    verdict = "accepted" if outcome.accepted else "kept back"
    assert verdict in widget.learning.decision.value
    assert outcome.reason and any(outcome.reason in m for m in notifications.infos)
    # it ran in a child process (no GIL shared with the viewer), which ended
    assert isinstance(jobs[0], process.ChildRetraining) and jobs[0].child.returncode == 0
    assert outcome.version == store.model_version(outcome.version.id)
    # the commit made meanwhile was remembered: the loop looked again when the first ended
    # (and retrained again if that commit made it due), one retraining at a time
    widget.learning.runner.wait(120_000)
    assert len(calls) in (1, 2)
    assert notifications.errors == []

    versions = store.model_versions("threshold")
    assert versions, "a retraining records a version, accepted or not"
    history = loop.version_history(store, "threshold")
    assert len(history) == len(versions)
    plot = widget.learning.plot
    scored = [p for p in history if p.score is not None]
    assert len(plot.points) == len(scored)
    drawn = plot.drawn()
    assert drawn.get("accepted", 0) == sum(p.accepted for p in scored)
    assert drawn.get("kept back", 0) == sum(not p.accepted for p in scored)

    # predictions now use the current version (not merely the latest)
    current = store.current_model_version("threshold")
    _open_new(widget, qtbot, ids["new2.tif"])
    expected = "threshold" if current is None else f"threshold v{current.id}"
    assert widget.row_of(ids["new2.tif"])["model"] == expected


def _predict_all(widget, qtbot, names):
    """Predict the named images (in the prefetcher, as ahead of Next) and rank them."""
    from napari_cellist._widgets.project_prediction import prediction_job

    store = widget.session.store
    ids = _ids_by_name(store)
    for name in names:
        widget.prefetcher.run(
            prediction_job(store, ids[name], "threshold", "none"), lambda _r: None
        )
        widget.prefetcher.wait(120_000)
    widget.refresh()
    widget.ranker.wait(60_000)


def test_next_most_useful_opens_the_top_ranked_image(panel, folders, qtbot):
    from napari.utils.key_bindings import KeyBinding

    from napari_cellist.what_next import rank_images

    viewer, widget = panel
    widget.prefetch.value = False
    _add(widget, qtbot, *folders)
    _predict_all(widget, qtbot, [f"new{k}.tif" for k in range(3)])
    ranking = rank_images(widget.session.store)
    assert [u.predicted for u in ranking] == [True] * 3
    assert {u.name for u in ranking} == {f"new{k}.tif" for k in range(3)}
    # the usefulness column (filled in the background) orders the table, most useful first
    widget.images.sort_by_usefulness()
    assert widget.order()[:3] == [u.image_id for u in ranking]
    for u in ranking:
        assert widget.row_of(u.image_id)["usefulness"] == f"{u.score:.2f}"
    committed = [i for i in widget.order() if widget.row_of(i)["status"] == "committed"]
    assert len(committed) == 4 and all(widget.row_of(i)["usefulness"] == "-" for i in committed)
    # what pressing Alt-U runs
    viewer.keymap[KeyBinding.from_str("Alt-U")](viewer)
    qtbot.waitUntil(lambda: widget.current is not None, timeout=120_000)
    assert widget.current.image_id == ranking[0].image_id
    assert ranking[0].name in widget.message.value
    _idle(widget, qtbot)
    # the shown image is not offered again: the next in the ranking is
    widget.next_most_useful()
    qtbot.waitUntil(
        lambda: widget.current is not None and widget.current.image_id == ranking[1].image_id,
        timeout=120_000,
    )


def test_review_list_is_least_certain_first(panel, folders, qtbot):
    from napari_cellist.what_next import uncertain_first

    _, widget = panel
    _add(widget, qtbot, folders[1])
    _open_new(widget, qtbot, widget.order()[0])
    widget.min_score.value = 1.0  # every object with a score under 1
    objects = widget.current.objects
    unsure = {i: m for i, m in objects.items() if m.score < 1.0}
    assert unsure
    assert widget.unsure_objects() == uncertain_first(unsure)


def test_corrections_table_matches_the_store(panel, folders, qtbot):
    from napari_cellist.learning_loop import corrections_by_image

    _, widget = panel
    widget.learning.auto.value = False  # no retraining: only the table
    store = widget.session.store
    _add(widget, qtbot, folders[1])
    image_id = widget.order()[0]
    _open_new(widget, qtbot, image_id)
    _paint_one(widget)
    _paint_one(widget)
    widget.commit()
    _idle(widget, qtbot)
    assert not widget.learning.runner.busy  # the loop was off
    rows = widget.learning.corrections.rows()
    expected = corrections_by_image(store)
    assert [(r["image"], int(r["total"])) for r in rows] == [(e.name, e.total) for e in expected]
    row = next(r for r in rows if r["image"] == store.image(image_id).name)
    logged = store.corrections(image_id)
    assert int(row["added"]) == sum(c.kind == "added" for c in logged) == 2
    assert int(row["total"]) == len(logged)
    assert row["model"] == widget.row_of(image_id)["model"]


def test_a_retraining_in_a_child_process(folders, tmp_path):
    from napari_cellist._widgets.project_process import ChildRetraining, retrain_job
    from napari_cellist.learning_loop import LoopSettings, version_history
    from napari_cellist.project_queue import ProjectQueue
    from napari_cellist.store import ProjectStore
    from napari_cellist.types import Progress

    store = ProjectStore(tmp_path / "child.sqlite", project="cells")
    for _ in ProjectQueue(store).add([str(folders[0])]):
        pass
    job = retrain_job(store, LoopSettings("threshold", minutes=0.05))
    assert isinstance(job, ChildRetraining)
    gen, reports = job(), []
    while True:
        try:
            reports.append(next(gen))
        except StopIteration as stop:
            outcome = stop.value
            break
    progress = [p for p in reports if isinstance(p, Progress)]
    assert progress and any(p.message.startswith("train") for p in progress)
    assert job.child.returncode == 0
    assert outcome.accepted and outcome.version.name == "threshold"
    assert [p.version_id for p in version_history(store, "threshold")] == [outcome.version.id]
    assert outcome.held_out  # 4 committed images: one held out

    failing = retrain_job(store, LoopSettings("sam"))  # not trainable: the child's ValueError
    with pytest.raises(ValueError, match="cannot be trained"):
        for _ in failing():
            pass
    store.close()


def test_stop_ends_the_retraining_process(panel, folders, qtbot):
    _, widget = panel
    _add(widget, qtbot, folders[0])
    widget.learning.minutes.value = 5.0
    widget.retrain()  # the public action ("Retrain now")
    learning = widget.learning
    qtbot.waitUntil(lambda: getattr(learning.job, "child", None) is not None, timeout=60_000)
    learning.runner.stop()
    learning.runner.wait(60_000)
    assert learning.job.child.poll() is not None  # the child process was ended
    assert "stopped" in learning.decision.value and learning.outcome is None
    assert widget.session.store.model_versions("threshold") == []  # nothing recorded
