"""Cellpose parameter plumbing: every parameter reaches ``CellposeModel.eval`` (which is faked)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields, replace

import numpy as np
import pytest

import napari_cellist.models.cellpose_adapter as cpa
from napari_cellist.diameters import diameter_from_image
from napari_cellist.models import get_model_class
from napari_cellist.models.cellpose_adapter._backend import check_cellpose_version
from napari_cellist.models.cellpose_adapter.inference import unique_plane_ids
from napari_cellist.models.cellpose_adapter.weights import build_network


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A Cellpose 3 model file with random weights (a 'custom model' to Cellpose)."""
    path = tmp_path_factory.mktemp("cp") / "random_model"
    build_network(None).net.save_model(str(path))
    return path


@pytest.fixture
def calls(monkeypatch):
    """Replace CellposeModel.eval by a recorder that returns two square objects."""
    from cellpose import models

    recorded = []

    def fake_eval(self, x, **kwargs):
        recorded.append((x, kwargs))
        masks = np.zeros(x.shape[:-1], np.int32)
        masks[..., 2:6, 2:6] = 1
        masks[..., 10:14, 10:14] = 2
        return masks, [None, None, np.zeros(x.shape[:-1], np.float32)], None

    monkeypatch.setattr(models.CellposeModel, "eval", fake_eval)
    return recorded


def _image(shape=(32, 32)):
    return np.random.default_rng(0).random(shape).astype(np.float32)


def test_registry_and_lazy_import():
    assert get_model_class("cellpose") is cpa.CellposeModel
    code = "import sys, napari_cellist.models as m; m.get_model_class('cellpose'); print('torch' in sys.modules, 'cellpose.models' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]


def test_every_param_has_help():
    for params_type in (cpa.CellposeParams, cpa.CellposeTrainParams):
        for f in fields(params_type):
            assert f.metadata.get("help"), f"{params_type.__name__}.{f.name} has no help text"
    assert (
        cpa.CellposeParams().flow_threshold == 0.4
        and cpa.CellposeParams().cellprob_threshold == 0.0
    )
    assert cpa.CellposeParams().min_size == 15 and cpa.CellposeParams().bsize == 224


def test_2d_params_reach_eval(weights_file, calls):
    params = cpa.CellposeParams(
        model=str(weights_file), diameter=21.0, invert=True, flow_threshold=0.7, cellprob_threshold=-1.5,
        min_size=33, normalize=False, norm_percentiles=(2.0, 98.0), tile_norm_blocksize=64, bsize=160,
        tile_overlap=0.2, augment=True, resample=False, niter=123, max_size_fraction=0.3, batch_size=3,
        border_mirror=0.0,
    )  # fmt: skip
    prediction = cpa.CellposeModel(params).predict(_image())
    x, kwargs = calls[-1]
    assert x.shape == (32, 32, 2) and not x[..., 1].any()
    expected = {
        "diameter": 21.0, "invert": True, "flow_threshold": 0.7, "cellprob_threshold": -1.5, "min_size": 33,
        "bsize": 160, "tile_overlap": 0.2, "augment": True, "resample": False, "niter": 123,
        "max_size_fraction": 0.3, "batch_size": 3, "do_3D": False, "stitch_threshold": 0.0, "channel_axis": 2,
    }  # fmt: skip
    assert {k: kwargs[k] for k in expected} == expected
    norm = kwargs["normalize"]
    assert norm["normalize"] is False and norm["percentile"] == [2.0, 98.0]
    assert norm["tile_norm_blocksize"] == 64 and norm["invert"] is True
    assert prediction.count == 2 and prediction.labels.dtype == np.int32
    assert {o.source for o in prediction.objects.values()} == {"cellpose"}
    assert prediction.objects[1].box == (2, 2, 6, 6)
    assert prediction.objects[1].score == pytest.approx(0.5)  # sigmoid(0)


def test_3d_params_reach_eval(weights_file, calls):
    model = cpa.CellposeModel(cpa.CellposeParams(model=str(weights_file), diameter=9.0))
    stack = _image((5, 24, 24))
    model.predict(
        stack,
        cpa.CellposeParams(
            model=str(weights_file),
            diameter=9.0,
            do_3D=True,
            anisotropy=2.5,
            flow3D_smooth=1.0,
            border_mirror=0.0,
        ),
    )
    x, kwargs = calls[-1]
    assert x.shape == (5, 24, 24, 2) and kwargs["z_axis"] == 0 and kwargs["channel_axis"] == 3
    assert (
        kwargs["do_3D"] is True and kwargs["anisotropy"] == 2.5 and kwargs["flow3D_smooth"] == 1.0
    )
    assert kwargs["normalize"]["norm3D"] is True
    prediction = model.predict(
        stack, cpa.CellposeParams(model=str(weights_file), diameter=9.0, stitch_threshold=0.3)
    )
    assert calls[-1][1]["stitch_threshold"] == 0.3 and calls[-1][1]["do_3D"] is False
    assert prediction.labels.shape == (5, 24, 24)


def test_border_mirror_pads_yx_and_crops_back(weights_file, calls):
    image = _image((32, 40))
    params = cpa.CellposeParams(model=str(weights_file), diameter=12.0, border_mirror=0.5)
    prediction = cpa.CellposeModel(params).predict(image)
    x = calls[-1][0]
    assert x.shape == (44, 52, 2)  # 6 px (half a diameter) mirrored on every side
    np.testing.assert_array_equal(x[6:-6, 6:-6, 0], image)
    np.testing.assert_array_equal(x[:6, 6:-6, 0], image[6:0:-1])  # reflection
    # the fake's square at 2:6 lies inside the margin and is gone; 10:14 is now 4:8, id 1
    assert prediction.labels.shape == image.shape and prediction.count == 1
    assert prediction.objects[1].box == (4, 4, 8, 8)
    assert prediction.extras["probability"].shape == image.shape
    stack = cpa.CellposeModel(params).predict(_image((3, 24, 24)), replace(params, do_3D=True))
    assert calls[-1][0].shape == (3, 36, 36, 2) and stack.labels.shape == (3, 24, 24)


def test_planes_without_stitching_get_unique_ids(weights_file, calls):
    prediction = cpa.CellposeModel(
        cpa.CellposeParams(model=str(weights_file), diameter=9.0, border_mirror=0.0)
    ).predict(_image((3, 24, 24)))
    assert calls[-1][1]["normalize"]["norm3D"] is False
    assert prediction.count == 6  # 2 objects per plane, 3 planes, no id shared between planes
    assert set(np.unique(prediction.labels[1])) == {0, 3, 4}


def test_unique_plane_ids():
    masks = np.zeros((2, 4, 4), np.int32)
    masks[0, 0, 0], masks[1, 0, 0], masks[1, 3, 3] = 1, 1, 2
    out = unique_plane_ids(masks)
    assert out[0, 0, 0] == 1 and out[1, 0, 0] == 2 and out[1, 3, 3] == 3


def test_channels_select_cells_and_nucleus(weights_file, calls):
    image = np.stack([np.full((16, 16), v, np.float32) for v in (1.0, 2.0, 3.0)])  # (C, Y, X)
    params = cpa.CellposeParams(
        model=str(weights_file), diameter=5.0, channel_axis=0, channels=(2, 3), border_mirror=0.0
    )
    cpa.CellposeModel(params).predict(image)
    x = calls[-1][0]
    assert x.shape == (16, 16, 2) and np.all(x[..., 0] == 2.0) and np.all(x[..., 1] == 3.0)
    cpa.CellposeModel(params).predict(
        image, cpa.CellposeParams(model=str(weights_file), diameter=5.0, channel_axis=0)
    )
    assert (
        np.all(calls[-1][0][..., 0] == 2.0) and not calls[-1][0][..., 1].any()
    )  # grey = channel mean
    with pytest.raises(ValueError, match="Channel 5 does not exist"):
        cpa.CellposeModel(params).predict(
            image, cpa.CellposeParams(model=str(weights_file), channel_axis=0, channels=(5, 0))
        )


def test_automatic_diameter_is_estimated_from_the_image(weights_file, calls):
    image = np.zeros((96, 96), np.float32)
    for r, c in [(20, 20), (20, 70), (70, 20), (70, 70)]:
        yy, xx = np.ogrid[:96, :96]
        image[(yy - r) ** 2 + (xx - c) ** 2 <= 10**2] = 1.0
    cpa.CellposeModel(cpa.CellposeParams(model=str(weights_file), diameter=0.0)).predict(image)
    assert calls[-1][1]["diameter"] == pytest.approx(diameter_from_image(image))
    assert 17 < calls[-1][1]["diameter"] < 24


def test_version_seam():
    assert check_cellpose_version("3.1.1.3") == "3.1.1.3"
    with pytest.raises(ImportError, match="cpsam"):
        check_cellpose_version("4.0.1")
    with pytest.raises(ImportError, match="too old"):
        check_cellpose_version("2.2")


def test_2d_mode_rejects_3d_switch_on_2d_image(weights_file, calls):
    with pytest.raises(ValueError, match="3D mode needs"):
        cpa.CellposeModel(cpa.CellposeParams(model=str(weights_file), do_3D=True)).predict(_image())
