"""Test-time grid shifts: AIR predicts an image at several grid positions and fuses the objects."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from napari_cellist.models.air import AirModel, AirParams, AirTrainParams, half_cell_shifts
from napari_cellist.models.air.fusion import (
    ALPHA_PEAK_FLOOR,
    fuse_runs,
    object_shapes,
    shift_objects,
)
from napari_cellist.models.air.inference import Objects, label_map
from napari_cellist.progress import drain
from napari_cellist.types import Sample

G = 16


def _disc() -> np.ndarray:
    c = (np.arange(G) + 0.5) / G * 2 - 1
    return ((c[:, None] ** 2 + c[None, :] ** 2) < 0.8).astype(np.float32)


def _objects(centres: list[tuple[float, float]], scores: list[float]) -> Objects:
    k = len(centres)
    boxes = np.array([[cy, cx, 20.0, 20.0, 0.0] for cy, cx in centres], np.float32).reshape(k, 5)
    return Objects(
        scores=np.asarray(scores, np.float32),
        boxes=boxes,
        alphas=np.stack([_disc()] * k) if k else np.zeros((0, G, G), np.float32),
        index=torch.arange(k),
        rel_boxes=torch.zeros(k, 5),
        z_what=torch.zeros(k, 8),
        n_slots=100,
    )


def test_fusion_keeps_objects_found_on_average_and_drops_one_run_wonders():
    runs = [
        _objects([(30, 30), (70, 70)], [0.9, 0.8]),
        _objects([(31, 29)], [0.7]),  # the same first object, 1.4 px away
        _objects([(29, 31), (30, 75)], [0.8, 0.9]),  # and an object no other run finds
        _objects([(30, 30)], [1.0]),
    ]
    fused = fuse_runs(runs, (100, 100), min_score=0.3)
    assert len(fused.scores) == 1  # (70, 70) and (30, 75) are each in one run of four: 0.2, 0.225
    assert fused.scores[0] == pytest.approx((0.9 + 0.7 + 0.8 + 1.0) / 4)
    np.testing.assert_allclose(fused.boxes[0, :2], [30, 30])  # the most confident member's box
    same_run = fuse_runs([_objects([(30, 30), (32, 31)], [0.9, 0.8])], (100, 100), min_score=0.3)
    assert len(same_run.scores) == 2  # one run's two objects are never merged with each other
    smaller = fuse_runs(runs, (100, 100), min_score=0.3, match_scale=0.25)
    assert len(smaller.scores) == 1 and smaller.scores[0] == pytest.approx(fused.scores[0])


def test_shifts_move_boxes_back_and_are_half_a_cell():
    moved = shift_objects(_objects([(30, 40)], [1.0]), -5, 3)
    np.testing.assert_allclose(moved.boxes[0, :2], [25, 43])
    assert half_cell_shifts(4, 4.4) == [(0, 0), (4, 4), (4, 0), (0, 4)]
    assert half_cell_shifts(1, 4.4) == [(0, 0)]
    with pytest.raises(ValueError, match="1, 2 or 4"):
        half_cell_shifts(3, 4.0)


@pytest.fixture(scope="module")
def trained_dsb_air(dsb) -> tuple[AirModel, np.ndarray]:
    """AIR trained briefly on a real 256 x 256 DSB crop with its masks."""
    image, labels = dsb[0][:256, :256].copy(), dsb[1][:256, :256].copy()
    model = AirModel()
    params = AirTrainParams(steps=150, batch_size=4, crop_size=64, seed=0, scale_jitter=0.0)
    drain(model.fit_iter([Sample(image, labels)], params))
    return model, image


@pytest.mark.slow
def test_prediction_with_grid_shifts_finds_the_same_nuclei(trained_dsb_air):
    model, image = trained_dsb_air
    single = model.predict(image, replace(model.params, test_time_shifts=1))
    shifted = model.predict(image, replace(model.params, test_time_shifts=4))
    assert shifted.labels.shape == image.shape and shifted.labels.dtype == np.int32
    n1, n4 = len(single.objects), len(shifted.objects)
    assert n4 > 0 and abs(n4 - n1) <= max(3, 0.3 * n1)
    assert all(0.3 <= o.score <= 1.0 for o in shifted.objects.values())
    assert shifted.extras["reconstruction"].shape == image.shape
    assert AirParams().test_time_shifts == 4


@pytest.mark.slow
def test_grid_runs_find_the_same_nuclei_in_the_image_coordinates(trained_dsb_air):
    """Each grid position alone finds the nuclei where the unshifted one does: its boxes are
    moved back from the padded image, and its working image is that of its shifted copy."""
    model, image = trained_dsb_air
    params = replace(model.params, test_time_shifts=4)
    runs, works = model.grid_runs(image, 24.0, params, floor=0.3)
    assert len(runs) == len(works) == 4
    assert works[1].shape[0] > works[0].shape[0]  # padded at the top by half a cell
    reference = runs[0].boxes[:, :2]
    assert len(reference) > 5
    shifts = half_cell_shifts(4, 0.5 * model.net.geom.cell * 24.0 / model.net.geom.diameter)

    def median_gap(centres: np.ndarray) -> float:  # to the nearest centre of the unshifted run
        return float(
            np.median(np.linalg.norm(centres[:, None] - reference[None], axis=-1).min(axis=1))
        )

    for run, shift in zip(runs[1:], shifts[1:], strict=True):
        assert abs(len(run.scores) - len(reference)) <= max(3, 0.3 * len(reference))
        # the centres were moved back: left in the padded image's frame they would lie further off
        assert median_gap(run.boxes[:, :2]) < median_gap(run.boxes[:, :2] + np.asarray(shift))


def test_a_faint_object_keeps_its_shape_and_its_mask():
    """A nucleus dimmer than the minimum contrast is decoded with a low alpha; its mask is the
    alpha relative to its own peak, so it is kept with the shape of a bright one."""
    faint = 0.4 * _disc()  # peaks at 0.4: below the 0.5 alpha threshold everywhere
    shapes = object_shapes(np.stack([_disc(), faint, 0.1 * _disc()]))
    np.testing.assert_allclose(shapes[0], _disc())
    np.testing.assert_allclose(shapes[1], _disc())  # same shape as the bright one
    assert shapes[2].max() == pytest.approx(0.1 / ALPHA_PEAK_FLOOR)  # too faint: stays faint
    assert object_shapes(np.zeros((0, G, G), np.float32)).shape == (0, G, G)
    bright, _ = label_map((64, 64), _objects([(30, 30)], [0.9]))
    faint_labels, _ = label_map((64, 64), replace(_objects([(30, 30)], [0.9]), alphas=shapes[1:2]))
    assert np.count_nonzero(faint_labels) == np.count_nonzero(bright) > 0


def test_mirror_images_of_objects_are_dropped_and_cut_objects_kept():
    """On an image mirrored outwards by 20 px, an object found in the margin as the mirror image of
    one inside is dropped (the one inside gets its pixels back); a nucleus cut by the border,
    centred on it and half inside, is kept."""
    inside, copy, cut = (30, 26), (30, 14), (60, 20)  # the copy: `inside` reflected about x = 20
    objects = _objects([inside, copy, cut], [0.8, 0.95, 0.7])
    unfiltered, _ = label_map((100, 100), objects)
    assert len(np.unique(unfiltered)) == 4  # without the margin: three objects
    labels, scores = label_map((100, 100), objects, margin=20)
    assert len(np.unique(labels)) == 3
    np.testing.assert_allclose(scores, [0.8, 0.7])
    alone, _ = label_map((100, 100), _objects([inside], [0.8]))
    np.testing.assert_array_equal(labels == 1, alone == 1)  # the copy took none of its pixels
    assert np.count_nonzero(labels[:, :20] == 2) == pytest.approx(
        np.count_nonzero(labels[:, 20:] == 2), abs=20
    )
