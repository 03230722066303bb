"""AIR geometry: turned boxes are drawn the same way in training, in prediction and in targets."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from skimage.draw import ellipse

from napari_cellist.models.air.inference import draw_alphas, draw_masks
from napari_cellist.models.air.modules import Geometry, box_to_image_affine, place_glimpses
from napari_cellist.models.air.supervision import ellipse_box
from napari_cellist.models.air.training import _dihedral

G = 16


def _disc(radius: float = 1.0) -> torch.Tensor:
    """A round ``(G, G)`` alpha filling ``radius`` of the glimpse's half side."""
    c = (torch.arange(G) + 0.5) / G * 2 - 1
    return ((c[:, None] ** 2 + c[None, :] ** 2) < radius**2).float()


def _box_alpha(box: np.ndarray, alpha: np.ndarray, shape: tuple[int, int]):
    """One alpha drawn alone by ``draw_alphas``: rows and columns of its extent, and the alpha."""
    (r0, c0), drawn = draw_alphas(box[None], alpha[None], shape)[0]
    if drawn.size == 0:
        return slice(0, 0), slice(0, 0), drawn
    return slice(r0, r0 + drawn.shape[0]), slice(c0, c0 + drawn.shape[1]), drawn


def _ellipse_image(rotation: float, shape=(100, 100)) -> np.ndarray:
    image = np.zeros(shape, bool)
    rr, cc = ellipse(50, 50, 30, 10, rotation=rotation, shape=shape)
    image[rr, cc] = True
    return image


def test_training_window_and_prediction_draw_a_turned_box_alike():
    box = torch.tensor([[2.0, -3.0, 24.0, 10.0, 0.5]])  # relative to the window centre
    window = place_glimpses(_disc(0.8)[None, None], box, Geometry(window=40))[0, 0].numpy() > 0.5
    rows, cols, alpha = _box_alpha(
        np.array([22.0, 17.0, 24.0, 10.0, 0.5]), _disc(0.8).numpy(), (40, 40)
    )
    drawn = np.zeros((40, 40), bool)
    drawn[rows, cols] = alpha > 0.5
    assert window.sum() > 80
    assert np.array_equal(window, drawn)


def test_ellipse_box_fits_tilted_nuclei_and_keeps_the_angle_within_45_degrees():
    for rotation in (0.0, 0.4, -0.4, 1.2, -1.2):
        truth = _ellipse_image(rotation)
        h, w, angle = ellipse_box(np.argwhere(truth))
        assert abs(angle) <= math.pi / 4 + 1e-6
        assert 55 < max(h, w) < 65 and 17 < min(h, w) < 23  # full axes of a 60 x 20 ellipse
        rows, cols, alpha = _box_alpha(
            np.array([50.5, 50.5, h, w, angle]), _disc().numpy(), truth.shape
        )
        drawn = np.zeros_like(truth)
        drawn[rows, cols] = alpha > 0.5
        assert (drawn & truth).sum() / (drawn | truth).sum() > 0.9, rotation


def test_glimpse_of_a_tilted_nucleus_is_upright():
    truth = _ellipse_image(0.4).astype(np.float32)
    h, w, angle = ellipse_box(np.argwhere(truth))
    boxes = torch.tensor([[0.0, 0.0, h, w, angle]], dtype=torch.float32)
    theta = box_to_image_affine(torch.tensor([[50.5, 50.5]]), boxes, truth.shape)
    grid = F.affine_grid(theta, [1, 1, G, G], align_corners=False)
    glimpse = (
        F.grid_sample(torch.from_numpy(truth)[None, None], grid, align_corners=False)[0, 0] > 0.5
    )
    disc = _disc() > 0.5
    assert (glimpse & disc).sum() / (glimpse | disc).sum() > 0.9


def _shape_target(pixels: np.ndarray) -> np.ndarray:
    h, w, angle = ellipse_box(np.argwhere(pixels))
    return np.array([math.log(h / w), angle])


def test_flipping_the_crop_turns_its_box_targets_like_the_pixels():
    """_dihedral's aspect and angle targets match ellipse_box of the flipped / transposed nucleus."""
    truth = _ellipse_image(0.3)
    base = _shape_target(truth)
    where = np.zeros((1, 1, 1, 5), np.float32)
    where[0, 0, 0, 3:] = base
    for flip_y, flip_x, transpose in (
        (True, False, False),
        (False, True, False),
        (False, False, True),
        (True, False, True),
    ):
        pixels = truth[::-1] if flip_y else truth
        pixels = pixels[:, ::-1] if flip_x else pixels
        pixels = pixels.T if transpose else pixels
        arrays = {"where_target": where.copy(), "where_known": np.ones_like(where, bool)}
        _dihedral(arrays, flip_y, flip_x, transpose)
        assert np.allclose(arrays["where_target"][0, 0, 0, 3:], _shape_target(pixels), atol=1e-4)


def test_masks_drawn_many_at_a_time_match_those_drawn_one_by_one():
    rng = np.random.default_rng(0)
    n = 40
    boxes = np.stack(
        [
            rng.uniform(-10, 70, n),
            rng.uniform(-10, 70, n),
            rng.uniform(4, 30, n),
            rng.uniform(4, 30, n),
            rng.uniform(-0.7, 0.7, n),
        ],
        axis=1,
    ).astype(np.float32)
    alphas = np.stack([_disc(r).numpy() for r in rng.uniform(0.5, 1.0, n)])
    drawn = draw_masks(boxes, alphas, (60, 60), chunk=16)
    for box, alpha, ((r0, c0), mask) in zip(boxes, alphas, drawn, strict=True):
        rows, cols, single = _box_alpha(box, alpha, (60, 60))
        if single.size == 0:  # the box lies outside the image
            assert mask.size == 0
            continue
        assert (r0, c0) == (rows.start, cols.start)
        assert np.array_equal(mask, single > 0.5)
