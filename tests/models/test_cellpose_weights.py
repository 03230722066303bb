"""Cellpose weights without internet: cache folder, a picked file, and clear errors otherwise."""

from __future__ import annotations

import numpy as np
import pytest

import napari_cellist.models.cellpose_adapter as cpa
from napari_cellist.models import WeightsNotFoundError
from napari_cellist.models.cellpose_adapter import _backend
from napari_cellist.models.cellpose_adapter.weights import build_network, resolve_weights
from napari_cellist.types import Sample


@pytest.fixture(scope="module")
def random_state(tmp_path_factory):
    """Path of a Cellpose 3 network file with random weights."""
    path = tmp_path_factory.mktemp("cp_weights") / "random_net"
    build_network(None).net.save_model(str(path))
    return path


@pytest.fixture(autouse=True)
def no_download(monkeypatch):
    """Fail loudly if Cellpose ever tries to download anything."""
    from cellpose import models, utils

    def forbidden(*args, **kwargs):
        raise AssertionError(f"Cellpose tried to download {args}")

    monkeypatch.setattr(utils, "download_url_to_file", forbidden)
    monkeypatch.setattr(models.utils, "download_url_to_file", forbidden)


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    folder = tmp_path / "cellpose_models"
    folder.mkdir()
    monkeypatch.setenv("CELLPOSE_LOCAL_MODELS_PATH", str(folder))
    return folder


def _image():
    return np.random.default_rng(1).random((40, 40)).astype(np.float32)


@pytest.mark.parametrize(("name", "filename"), [("cyto3", "cyto3"), ("nuclei", "nucleitorch_0")])
def test_missing_pretrained_weights_say_what_to_do(empty_cache, name, filename):
    with pytest.raises(WeightsNotFoundError) as info:
        cpa.CellposeModel(cpa.CellposeParams(model=name, diameter=10.0)).predict(_image())
    message = str(info.value)
    assert f"'{filename}'" in message and str(empty_cache) in message
    assert "CELLPOSE_LOCAL_MODELS_PATH" in message and "scratch" in message
    assert list(empty_cache.iterdir()) == []  # nothing downloaded or created


def test_missing_file_path(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="nope.pth does not exist"):
        cpa.CellposeModel(cpa.CellposeParams(model=str(tmp_path / "nope.pth"))).predict(_image())
    with pytest.raises(WeightsNotFoundError, match="is neither a pretrained name"):
        cpa.CellposeModel(cpa.CellposeParams(model="cyto9")).predict(_image())


def test_cache_folder_weights_are_used(empty_cache, random_state):
    (empty_cache / "cyto3").write_bytes(random_state.read_bytes())
    np.save(
        empty_cache / "size_cyto3.npy",
        np.array({"A": np.zeros(256), "smean": 0.0, "diam_mean": 30.0, "ymean": 0.0}),
    )
    resolved = resolve_weights("cyto3")
    assert (
        resolved.path == empty_cache / "cyto3"
        and resolved.size_path == empty_cache / "size_cyto3.npy"
    )
    model = cpa.CellposeModel(cpa.CellposeParams(model="cyto3", diameter=10.0))
    prediction = model.predict(_image())
    assert prediction.labels.shape == (40, 40) and model.network().pretrained_model == str(
        empty_cache / "cyto3"
    )


def test_user_picked_file_and_from_checkpoint(random_state):
    prediction = cpa.CellposeModel(
        cpa.CellposeParams(model=str(random_state), diameter=10.0)
    ).predict(_image())
    assert prediction.labels.shape == (40, 40)
    model = cpa.CellposeModel.from_checkpoint(
        random_state, cpa.CellposeParams(diameter=12.0, min_size=3)
    )
    assert model.params.model == str(random_state) and model.params.diameter == 12.0
    assert model.params.min_size == 3


def test_cellpose4_file_is_refused(tmp_path):
    import torch

    path = tmp_path / "cpsam"
    torch.save({"W2": torch.zeros(1), "output.2.weight": torch.zeros(3, 32, 1, 1)}, path)
    with pytest.raises(ValueError, match="not a Cellpose 3 model file"):
        cpa.CellposeModel(cpa.CellposeParams(model=str(path))).predict(_image())


def test_training_start_current_without_weights_raises(empty_cache):
    labels = np.zeros((40, 40), np.int32)
    labels[5:15, 5:15], labels[20:30, 20:30] = 1, 2
    samples = [Sample(_image(), labels, name="a")]
    with pytest.raises(WeightsNotFoundError, match="cyto3"):
        next(cpa.CellposeModel().fit_iter(samples, cpa.CellposeTrainParams(start_from="current")))


def test_missing_cellpose_gives_install_hint(monkeypatch):
    monkeypatch.setattr(_backend.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="napari-cellist\\[cellpose\\]"):
        _backend.check_cellpose_version()
