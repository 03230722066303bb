import json
from dataclasses import replace

import numpy as np
import pytest

from napari_cellist.diameters import diameter_from_image
from napari_cellist.metrics import score_images
from napari_cellist.models import create_model, get_model_class
from napari_cellist.models.threshold import (
    ThresholdFitParams,
    ThresholdModel,
    ThresholdParams,
    segment,
)
from napari_cellist.progress import drain
from napari_cellist.types import Sample

# AP50 of a plain Otsu + watershed told the median diameter (../shared/data/README.md)
FLOORS = {
    "dsb2018_stardist": 0.55,
    "ctc_gowt1_hela": 0.48,
    "coelho2009_u2os": 0.69,
    "coelho2009_nih3t3": 0.59,
}


@pytest.mark.slow
@pytest.mark.parametrize("folder", sorted(FLOORS))
def test_default_threshold_beats_the_floor_with_estimated_diameter(folder, data_dir, read_pair):
    truths, preds = [], []
    for path in sorted((data_dir / folder / "images").glob("*.tif")):
        image, mask = read_pair(folder, path.name)
        labels = create_model("threshold").predict(image.astype(np.float32)).labels
        if path.name.startswith("hela"):  # HeLa border nuclei are not annotated
            from napari_cellist.metrics import exclude_border_objects

            mask, labels = exclude_border_objects(mask, labels, 20)
        truths.append(mask)
        preds.append(labels)
    assert score_images(truths, preds).ap50 >= FLOORS[folder]


def test_diameter_estimate_is_close(dsb):
    image, _ = dsb
    assert 17 < diameter_from_image(image.astype(np.float32)) < 32  # median truth: 23.7 px


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_dtypes_give_the_same_objects(dsb_crop, dtype):
    image, mask = dsb_crop
    scaled = image.astype(np.float64) * (1 / 255 if dtype == np.float32 else 1)
    labels = ThresholdModel().predict(scaled.astype(dtype)).labels
    assert labels.dtype == np.int32 and labels.shape == image.shape
    n_true = len(np.unique(mask)) - 1
    assert 0.5 * n_true < labels.max() < 1.5 * n_true


def test_prediction_metadata(dsb_crop):
    image, _ = dsb_crop
    prediction = ThresholdModel().predict(image)
    ids = set(np.unique(prediction.labels)) - {0}
    assert set(prediction.objects) == ids
    meta = next(iter(prediction.objects.values()))
    assert meta.source == "threshold" and 0 <= meta.score <= 1 and len(meta.box) == 4


def test_dark_objects_with_invert(dsb_crop):
    image, mask = dsb_crop
    dark = image.max() - image.astype(np.float32)
    bright = ThresholdModel().predict(image).labels.max()
    assert ThresholdModel(ThresholdParams(invert=True)).predict(dark).labels.max() == bright
    assert ThresholdModel().predict(dark).labels.max() != bright


def test_3d_stack_segments_balls():
    zz, yy, xx = np.mgrid[:24, :48, :48]
    stack = np.zeros((24, 48, 48), np.float32)
    for centre in [(12, 12, 12), (12, 34, 30)]:
        d2 = (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2
        stack[d2 < 64] = 100
    stack += np.random.default_rng(0).normal(0, 3, stack.shape).astype(np.float32)
    labels = ThresholdModel(ThresholdParams(diameter=16)).predict(stack).labels
    assert labels.shape == stack.shape and len(np.unique(labels)) - 1 == 2


def test_manual_level_min_max_area_and_no_split(dsb_crop):
    image, _ = dsb_crop
    many = ThresholdModel(ThresholdParams(method="manual", level=40)).predict(image).labels
    assert many.max() > 10
    capped = ThresholdModel(ThresholdParams(min_area=300, max_area=600)).predict(image).labels
    sizes = np.bincount(capped.ravel())[1:]
    assert sizes.min() >= 300 and sizes.max() <= 600
    unsplit = ThresholdModel(ThresholdParams(split_touching=False)).predict(image).labels
    assert unsplit.max() < ThresholdModel().predict(image).labels.max()
    with pytest.raises(ValueError, match="level"):
        ThresholdModel(ThresholdParams(method="manual")).predict(image)


def test_constant_and_empty_images_give_no_objects():
    assert ThresholdModel().predict(np.full((32, 32), 7.0)).count == 0
    assert ThresholdModel().predict(np.zeros((32, 32))).count == 0


@pytest.mark.slow
def test_fit_improves_held_out_images_and_round_trips(tmp_path, read_pair):
    """Fit on two NIH3T3 crops, score on a third: the fit must not be worse than the defaults."""
    samples = []
    for name in ("nih3t3_dna-0.tif", "nih3t3_dna-3.tif", "nih3t3_dna-4.tif"):
        image, mask = read_pair("coelho2009_nih3t3", name)
        samples.append(Sample(image[::2, ::2].astype(np.float32), mask[::2, ::2], name=name))
    model = ThresholdModel(ThresholdParams(intensity_scale="linear"))  # a poor start
    result = drain(model.fit_iter(samples[:2], ThresholdFitParams(max_candidates=8)))
    assert result.metrics["ap50"] >= result.metrics["initial_ap50"]
    assert len(result.history) == 8 and result.data_used == ("nih3t3_dna-0.tif", "nih3t3_dna-3.tif")
    held_out = samples[2]
    before = score_images(
        [held_out.labels],
        [ThresholdModel(ThresholdParams(intensity_scale="linear")).predict(held_out.image).labels],
    ).ap50
    after = score_images([held_out.labels], [model.predict(held_out.image).labels]).ap50
    assert after >= before
    path = model.save(tmp_path / "fitted.json")
    assert json.loads(path.read_text())["model"] == "threshold"
    assert ThresholdModel.load(path).params == model.params


def test_fit_without_annotations_is_a_clear_error():
    with pytest.raises(ValueError, match="annotated"):
        drain(ThresholdModel().fit_iter([Sample(np.zeros((8, 8)))]))


def test_bad_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="Cannot read"):
        ThresholdModel.load(bad)
    bad.write_text(json.dumps({"model": "air"}))
    with pytest.raises(ValueError, match="not a threshold checkpoint"):
        ThresholdModel.load(bad)


def test_registry():
    assert get_model_class("threshold") is ThresholdModel
    with pytest.raises(ValueError, match="Unknown model"):
        get_model_class("nope")


def test_segment_rejects_4d():
    with pytest.raises(ValueError, match="2D or 3D"):
        segment(np.zeros((2, 2, 2, 2)), ThresholdParams())


def _matches(tp: int, n_true: int = 10) -> object:
    from napari_cellist.metrics import IOU_THRESHOLDS, _Counts

    return _Counts((tp,) * len(IOU_THRESHOLDS), n_true, n_true)


def test_cross_validation_keeps_the_current_parameters_when_a_candidate_only_fits_one_image():
    """Candidate 1 is far better on image 0 only: best on all images pooled, but chosen on the
    other folds it loses on the held-out ones, so the current parameters must stay."""
    from napari_cellist.models.threshold.search import cross_validated_choice

    current = [_matches(24, 30)] + [_matches(8) for _ in range(3)]  # image 0 holds 30 nuclei
    lucky = [_matches(30, 30), _matches(7), _matches(7), _matches(7)]
    best, numbers = cross_validated_choice([current, lucky], n_folds=4, seed=0)
    assert best == 1 and numbers["cv_folds"] == 4
    assert numbers["cv_gain"] < 0  # the on-fit winner does not hold on unseen images
    better = [_matches(27, 30)] + [_matches(9) for _ in range(3)]  # better on every image
    best, numbers = cross_validated_choice([current, lucky, better], n_folds=4, seed=0)
    assert best == 2 and numbers["cv_gain"] > 0.05


def test_fit_adopts_only_what_cross_validation_supports_and_respects_its_budget(dsb):
    image, labels = dsb[0].astype(np.float32), dsb[1]
    quads = [(slice(r, r + 256), slice(c, c + 256)) for r in (0, 256) for c in (0, 256)]
    samples = [Sample(image[q], labels[q], name=f"q{i}") for i, q in enumerate(quads)]
    poor = ThresholdParams(method="manual", level=float(np.percentile(image, 99.5)))
    model = ThresholdModel(poor)  # misses most nuclei: any sensible candidate beats it
    space = ThresholdFitParams(max_candidates=6, cv_folds=4, methods=("otsu",))
    result = drain(model.fit_iter(samples, space))
    assert result.metrics["adopted"] == 1.0 and model.params != poor
    assert result.metrics["cv_gain"] > space.min_improvement
    assert result.metrics["ap50"] > result.metrics["initial_ap50"] + 0.2
    # a good start, a single candidate besides it that is the same: nothing to adopt
    kept = ThresholdModel(model.params)
    result = drain(kept.fit_iter(samples, replace(space, max_candidates=1)))
    assert result.metrics["adopted"] == 0.0 and kept.params == model.params
    # a budget spent at once: only the current parameters are evaluated
    budgeted = ThresholdModel(poor)
    result = drain(budgeted.fit_iter(samples, replace(space, minutes=1e-6)))
    assert result.metrics["candidates"] == 1.0 and len(result.history) == 1
    assert budgeted.params == poor
