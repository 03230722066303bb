"""Intensity augmentation and robust background flattening (NIH3T3's uneven background)."""

import numpy as np
import pytest

from napari_cellist.augment import Jitter, intensity_jitter
from napari_cellist.background import estimate_background, flatten_background


def test_jitter_changes_intensities_within_its_strength_and_keeps_shape():
    rng = np.random.default_rng(0)
    patch = np.random.default_rng(1).uniform(0, 1, (2, 32, 32)).astype(np.float32)
    assert np.array_equal(intensity_jitter(patch, 0.0, rng), patch)
    draws = [Jitter.draw(0.3, rng) for _ in range(200)]
    assert all(1 / 1.3 - 1e-6 <= d.gain <= 1.3 + 1e-6 for d in draws)
    assert all(1 / 1.3 - 1e-6 <= d.gamma <= 1.3 + 1e-6 for d in draws)
    assert all(abs(d.offset) <= 0.06 and 0 <= d.sigma <= 0.03 for d in draws)
    out = intensity_jitter(patch, 0.3, rng)
    assert out.shape == patch.shape and out.dtype == np.float32 and not np.allclose(out, patch)
    # monotone without noise: the order of intensities (what a threshold sees) is kept
    flat = Jitter(1.2, 0.8, 0.05, 0.0).apply(patch, rng)
    assert np.array_equal(np.argsort(flat.ravel()), np.argsort(patch.ravel()))
    with pytest.raises(ValueError, match="0..1"):
        Jitter.draw(1.5, rng)


def test_flattening_removes_a_ramp_and_keeps_nuclei_above_background():
    yy, xx = np.mgrid[:256, :256]
    ramp = 50.0 + 0.5 * xx  # uneven illumination: 50 -> 177 across the image
    nuclei = np.zeros((256, 256))
    centres = [(40, 40), (40, 200), (200, 40), (200, 200), (128, 128)]
    for cy, cx in centres:
        nuclei[(yy - cy) ** 2 + (xx - cx) ** 2 < 12**2] = 100.0
    nuclei[60:63, 100:103] = 2000.0  # a small saturated artefact
    image = ramp + nuclei
    back = estimate_background(image, 24.0)
    # follows the ramp (up to an offset), not the spot: a quarter of the ramp's range is left
    assert np.ptp((image - back)[nuclei == 0]) < 0.3 * np.ptp(ramp)
    flat = flatten_background(image, 24.0)
    inside = [flat[cy, cx] for cy, cx in centres]
    outside = flat[nuclei == 0]
    assert min(inside) > np.percentile(outside, 99)  # every nucleus above all background
    assert max(inside) - min(inside) < 0.2  # left and right nuclei alike after the ramp is gone
    assert flat.max() <= 1.5  # the artefact is clipped
    with pytest.raises(ValueError, match="diameter"):
        estimate_background(image, 0.0)
