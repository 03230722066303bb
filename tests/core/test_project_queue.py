"""The project queue: adding files and annotated folders, the status table, order, open, prefetch."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_cellist.io.readers import ImageReadError
from napari_cellist.progress import drain
from napari_cellist.project_cli import status_table
from napari_cellist.project_queue import OPEN_ORDER, ProjectQueue
from napari_cellist.store import DraftSnapshot, ProjectStore
from napari_cellist.types import ObjectMeta


def blobs(seed: int, n: int = 3) -> np.ndarray:
    labels = np.zeros((32, 40), np.int32)
    for k in range(1, n + 1):
        r, c = 2 + 9 * (k - 1), 3 + seed % 5
        labels[r : r + 6, c : c + 8] = k
    return labels


def image(seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((32, 40)) * 1000).astype(np.uint16)


@pytest.fixture
def folders(tmp_path):
    """``annotated/`` (images/ + masks/, one image without a mask) and ``plain/`` images."""
    (tmp_path / "annotated" / "images").mkdir(parents=True)
    (tmp_path / "annotated" / "masks").mkdir()
    (tmp_path / "plain").mkdir()
    for k in range(3):
        tifffile.imwrite(tmp_path / "annotated" / "images" / f"a{k}.tif", image(k))
        if k < 2:
            tifffile.imwrite(tmp_path / "annotated" / "masks" / f"a{k}.tif", blobs(k, k + 2))
    for k in range(3, 5):
        tifffile.imwrite(tmp_path / "plain" / f"p{k}.tif", image(k))
    return tmp_path


def test_add_annotated_and_plain_folders(folders, tmp_path):
    with ProjectStore(tmp_path / "project") as store:
        queue = ProjectQueue(store)
        steps = []
        summary = drain(queue.add([folders / "annotated", folders / "plain"]), steps.append)
        assert [p.step for p in steps] == [1, 2, 3, 4, 5] and steps[0].total == 5
        assert (summary.added, summary.known, summary.committed, summary.failed) == (5, 0, 2, ())
        rows = queue.rows()
        assert [r.name for r in rows] == ["a0.tif", "a1.tif", "a2.tif", "p3.tif", "p4.tif"]
        assert [r.status for r in rows] == ["committed", "committed", "new", "new", "new"]
        assert [r.n_objects for r in rows[:3]] == [2, 3, None]
        assert [r.n_corrections for r in rows[:2]] == [0, 0]  # imported masks: no corrections
        np.testing.assert_array_equal(store.load_annotations(rows[1].image_id)[0], blobs(1, 3))
        again = drain(queue.add([folders / "annotated" / "images" / "a0.tif"]))
        assert (again.added, again.known, again.committed) == (0, 1, 0)  # nothing twice
        assert len(store.commits(rows[0].image_id)) == 1


def test_a_bad_file_is_reported_and_the_others_added(folders, tmp_path):
    (folders / "plain" / "broken.tif").write_bytes(b"not a tiff")
    with ProjectStore(tmp_path / "project") as store:
        summary = drain(ProjectQueue(store).add([folders / "plain"]))
    assert summary.added == 2 and len(summary.failed) == 1
    assert summary.failed[0][0].endswith("broken.tif") and summary.failed[0][1]
    with ProjectStore(tmp_path / "project") as store, pytest.raises(ImageReadError):
        drain(ProjectQueue(store).add([tmp_path / "missing"]))


@pytest.fixture
def project(tmp_path):
    """Four images: new, predicted, draft, committed (ids 1..4)."""
    with ProjectStore(tmp_path / "project") as store:
        ids = [store.add_image(image(k), name=f"im{k}").id for k in range(4)]
        version = store.add_model_version("threshold", {}).id
        objects = {i: ObjectMeta(i, score=0.3, class_name="cell") for i in (1, 2, 3)}
        for i in ids[1:]:
            store.save_prediction(i, blobs(i), objects, "threshold", version)
        store.save_draft(ids[2], DraftSnapshot(blobs(9, 2), classes={2: "mitosis"}, n_edits=5))
        store.commit_annotations(
            ids[3], blobs(7, 1), polygons={1: np.array([[2, 3], [2, 9], [7, 9.0]])}
        )
        yield store, ids


def test_open_prefers_draft_then_commit_then_prediction(project):
    store, (new, predicted, drafted, committed) = project
    queue = ProjectQueue(store)
    assert OPEN_ORDER == ("draft", "committed", "prediction", "none")
    opened = queue.open_image(drafted)
    assert opened.source == "draft" and opened.n_edits == 5
    np.testing.assert_array_equal(opened.labels, blobs(9, 2))
    assert opened.objects[2].class_name == "mitosis" and opened.objects[1].score == 0.3
    opened = queue.open_image(committed)
    assert (
        opened.source == "committed"
        and opened.based_on_commit == store.current_commit(committed).id
    )
    np.testing.assert_array_equal(opened.labels, blobs(7, 1))
    assert set(opened.polygons) == {1} and opened.prediction_id is not None
    opened = queue.open_image(predicted)
    assert opened.source == "prediction" and opened.objects[3].class_name == "cell"
    assert opened.prediction_id == store.latest_prediction(predicted).id
    opened = queue.open_image(new)
    assert opened.source == "none" and opened.needs_prediction and opened.labels is None


def test_next_previous_and_prefetch(project):
    store, (new, predicted, drafted, committed) = project
    queue = ProjectQueue(store)
    assert queue.next_image(None) == new and queue.next_image(new) == predicted
    assert queue.next_image(committed) is None and queue.previous_image(new) is None
    assert queue.previous_image(drafted) == predicted
    order = [committed, new, drafted, predicted]  # the table sorted otherwise
    assert queue.next_image(new, order) == drafted and queue.previous_image(new, order) == committed
    assert queue.prefetch_candidate(None) == new
    assert queue.prefetch_candidate(new) is None  # every later image has something stored
    assert queue.prefetch_candidate(committed, order) == new


def test_rows_sort_and_table(project):
    store, (new, predicted, drafted, committed) = project
    queue = ProjectQueue(store)
    assert [r.status for r in queue.rows("status")] == ["draft", "committed", "predicted", "new"]
    assert [r.image_id for r in queue.rows("order", descending=True)] == [
        committed,
        drafted,
        predicted,
        new,
    ]
    assert queue.rows("objects")[-1].image_id == new  # no objects: last
    assert queue.rows("corrections", descending=True)[0].image_id == drafted
    assert queue.rows("last_change", descending=True)[0].image_id == committed
    with pytest.raises(ValueError, match="Cannot sort by 'size'"):
        queue.rows("size")
    lines = status_table(queue.rows())
    assert lines[0].split()[:2] == ["name", "status"]
    assert [line.split()[:2] for line in lines[1:]] == [
        ["im0", "new"],
        ["im1", "predicted"],
        ["im2", "draft"],
        ["im3", "committed"],
    ]
    assert "threshold v1" in lines[2]


class Grow:
    """A stand-in refining model: every prompted object grows by one pixel row."""

    name = "grow"

    def refine_iter(self, image, prompts):
        from napari_cellist.types import Prediction, Progress

        yield Progress(1, 1, "refined")
        grown = prompts.copy()
        grown[1:][prompts[:-1] > 0] = prompts[:-1][prompts[:-1] > 0]
        return Prediction(grown, {i: ObjectMeta(i, score=0.9) for i in np.unique(grown) if i})


def test_predict_stores_the_prediction_with_its_model(tmp_path):
    from napari_cellist.models import build_model

    picture = np.zeros((48, 48), np.float32)
    picture[5:15, 5:15] = picture[25:40, 20:35] = 1.0
    with ProjectStore(tmp_path / "project") as store:
        image_id = store.add_image(picture, name="two").id
        queue = ProjectQueue(store)
        model = build_model("threshold", None, {})
        version = store.add_model_version("threshold", {}).id
        reports = []
        record = drain(queue.predict(image_id, model, model_version=version), reports.append)
        assert reports and all(r.message.startswith("threshold: ") for r in reports)
        assert (record.model_name, record.model_version, record.n_objects) == (
            "threshold",
            version,
            2,
        )
        row = queue.rows()[0]
        assert (row.status, row.model_name, row.model_version) == (
            "predicted",
            "threshold",
            version,
        )
        opened = queue.open_image(image_id)
        assert opened.source == "prediction" and opened.prediction_id == record.id
        refined = drain(queue.predict(image_id, model, refine=Grow()))
        assert refined.model_name == "threshold -> grow" and refined.model_version is None
        _, labels, objects = store.load_prediction(image_id)
        assert (labels > 0).sum() > (opened.labels > 0).sum() and objects[1].score == 0.9


def test_useful_order_and_next_most_useful(project):
    store, (new, predicted, drafted, committed) = project
    other = store.add_image(image(5), name="im5").id
    sure = {i: ObjectMeta(i, score=0.95) for i in (1, 2, 3)}
    store.save_prediction(other, blobs(5), sure, "threshold")
    queue = ProjectQueue(store)
    # predicted images by the model's doubt (0.3 scores first), then unpredicted, then the rest
    assert queue.useful_order() == [predicted, other, new, drafted, committed]
    assert queue.next_most_useful().image_id == predicted
    assert queue.next_most_useful(predicted).image_id == other
    order = queue.useful_order()
    assert queue.next_image(predicted, order) == other
    assert queue.prefetch_candidate(predicted, order) == new


def test_current_model_skips_versions_the_loop_rejected(tmp_path):
    from napari_cellist.models.threshold import ThresholdModel, ThresholdParams

    with ProjectStore(tmp_path / "project") as store:
        queue = ProjectQueue(store)
        model, version = queue.current_model("threshold")
        assert version is None and model.params == ThresholdParams()  # the base model
        good = tmp_path / "good.json"
        ThresholdModel(ThresholdParams(diameter=17.0)).save(good)
        bad = tmp_path / "bad.json"
        ThresholdModel(ThresholdParams(diameter=3.0)).save(bad)
        kept = store.add_model_version("threshold", {}, checkpoint_path=good)
        store.add_model_version(
            "threshold", {}, kept.id, metrics={"loop": {"accepted": False}}, checkpoint_path=bad
        )
        model, version = queue.current_model("threshold")
        assert version == kept.id and model.params.diameter == 17.0
        good.unlink()  # a checkpoint that is gone: the base model, said in the log
        model, version = queue.current_model("threshold")
        assert version is None and model.params.diameter is None
