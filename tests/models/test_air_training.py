"""AIR: targets from annotations, one-step smoke test, and a short real training that helps."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyro  # noqa: F401
import pytest
import tifffile
import torch as torch

from napari_cellist._sample_data import sample_image_path, sample_mask_path
from napari_cellist.metrics import best_iou_per_object, score_image  # noqa: E402
from napari_cellist.models.air import AirModel, AirParams, AirTrainParams, grid_offsets  # noqa: E402
from napari_cellist.models.air.modules import OFFSET_RANGE, Geometry  # noqa: E402
from napari_cellist.models.air.supervision import cell_targets, to_working  # noqa: E402
from napari_cellist.progress import drain  # noqa: E402
from napari_cellist.types import Prediction, Sample  # noqa: E402


def _read_dsb_crop():
    """The centre 256x256 of the packaged DSB2018 sample (same pixels as ../shared/data's)."""
    image = tifffile.imread(sample_image_path())[128:384, 128:384]
    labels = tifffile.imread(sample_mask_path())[128:384, 128:384].astype(np.int32)
    return image, labels


def test_targets_from_masks_and_points():
    geom = Geometry()
    labels = np.zeros((64, 64), np.int32)
    labels[10:20, 10:22] = 1  # centre (15, 16) -> cell (1, 2) at working scale 1
    image = (labels > 0).astype(np.float32)
    work = to_working(image, geom.diameter, geom)
    t = cell_targets(work, geom, labels)
    assert t.pres_known.all()  # a mask annotates the whole image
    assert t.pres_target.sum() == 1 and t.pres_target[1, 2, 0] == 1
    assert t.mask_known[1, 2, 0] and t.mask_target[1, 2, 0].sum() == labels.sum()
    dy, dx, size, aspect, angle = t.where_target[1, 2, 0]
    assert aspect < 0 and angle == 0  # wider than tall, not turned
    points = cell_targets(work, geom, None, np.array([[40.0, 41.0]]))
    assert points.pres_known.sum() == 1 and points.pres_target[5, 5, 0] == 1
    assert points.where_known[5, 5, 0].tolist() == [True, True, False, False, False]  # position
    assert not points.mask_known.any()


def test_one_step_smoke():
    image, labels = _read_dsb_crop()
    model = AirModel()
    result = drain(
        model.fit_iter(
            [Sample(image, labels, name="crop")],
            AirTrainParams(steps=1, batch_size=2, crop_size=64),
        )
    )
    assert result.history and np.isfinite(result.history[-1].loss)
    assert result.data_used == ("crop",) and "ap50" in result.metrics
    pred = model.predict(image)
    assert isinstance(pred, Prediction) and pred.labels.shape == image.shape
    assert pred.extras["reconstruction"].shape == image.shape
    assert set(np.unique(pred.labels)) - {0} == set(pred.objects)


@pytest.mark.slow
def test_short_training_improves_score():
    torch.manual_seed(0)
    image, labels = _read_dsb_crop()
    model = AirModel(AirParams(reconstruction=False))
    before = score_image(labels, model.predict(image).labels)
    drain(
        model.fit_iter(
            [Sample(image, labels)], AirTrainParams(steps=150, batch_size=4, crop_size=64, seed=0)
        )
    )
    after = score_image(labels, model.predict(image).labels)
    assert after.ap50 > before.ap50 + 0.2, (before, after)
    assert after.count_error < before.count_error


def test_labelled_and_unlabelled_images_train_together():
    """Committed images (masks) and open images without annotations in one run."""
    image, labels = _read_dsb_crop()
    samples = [
        Sample(image, labels, name="annotated"),
        Sample(image[::-1].copy(), None, name="open"),
    ]
    result = drain(
        AirModel().fit_iter(samples, AirTrainParams(steps=2, batch_size=2, crop_size=64))
    )
    assert all(np.isfinite(p.loss) for p in result.history)
    assert set(result.data_used) == {"annotated", "open"}


def test_border_mirror_trains_on_cut_objects_made_whole():
    """A nucleus cut by the top border is mirrored into one whole object, centred on the border."""
    labels = np.zeros((96, 96), np.int32)
    labels[0:6, 40:52] = 1  # the lower half of a 12 x 12 nucleus
    labels[50:62, 30:42] = 2  # a whole one
    image = (labels > 0).astype(np.float32)
    tp = AirTrainParams(border_mirror=0.5, diameter=12.0)
    plain, mirrored = (
        AirModel()._training_items([Sample(image, labels)], replace(tp, border_mirror=b))[0]
        for b in (0.0, 0.5)
    )
    margin = 6  # half of the annotations' median diameter, 11.7 px
    assert mirrored.work.shape[0] > plain.work.shape[0] + margin  # 2 x 6 px more, rescaled
    assert mirrored.targets.pres_target.sum() == plain.targets.pres_target.sum() == 2
    size = lambda item: np.sort(item.targets.where_target[..., 2][item.targets.pres_target > 0])  # noqa: E731
    assert size(mirrored)[0] > size(plain)[0]  # the cut nucleus's box is whole again
    with_points = AirModel()._training_items(
        [Sample(image, None, points=np.array([[56.0, 36.0]]))], tp
    )[0]
    assert with_points.targets.pres_target.sum() == 1  # the point moved with the mirrored image


def test_border_mirror_keeps_a_nucleus_near_the_border_an_object_of_its_own():
    """A nucleus 2 px from the border is not cut: its mirror image in the margin is a second object,
    not one annotation spanning both and centred in the gap between them."""
    labels = np.zeros((96, 96), np.int32)
    labels[2:14, 40:52] = 1
    image = (labels > 0).astype(np.float32)
    tp = AirTrainParams(border_mirror=0.5, diameter=12.0, scale_jitter=0.0)
    plain, mirrored = (
        AirModel()._training_items([Sample(image, labels)], replace(tp, border_mirror=b))[0].targets
        for b in (0.0, 0.5)
    )
    assert plain.pres_target.sum() == 1 and mirrored.pres_target.sum() == 2
    boxes = mirrored.where_target[mirrored.pres_target > 0]
    nucleus = boxes[np.argmax(boxes[:, 2])]  # (size, aspect) in tanh units, as z_where
    plain_box = plain.where_target[plain.pres_target > 0][0]
    assert nucleus[2] == pytest.approx(plain_box[2], abs=0.1)  # its own size (pixel rounding)
    assert abs(nucleus[3]) < 0.15  # and round: not stretched over the gap to its mirror image


def test_scale_jitter_trains_on_smaller_and_larger_copies_of_each_image():
    image, labels = _read_dsb_crop()
    plain = AirModel()._training_items(
        [Sample(image, labels)], AirTrainParams(scale_jitter=0.0, grid_jitter=1)
    )
    items = AirModel()._training_items(
        [Sample(image, labels)], AirTrainParams(scale_jitter=0.25, grid_jitter=1)
    )
    assert len(plain) == 1 and len(items) == 3
    heights = [it.work.shape[0] for it in items]
    assert heights[0] < plain[0].work.shape[0] == heights[1] < heights[2]
    sizes = [np.median(it.targets.where_target[..., 2][it.targets.pres_target > 0]) for it in items]
    assert sizes[0] < sizes[1] < sizes[2]  # boxes shrink and grow with the copies
    assert all(
        it.targets.pres_target.sum() > 0.8 * plain[0].targets.pres_target.sum() for it in items
    )


def test_grid_jitter_shows_each_object_at_new_positions_within_its_cell():
    offsets = grid_offsets(4, 7.5, np.random.default_rng(0))
    assert offsets[0] == (0, 0) and len(offsets) == 4
    assert all(0 <= v < 7 for pair in offsets for v in pair) and len(set(offsets)) > 1
    image, labels = _read_dsb_crop()
    tp = AirTrainParams(scale_jitter=0.0, grid_jitter=4, seed=1)
    items = AirModel()._training_items([Sample(image, labels)], tp)
    assert len(items) == 4
    counts = [int(it.targets.pres_target.sum()) for it in items]
    assert max(counts) - min(counts) <= 2  # the same objects (a few cut by the shifted border)

    def centres(item):  # working-pixel centres (rows, cols) of the supervised objects
        t, cell = item.targets, AirModel().net.geom.cell
        i, j, _ = np.nonzero(t.pres_target)
        ty, tx = t.where_target[i, j, 0, 0], t.where_target[i, j, 0, 1]
        return (i + 0.5 + OFFSET_RANGE * ty) * cell, (j + 0.5 + OFFSET_RANGE * tx) * cell

    phases = {tuple(np.round(np.median(np.mod(c, 8.0)), 1) for c in centres(it)) for it in items}
    assert len(phases) > 1  # objects sit at other sub-cell positions in the shifted copies


def test_learning_rate_cools_down_over_the_last_quarter():
    from napari_cellist.models.air.training import Schedule, learning_rate_factor

    schedule = Schedule(steps=1000)
    factors = [learning_rate_factor(step, schedule) for step in range(1, 1001)]
    assert factors[:750] == [1.0] * 750
    assert all(a >= b for a, b in zip(factors[750:], factors[751:], strict=False))
    assert factors[-1] == pytest.approx(0.05)


@pytest.mark.slow
def test_same_seed_same_model_whatever_the_random_state_before():
    image, labels = _read_dsb_crop()
    params = AirTrainParams(steps=3, batch_size=2, crop_size=32, seed=5, scale_jitter=0.0)

    def trained(burn: int) -> dict:
        torch.rand(burn)  # whatever ran before must not matter
        model = AirModel()
        drain(model.fit_iter([Sample(image, labels)], params))
        return model.net.state_dict()

    first, second = trained(1), trained(7)
    assert all(torch.equal(first[k], second[k]) for k in first)
    other = AirModel()
    drain(other.fit_iter([Sample(image, labels)], replace(params, seed=6)))
    assert not all(torch.equal(first[k], other.net.state_dict()[k]) for k in first)


@pytest.mark.slow
def test_a_stopped_training_counts_as_trained_and_is_fine_tuned_later():
    image, labels = _read_dsb_crop()
    model = AirModel()
    gen = model.fit_iter(
        [Sample(image, labels)], AirTrainParams(steps=40, batch_size=2, crop_size=32)
    )
    next(gen)  # "preparing images"
    next(gen)  # step 10
    gen.close()  # the user pressed Stop
    assert model.info["steps"] == 10
    weights = {k: v.clone() for k, v in model.net.state_dict().items()}
    gen = model.fit_iter(
        [Sample(image, labels)], AirTrainParams(steps=1, batch_size=2, crop_size=32)
    )
    next(gen)
    assert all(torch.equal(weights[k], v) for k, v in model.net.state_dict().items())  # not reset
    gen.close()


@pytest.mark.slow
def test_clicked_nuclei_are_learnt_by_a_model_trained_without_labels():
    """The correction loop with points: a model trained on an image alone, fine-tuned (resumed,
    not reset) with clicks on the nuclei it missed, then finds most of them."""
    image, labels = _read_dsb_crop()
    # without background flattening the short unsupervised run misses 6 nuclei (with it, 4):
    # enough misses to show what the clicks teach
    model = AirModel(AirParams(reconstruction=False, flatten_background=False))
    params = AirTrainParams(steps=60, batch_size=4, crop_size=64, seed=0)
    drain(model.fit_iter([Sample(image, None, name="open")], params))
    missed = _missed_ids(labels, model.predict(image).labels)
    assert len(missed) >= 5  # enough to learn from
    clicks = np.array([np.argwhere(labels == i).mean(axis=0) for i in missed])  # centroids
    drain(model.fit_iter([Sample(image, None, clicks, name="clicked")], params))
    still_missed = set(_missed_ids(labels, model.predict(image).labels)) & set(missed)
    assert model.info["steps"] == 120  # resumed: the first steps are kept
    assert len(still_missed) <= 0.5 * len(missed), (sorted(still_missed), missed)


def _missed_ids(truth: np.ndarray, pred: np.ndarray) -> list[int]:
    """Ids of the objects of ``truth`` that no object of ``pred`` matches with IoU >= 0.5."""
    ids, best = best_iou_per_object(truth, pred)
    return [int(i) for i in ids[best < 0.5]]


def test_time_budget_stops_training_and_completes_the_schedule():
    """``minutes`` stops training (steps are only an upper bound) and annealing and the
    learning-rate decay follow the budget, so a run cut by time ends fully annealed."""
    image, labels = _read_dsb_crop()
    params = AirTrainParams(minutes=0.05, steps=100_000, batch_size=2, crop_size=32)
    assert params.time_limit_s == 3.0 and AirTrainParams().minutes == 10.0
    model = AirModel()
    result = drain(model.fit_iter([Sample(image[:96, :96], labels[:96, :96])], params))
    last = result.history[-1]
    assert last.step < params.steps and last.total == last.step
    assert last.metrics["elapsed_s"] > 3.0
    assert all(p.metrics["elapsed_s"] <= 3.0 for p in result.history[1:-1])
    assert last.metrics["temperature"] == pytest.approx(params.temperature, rel=1e-3)
    assert last.metrics["prior_prob"] == pytest.approx(params.prior_prob, rel=1e-3)
    assert model.info["steps"] == last.step


def test_schedule_follows_the_larger_of_steps_and_time():
    from napari_cellist.models.air.training import Schedule, anneal_at, learning_rate_factor

    schedule = Schedule(steps=1000)
    assert anneal_at(10, schedule, progress=0.6).temperature == pytest.approx(0.3)
    assert anneal_at(10, schedule).temperature > 0.9  # by steps: barely started
    assert learning_rate_factor(10, schedule, progress=1.0) == pytest.approx(0.05)
    assert learning_rate_factor(10, schedule, progress=0.5) == 1.0


def test_crops_with_only_unlabelled_debris_are_trained_as_background_and_relit():
    """Crops of an annotated image that hold no annotated object are kept, with every slot
    known to be empty (debris there is learnt as background); intensity augmentation changes
    the image and its background alike and leaves the targets alone."""
    from napari_cellist.models.air.training import (
        Schedule,
        TrainingItem,
        _item_crop,
        _relit,
        make_batch,
    )

    geom = Geometry()
    labels = np.zeros((128, 128), np.int32)
    labels[4:16, 4:16] = 1  # one nucleus in a corner
    image = np.full((128, 128), 0.1, np.float32)
    image[labels > 0] = 1.0
    image[100:104, 100:104] = 1.0  # debris, not annotated
    work = to_working(image, geom.diameter, geom)
    item = TrainingItem(work, cell_targets(work, geom, labels), 1.0, "debris")
    schedule = Schedule(steps=1, batch_size=16, crop=32)
    batch = make_batch([item], schedule, geom.cell, np.random.default_rng(0))
    empty = batch.pres_target.sum(dim=1) == 0
    assert empty.any() and bool(batch.pres_known[empty].all())  # kept, known background
    crop = _item_crop(item, 32, geom.cell, np.random.default_rng(1))
    relit = _relit(dict(crop), 0.5, np.random.default_rng(2))
    assert relit["pres_target"] is crop["pres_target"]  # targets untouched
    assert not np.allclose(relit["image"], crop["image"])
    assert not np.allclose(relit["background"], crop["background"])


def test_flattened_background_is_used_in_training_and_prediction_and_stored(tmp_path, monkeypatch):
    import napari_cellist.models.air.model as air_model

    image, labels = _read_dsb_crop()
    ramp = image.astype(np.float32) + np.linspace(0, 3 * float(image.max()), 256)[None, :]
    calls = []
    real = air_model.flatten_background
    monkeypatch.setattr(
        air_model, "flatten_background", lambda im, d: calls.append(d) or real(im, d)
    )
    model = AirModel(AirParams(flatten_background=True, reconstruction=False))
    drain(
        model.fit_iter(
            [Sample(ramp, labels)],
            AirTrainParams(steps=2, batch_size=2, crop_size=32, scale_jitter=0.0),
        )
    )
    n_training = len(calls)
    assert n_training >= 1 and all(d > 0 for d in calls)
    assert model.predict(ramp).labels.shape == ramp.shape and len(calls) > n_training
    loaded = AirModel.load(model.save(tmp_path / "air.ckpt"))
    assert loaded.params.flatten_background
