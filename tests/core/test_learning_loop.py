"""The learning loop: retraining that never makes things worse, on real nuclei (DSB 2018 crops)."""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass, replace

import numpy as np
import pytest

from napari_cellist.learning_loop import (
    LoopSettings,
    commits_since_last_training,
    committed_in_order,
    correction_weights,
    corrections_by_image,
    due_for_retraining,
    held_out_scores,
    loop_train_params,
    retrain,
    split_held_out,
    version_history,
)
from napari_cellist.loop.training import fit_within
from napari_cellist.models import REGISTRY, ModelEntry
from napari_cellist.models.threshold import ThresholdModel
from napari_cellist.progress import drain
from napari_cellist.store import ProjectStore
from napari_cellist.types import FitResult, ObjectMeta, Progress

#: A quick threshold search (6 parameter sets) so that a retraining takes about a second.
QUICK = {"max_candidates": 6}
CROPS = [(slice(r, r + 256), slice(c, c + 256)) for r in (0, 256) for c in (0, 256)]


@pytest.fixture
def project(tmp_path, dsb):
    """A project with the four 256x256 crops of the DSB image; the first three committed
    (imported masks: nothing corrected), the fourth new."""
    image, mask = dsb
    store = ProjectStore(tmp_path / "project")
    ids = [store.add_image(image[c].copy(), name=f"crop{k}.tif").id for k, c in enumerate(CROPS)]
    for k in range(3):
        store.commit_annotations(ids[k], mask[CROPS[k]], previous=mask[CROPS[k]])
    yield store, ids, mask
    store.close()


class Forgetful(ThresholdModel):
    """The threshold model, except that after fitting it forgets the diameter when told to
    (``forget``): a retraining that makes the model worse, whatever the search found."""

    name = "forgetful"
    forget = False

    def fit_iter(self, samples, train_params=None):
        result = yield from super().fit_iter(samples, train_params)
        if self.forget:
            self.params = replace(self.params, diameter=5.0)
        return result


@pytest.fixture
def forgetful(monkeypatch):
    """``"forgetful"`` in the model registry (for this test only)."""
    entry = ModelEntry(
        "forgetful",
        f"{__name__}:Forgetful",
        "base",
        "threshold that can forget its diameter",
        params="threshold.params:ThresholdParams",
        train_params="threshold.params:ThresholdFitParams",
        checkpoint_suffix=".json",
    )
    monkeypatch.setitem(REGISTRY, "forgetful", entry)
    return Forgetful


def settings(tmp_path, model: str = "threshold", **train_params) -> LoopSettings:
    return LoopSettings(
        model,
        minutes=1.0,
        train_params=train_params or QUICK,
        checkpoint_dir=str(tmp_path / "ckpt"),
    )


def test_held_out_split_is_by_commit_order_and_stable():
    ids = list(range(10, 18))
    train, held = split_held_out(ids, 0.25)
    assert held == [11, 15] and train == [10, 12, 13, 14, 16, 17]
    # more commits never move an image out of the held-out set
    assert set(held) <= set(split_held_out(ids + [18, 19, 20], 0.25)[1])
    assert split_held_out([10, 11], 0.25) == ([10], [11])  # at least one from 2 images
    assert split_held_out([10], 0.25) == ([10], [])
    assert split_held_out(ids, 0.0) == (ids, [])
    assert split_held_out(ids, 0.5)[1] == [11, 13, 15, 17]


def test_settings_refuse_bad_values():
    with pytest.raises(ValueError, match="every_n_commits"):
        LoopSettings("threshold", every_n_commits=0)
    with pytest.raises(ValueError, match="minutes"):
        LoopSettings("threshold", minutes=0)
    with pytest.raises(ValueError, match="holdout_fraction"):
        LoopSettings("threshold", holdout_fraction=1.0)


def test_first_retraining_is_accepted_and_never_trains_on_held_out(project, tmp_path):
    store, ids, _ = project
    assert committed_in_order(store) == ids[:3]
    assert due_for_retraining(store, settings(tmp_path))
    outcome = drain(retrain(store, settings(tmp_path)))
    assert outcome.accepted and outcome.current_score is None
    assert outcome.held_out == ("crop1.tif",)  # the 2nd committed image
    version = outcome.version
    assert set(version.data_used) == {"crop0.tif", "crop2.tif"}
    assert not set(version.data_used) & set(outcome.held_out)
    loop = version.metrics["loop"]
    assert loop["accepted"] is True and loop["held_out"] == ["crop1.tif"]
    assert loop["score"] == pytest.approx(outcome.new_score) and 0.3 < outcome.new_score <= 1
    assert loop["last_commit_id"] == store.commits()[-1].id
    assert version.parent_id is None and version.checkpoint_sha256 is not None
    assert store.current_model_version("threshold") == version
    assert not due_for_retraining(store, settings(tmp_path))
    assert commits_since_last_training(store, "threshold") == 0


def test_tie_is_accepted_and_starts_from_the_current_version(project, tmp_path):
    store, _, _ = project
    first = drain(retrain(store, settings(tmp_path))).version
    # one candidate = the current parameters only: the same model, the same score
    second = drain(retrain(store, settings(tmp_path, max_candidates=1)))
    assert second.accepted and second.new_score == second.current_score
    assert second.version.parent_id == first.id
    assert second.version.params == first.params  # warm start: the parent's parameters
    assert "replaced" in second.reason
    assert store.current_model_version("threshold").id == second.version.id


def test_worse_version_is_rejected_kept_and_not_current(project, tmp_path, forgetful, monkeypatch):
    store, ids, mask = project
    good = drain(retrain(store, settings(tmp_path, "forgetful"))).version
    monkeypatch.setattr(forgetful, "forget", True)
    worse = drain(retrain(store, settings(tmp_path, "forgetful")))
    monkeypatch.setattr(forgetful, "forget", False)
    assert not worse.accepted
    assert worse.new_score < worse.current_score == pytest.approx(good.metrics["loop"]["score"])
    assert f"kept v{good.id}" in worse.reason
    assert store.latest_model_version("forgetful").id == worse.version.id  # kept for the record
    assert worse.version.metrics["loop"]["accepted"] is False
    assert worse.version.params["diameter"] == 5.0
    assert store.current_model_version("forgetful").id == good.id
    # the next retraining starts from the good version, not the rejected one
    store.commit_annotations(ids[3], mask[CROPS[3]], previous=mask[CROPS[3]])
    assert commits_since_last_training(store, "forgetful") == 1
    again = drain(retrain(store, settings(tmp_path, "forgetful", max_candidates=1)))
    assert again.version.parent_id == good.id
    assert again.version.params == good.params  # from the good version's parameters
    history = version_history(store, "forgetful")
    assert [p.version_id for p in history] == [good.id, worse.version.id, again.version.id]
    assert [p.accepted for p in history] == [True, False, again.accepted]
    assert history[1].score == pytest.approx(worse.new_score)
    assert [p.n_train_images for p in history] == [2, 2, 3]
    assert history[0].created_at <= history[1].created_at <= history[2].created_at


def test_held_out_scores_of_every_version(project, tmp_path, forgetful, monkeypatch):
    store, _, _ = project
    loop = settings(tmp_path, "forgetful")
    assert drain(held_out_scores(store, loop)) == []  # no version yet
    good = drain(retrain(store, loop))
    monkeypatch.setattr(forgetful, "forget", True)
    worse = drain(retrain(store, loop))
    reports = []
    rows = drain(held_out_scores(store, loop), reports.append)
    assert [r["label"] for r in rows] == [f"v{good.version.id}", f"v{worse.version.id}"]
    assert [r["accepted"] for r in rows] == [True, False]
    assert rows[0]["ap50"] == pytest.approx(good.new_score)
    assert rows[1]["ap50"] == pytest.approx(worse.new_score)
    assert rows[0]["edits_per_100"] == pytest.approx(good.version.metrics["loop"]["edits_per_100"])
    assert set(rows[0]["per_image"]) == {"crop1.tif"} and len(reports) == 2
    only = drain(held_out_scores(store, loop, [worse.version.id]))
    assert [r["label"] for r in only] == [f"v{worse.version.id}"]


def test_points_only_commits_are_not_scored(project, tmp_path):
    store, ids, _ = project
    points = np.array([[20.0, 30.0], [100.0, 120.0]])
    store.commit_annotations(ids[1], np.zeros((256, 256), np.int32), points=points)
    outcome = drain(retrain(store, settings(tmp_path)))
    assert outcome.held_out == () and outcome.accepted  # nothing scorable is held out
    assert "No held-out image" in outcome.reason or "First version" in outcome.reason
    assert set(outcome.version.data_used) == {"crop0.tif", "crop2.tif"}  # threshold: outlines
    assert outcome.version.metrics["loop"]["score"] is None
    with pytest.raises(ValueError, match="read-only"):
        with ProjectStore(tmp_path / "project", read_only=True) as reader:
            drain(retrain(reader, settings(tmp_path)))


def test_versions_recorded_outside_the_loop_count_as_accepted(project):
    store, _, _ = project
    record = store.add_model_version("threshold", {"method": "otsu"}, metrics={"ap50": 0.5})
    assert store.current_model_version("threshold") == record
    assert version_history(store, "threshold")[0].accepted
    assert version_history(store, "threshold")[0].score is None
    assert store.current_model_version("air") is None


def test_correction_weights_come_from_the_corrections_log(project, tmp_path):
    store, ids, mask = project
    crop = mask[CROPS[3]]
    prediction = crop.copy()
    prediction[np.isin(prediction, np.unique(crop)[1:11])] = 0  # the model missed 10 objects
    store.commit_annotations(ids[3], crop, previous=prediction)
    n_objects = len(np.unique(crop)) - 1
    logged = [c for c in store.corrections() if c.image_id == ids[3]]
    assert len(logged) == 10 and {c.kind for c in logged} == {"added"}
    weights = correction_weights(store, [ids[0], ids[3]])
    assert weights == {ids[0]: 1, ids[3]: 1 + round(2 * 10 / n_objects)} and weights[ids[3]] > 1
    outcome = drain(retrain(store, settings(tmp_path)))
    assert outcome.version.metrics["loop"]["weights"]["crop3.tif"] == weights[ids[3]]
    assert outcome.version.metrics["loop"]["weights"]["crop0.tif"] == 1
    plain = LoopSettings("threshold", weight_by_corrections=False, train_params=QUICK)
    unweighted = drain(retrain(store, plain))
    assert set(unweighted.version.metrics["loop"]["weights"].values()) == {1}


def test_corrections_by_image_names_the_model_version_corrected(project):
    store, ids, mask = project
    version = store.add_model_version("threshold", {})
    crop = mask[CROPS[3]]
    prediction = crop.copy()
    prediction[prediction == np.unique(crop)[1]] = 0  # one object missed
    a, b = np.unique(crop)[2:4]
    prediction[prediction == b] = a  # two objects merged by the model
    objects = {int(i): ObjectMeta(int(i), score=0.9) for i in np.unique(prediction)[1:]}
    store.save_prediction(ids[3], prediction, objects, "threshold", version.id)
    store.commit_annotations(ids[3], crop, previous=prediction)
    rows = corrections_by_image(store)
    assert [r.image_id for r in rows] == ids  # one per commit, oldest first
    imported, corrected = rows[0], rows[-1]
    assert imported.total == 0 and imported.model_name is None
    assert (corrected.model_name, corrected.model_version) == ("threshold", version.id)
    assert corrected.counts["added"] == 1 and corrected.counts["split"] == 1
    assert corrected.total == sum(corrected.counts.values()) == 2
    assert corrected.n_objects == len(np.unique(crop)) - 1
    assert corrected.per_object == pytest.approx(2 / corrected.n_objects)


def test_train_params_carry_the_budget_and_the_warm_start():
    threshold = loop_train_params(LoopSettings("threshold", minutes=3), warm=True)
    assert threshold.validation_fraction == 0.0
    air = loop_train_params(LoopSettings("air", minutes=3, train_params={"steps": 5}), warm=True)
    fields = set(vars(air))
    if "minutes" in fields:  # helper G's budget field, when present
        assert air.minutes == 3
    else:
        assert air.time_limit_s == 180.0
    assert air.steps == 5
    warm = loop_train_params(LoopSettings("cellpose", minutes=3), warm=True)
    cold = loop_train_params(LoopSettings("cellpose", minutes=3), warm=False)
    assert (warm.start_from, cold.start_from) == ("current", "auto")
    assert warm.validation_fraction == 0.0  # the loop holds out its own images


@dataclass(frozen=True)
class _NoTimeField:
    """Training parameters without a time field."""

    steps: int = 10


class _Endless:
    """A model whose training never ends by itself (to test the loop's budget)."""

    name = "endless"

    def __init__(self) -> None:
        self.params = _NoTimeField()
        self.closed = False

    def fit_iter(self, samples, train_params) -> Generator[Progress, None, FitResult]:
        step = 0
        try:
            while True:
                step += 1
                time.sleep(0.01)
                yield Progress(step, 0, "step", loss=1.0 / step)
        finally:
            self.closed = True


def test_training_stops_when_the_budget_is_spent():
    model = _Endless()
    budget = LoopSettings("threshold", minutes=0.2 / 60)  # 0.2 s
    started = time.monotonic()
    reports = []
    result = drain(fit_within(model, [], _NoTimeField(), budget), reports.append)
    assert model.closed and result.metrics == {"stopped": 1.0}
    assert result.params == {"steps": 10}
    assert 0.2 <= time.monotonic() - started < 5
    assert reports and reports[0].message == "train: step"
