import numpy as np
import pytest

from napari_cellist.images import normalise_percentile, prepare_grey


def test_grey_uint16_and_float_pass_through(dsb):
    image, _ = dsb
    out = prepare_grey(image)
    assert out.dtype == np.float32 and out.shape == image.shape
    assert prepare_grey(image.astype(np.float64) / 7).shape == image.shape


def test_rgb_average_and_channel_choice():
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 1] = 90
    assert prepare_grey(rgb, rgb=True).max() == pytest.approx(30)
    assert prepare_grey(rgb, rgb=True, channel=1).max() == 90
    with pytest.raises(ValueError, match="does not exist"):
        prepare_grey(rgb, rgb=True, channel=5)


def test_channel_axis_needs_a_channel():
    stack = np.zeros((2, 8, 8), np.uint16)
    with pytest.raises(ValueError, match="choose the channel"):
        prepare_grey(stack, channel_axis=0)
    assert prepare_grey(stack, channel_axis=0, channel=1).shape == (8, 8)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 2, 3, 4, 5)])
def test_4d_5d_rejected_with_advice(shape):
    with pytest.raises(ValueError, match="2D \\(Y, X\\) or 3D"):
        prepare_grey(np.zeros(shape))


def test_singleton_axes_squeezed():
    assert prepare_grey(np.zeros((1, 1, 6, 7))).shape == (6, 7)


def test_nan_replaced_and_all_nan_rejected():
    image = np.ones((4, 4))
    image[0, 0] = np.nan
    assert np.isfinite(prepare_grey(image)).all()
    with pytest.raises(ValueError, match="no finite"):
        prepare_grey(np.full((3, 3), np.nan))


def test_empty_and_non_numeric_rejected():
    with pytest.raises(ValueError, match="empty"):
        prepare_grey(np.zeros((0, 5)))
    with pytest.raises(ValueError, match="numeric"):
        prepare_grey(np.array([["a"]]))


def test_normalise_constant_image():
    assert not normalise_percentile(np.full((3, 3), 7.0)).any()
