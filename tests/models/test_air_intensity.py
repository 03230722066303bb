"""AIR's working intensity scale: the offset square root that keeps dim nuclei visible."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_cellist.models.air import AirModel, NetConfig
from napari_cellist.models.air.inference import find_objects, reconstruction, select_objects
from napari_cellist.models.air.modules import Geometry
from napari_cellist.models.air.supervision import (
    BACKGROUND_BLOCK,
    BACKGROUND_PERCENTILE,
    compress_intensity,
    estimate_background,
    expand_intensity,
    labels_to_working,
    resize,
    to_working,
)


def test_sqrt_scale_keeps_the_range_and_lifts_dim_contrast():
    geom = Geometry(intensity="sqrt", sqrt_offset=0.1)
    x = np.linspace(0.0, 2.0, 81).astype(np.float32)
    y = compress_intensity(x, geom)
    assert y.dtype == np.float32
    assert y[0] == 0.0 and y[40] == pytest.approx(1.0, abs=1e-6)  # 0 and 1 stay put
    assert np.all(np.diff(y) > 0)  # order of intensities kept
    np.testing.assert_allclose(expand_intensity(y, geom), x, atol=1e-5)
    # A nucleus 0.1 above a dark background gains contrast; one near saturation loses some.
    assert y[2] - y[0] > 1.5 * 0.05
    assert y[40] - y[36] < 0.1
    assert compress_intensity(np.float32([-0.3]), geom)[0] == 0.0  # below the 1st percentile


def test_linear_scale_is_the_identity():
    x = np.linspace(-0.5, 2.0, 11).astype(np.float32)
    geom = Geometry()
    assert compress_intensity(x, geom) is x and expand_intensity(x, geom) is x


@pytest.mark.parametrize(
    "kwargs", [{"intensity": "log"}, {"intensity": "sqrt", "sqrt_offset": 0.0}]
)
def test_geometry_rejects_unknown_intensity_scales(kwargs):
    with pytest.raises(ValueError, match="intensity|sqrt_offset"):
        Geometry(**kwargs)


def test_dim_gowt1_nuclei_gain_contrast_relative_to_bright_ones(read_pair):
    """On a real GOWT1 image, whose nuclei differ ~10x in brightness, the dimmest quarter of the
    annotated nuclei stands out more (relative to the brightest) on the sqrt scale."""
    image, labels = read_pair("ctc_gowt1_hela", "gowt1_t39.tif")

    def contrasts(intensity: str) -> np.ndarray:
        geom = NetConfig(intensity=intensity).geometry()
        work = to_working(image, 60.0, geom)
        lab = labels_to_working(labels, work)
        img, bg = work.image, work.background
        ids = [i for i in np.unique(lab) if i]
        return np.array([np.median(img[lab == i] - bg[lab == i]) for i in ids])

    linear, sqrt = contrasts("linear"), contrasts("sqrt")
    dim = linear <= np.percentile(linear, 25)
    assert dim.sum() >= 3
    assert np.median(sqrt[dim]) / sqrt.max() > 1.5 * np.median(linear[dim]) / linear.max()
    assert np.median(sqrt[dim]) > np.median(linear[dim])


def test_new_models_use_the_sqrt_scale_and_old_checkpoints_keep_linear(tmp_path):
    model = AirModel()
    assert model.net.geom.intensity == "sqrt"
    path = model.save(tmp_path / "air.pt")
    assert AirModel.load(path).net.geom.intensity == "sqrt"
    payload = torch.load(path, weights_only=True)
    del payload["config"]["intensity"], payload["config"]["sqrt_offset"]  # as written before
    torch.save(payload, path)
    old = AirModel.load(path)
    assert old.config.intensity == "linear" and old.net.geom.intensity == "linear"


def test_reconstruction_is_in_normalised_linear_units(dsb_crop):
    """The reconstruction layer compares with the image, not with the compressed working scale:
    with no object drawn it is the background, the same for a sqrt and a linear model."""
    image, _ = dsb_crop
    backgrounds = []
    for intensity in ("sqrt", "linear"):
        net = NetConfig(intensity=intensity).build()
        work = to_working(image, 24.0, net.geom)
        found = find_objects(net, work, min_score=0.5)
        nothing = select_objects(found, np.zeros(len(found.scores), bool))
        backgrounds.append(reconstruction(net, work, nothing, image.shape))
    sqrt_model, linear_model = backgrounds
    assert sqrt_model.shape == image.shape
    np.testing.assert_allclose(sqrt_model, linear_model, atol=0.02)


def test_background_blocks_of_unequal_size_match_a_per_block_percentile():
    """The background is a low percentile per block (np.array_split's blocks, the first ones one
    pixel longer), computed a group of equal blocks at a time: same as block by block."""
    geom = Geometry()
    rng = np.random.default_rng(3)
    for shape in [(8, 8), (49, 100), (97, 131), (1, 5)]:
        image = rng.random(shape).astype(np.float32)
        block = max(2, int(round(BACKGROUND_BLOCK * geom.diameter)))
        rows = np.array_split(np.arange(shape[0]), max(1, round(shape[0] / block)))
        cols = np.array_split(np.arange(shape[1]), max(1, round(shape[1] / block)))
        coarse = np.array(
            [
                [
                    np.percentile(image[r[0] : r[-1] + 1, c[0] : c[-1] + 1], BACKGROUND_PERCENTILE)
                    for c in cols
                ]
                for r in rows
            ],
            np.float32,
        )
        expected = (
            resize(coarse, shape) if coarse.size > 1 else np.full(shape, coarse.item(), np.float32)
        )
        np.testing.assert_array_equal(estimate_background(image, geom), expected)
