"""Cellpose's pretrained weights on first use (a local mirror serves a random network as
``cyto3``) and Cellpose on a chosen device."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import napari_cellist.models.cellpose_adapter as cpa
from napari_cellist.devices import DeviceNotAvailableError
from napari_cellist.models import WeightsNotFoundError
from napari_cellist.models.cellpose_adapter.weights import build_network
from napari_cellist.progress import drain


@pytest.fixture(scope="module")
def random_net_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("cp_net") / "net"
    build_network(None).net.save_model(str(path))
    return path.read_bytes()


@pytest.fixture
def mirror(weights_server, tmp_path, monkeypatch, random_net_bytes):
    """Online, with a mirror that serves ``cyto3`` (a random network) and no size model."""
    weights_server.files["cyto3"] = random_net_bytes
    folder = tmp_path / "cellpose_models"
    monkeypatch.setenv("CELLPOSE_LOCAL_MODELS_PATH", str(folder))
    monkeypatch.setenv("CELLIST_MODEL_MIRROR", weights_server.base)
    monkeypatch.delenv("CELLIST_OFFLINE", raising=False)
    weights_server.folder = folder
    return weights_server


def _image():
    return np.random.default_rng(1).random((48, 48)).astype(np.float32)


def test_first_prediction_downloads_cyto3_where_cellpose_looks(mirror, monkeypatch):
    model = cpa.CellposeModel(cpa.CellposeParams(model="cyto3", diameter=12.0, device="cpu"))
    reports = []
    prediction = drain(model.predict_iter(_image()), reports.append)
    assert prediction.labels.shape == (48, 48)
    assert any(r.message.startswith("downloading cyto3") for r in reports)
    assert (mirror.folder / "cyto3").read_bytes() == mirror.files["cyto3"]
    assert mirror.requests == ["/cyto3", "/size_cyto3.npy"]  # the size model is optional (404)
    # Cellpose's own lookup finds the same file and downloads nothing
    from cellpose import models

    monkeypatch.setattr(models, "MODEL_DIR", mirror.folder)
    monkeypatch.setattr(models.utils, "download_url_to_file", pytest.fail)
    assert models.model_path("cyto3") == str(mirror.folder / "cyto3")
    # the second model built by name uses the file on disk, without the network
    drain(
        cpa.CellposeModel(cpa.CellposeParams(model="cyto3", diameter=12.0)).predict_iter(_image())
    )
    assert mirror.requests == ["/cyto3", "/size_cyto3.npy"]


def test_failed_download_keeps_the_clear_message(mirror):
    del mirror.files["cyto3"]
    with pytest.raises(WeightsNotFoundError) as info:
        cpa.CellposeModel(cpa.CellposeParams(model="cyto3", diameter=12.0)).predict(_image())
    message = str(info.value)
    assert "HTTP 404" in message and "'cyto3'" in message and str(mirror.folder) in message
    assert "pick the file" in message
    assert not (mirror.folder / "cyto3").exists()


def test_offline_needs_no_server(tmp_path, monkeypatch):
    monkeypatch.setenv("CELLIST_OFFLINE", "1")
    monkeypatch.setenv("CELLPOSE_LOCAL_MODELS_PATH", str(tmp_path))
    with pytest.raises(WeightsNotFoundError, match="CELLIST_OFFLINE is set"):
        cpa.CellposeModel(cpa.CellposeParams(model="nuclei", diameter=12.0)).predict(_image())


def test_missing_device_is_a_clear_error(tmp_path, monkeypatch, random_net_bytes):
    path = tmp_path / "net"
    path.write_bytes(random_net_bytes)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    model = cpa.CellposeModel(cpa.CellposeParams(model=str(path), device="cuda", diameter=12.0))
    with pytest.raises(DeviceNotAvailableError, match="'cuda'.*not available"):
        model.predict(_image())


def test_network_is_built_and_moved_to_the_chosen_device(tmp_path, random_net_bytes):
    path = tmp_path / "net"
    path.write_bytes(random_net_bytes)
    model = cpa.CellposeModel(cpa.CellposeParams(model=str(path), device="cpu"))
    network = model.network()
    assert network.device == torch.device("cpu") and not network.gpu
    assert {p.device for p in network.net.parameters()} == {torch.device("cpu")}
    moved = model._moved(torch.device("meta"))  # a device every machine has, without memory
    assert moved.device == torch.device("meta") and moved.gpu
    assert {p.device for p in moved.net.parameters()} == {torch.device("meta")}


def test_cuda_cache_is_emptied_after_a_prediction(tmp_path, monkeypatch, random_net_bytes):
    """On CUDA the job ends with torch.cuda.empty_cache(); here the CPU plays CUDA's role."""
    from napari_cellist.models.cellpose_adapter import model as model_module

    path = tmp_path / "net"
    path.write_bytes(random_net_bytes)
    released = []
    monkeypatch.setattr(model_module, "release_device_memory", released.append)
    cpa.CellposeModel(cpa.CellposeParams(model=str(path), diameter=12.0)).predict(_image())
    assert released == [torch.device("cpu")]
