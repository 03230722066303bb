"""AIR's device choice (auto / cuda / mps / cpu), tested on the CPU: selection, where the network
and its tensors go, checkpoints mapped onto the device, memory released after every job, and
CPU results byte-identical to those from before the device choice existed."""

from __future__ import annotations

import hashlib
from dataclasses import fields

import numpy as np
import pytest
import tifffile
import torch

from napari_cellist import devices
from napari_cellist._sample_data import sample_image_path, sample_mask_path
from napari_cellist.devices import DEVICE_CHOICES, DeviceNotAvailableError
from napari_cellist.models.air import AirModel, AirParams, AirTrainParams
from napari_cellist.models.air import model as air_model
from napari_cellist.models.air import training as air_training
from napari_cellist.models.air.generative import Batch
from napari_cellist.models.cellpose_adapter.params import CellposeParams
from napari_cellist.progress import drain
from napari_cellist.types import Sample

TINY = AirTrainParams(steps=2, batch_size=2, crop_size=64, scale_jitter=0.0)

# Computed at commit 78a0046 (before AIR had a device choice) by the steps of
# `test_cpu_results_are_byte_identical_to_before_the_device_choice`: 40 steps from seed 0 on the
# packaged DSB crop, then prediction with two grid positions (24 objects).
REFERENCE_OBJECTS = 24
REFERENCE_LABELS_SHA256 = "8dbac15fd906eaf96d341ac26baff899c896e159a99bb44bcb655c7dd1be8e55"
REFERENCE_RECONSTRUCTION_SHA256 = "d4e63a039c36e6e946589b5a21353e64aaae81d1bb653f372a4ab1921a6707d5"


def _crop(side: int = 128):
    image = tifffile.imread(sample_image_path())[128 : 128 + side, 128 : 128 + side]
    labels = tifffile.imread(sample_mask_path())[128 : 128 + side, 128 : 128 + side]
    return image, labels.astype(np.int32)


def _no_accelerators(monkeypatch):
    monkeypatch.setattr(devices, "_cuda_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)


def _cuda_is_the_cpu(monkeypatch) -> list:
    """Make 'cuda' resolve to the CPU in the AIR model (so the moving code runs here); returns
    the list of choices resolved."""
    asked = []

    def fake(choice="auto"):
        asked.append(choice)
        return torch.device("cpu")

    monkeypatch.setattr(air_model, "resolve_device", fake)
    monkeypatch.setattr(devices, "resolve_device", fake)  # device_job (training)
    return asked


def test_device_field_matches_cellpose_so_the_form_and_cli_offer_it():
    air = {f.name: f for f in fields(AirParams)}["device"]
    cellpose = {f.name: f for f in fields(CellposeParams)}["device"]
    assert air.default == "auto" == cellpose.default
    assert air.metadata["choices"] == DEVICE_CHOICES == cellpose.metadata["choices"]


def test_cli_device_goes_into_air_params_instead_of_being_refused():
    from napari_cellist.cli import _apply_device

    values: dict = {}
    _apply_device("air", values, "cuda")
    assert values == {"device": "cuda"}


def test_auto_runs_on_the_cpu_when_there_is_no_gpu(monkeypatch):
    _no_accelerators(monkeypatch)
    image, labels = _crop(96)
    model = AirModel(AirParams(device="auto", test_time_shifts=1))
    drain(model.fit_iter([Sample(image, labels)], TINY))
    assert model.predict(image).labels.shape == image.shape
    assert {p.device.type for p in model.net.parameters()} == {"cpu"}
    assert model.device == torch.device("cpu")


@pytest.mark.parametrize("choice", ["cuda", "mps"])
def test_a_missing_device_is_a_clear_error_for_prediction_training_and_loading(
    monkeypatch, tmp_path, choice
):
    _no_accelerators(monkeypatch)
    image, labels = _crop(64)
    model = AirModel(AirParams(device=choice))
    with pytest.raises(DeviceNotAvailableError, match=f"'{choice}'.*not available.*'cpu'"):
        model.predict(image)
    with pytest.raises(DeviceNotAvailableError, match=f"'{choice}'.*not available"):
        drain(model.fit_iter([Sample(image, labels)], TINY))
    path = AirModel().save(tmp_path / "air.pt")
    with pytest.raises(DeviceNotAvailableError, match=f"'{choice}'"):
        AirModel.load(path, device=choice)


def test_training_and_prediction_move_the_network_and_batches_to_the_chosen_device(monkeypatch):
    asked = _cuda_is_the_cpu(monkeypatch)
    moved_batches = []
    real_batch_to = air_training.batch_to

    def spy_batch_to(batch, device):
        moved_batches.append(device)
        return real_batch_to(batch, device)

    monkeypatch.setattr(air_training, "batch_to", spy_batch_to)
    image, labels = _crop(96)
    model = AirModel(AirParams(device="cuda", test_time_shifts=1))
    moves = []
    real_to = torch.nn.Module.to

    def spy_to(module, *args, **kwargs):
        if module is model.net:
            moves.append(args[0] if args else kwargs.get("device"))
        return real_to(module, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", spy_to)
    drain(model.fit_iter([Sample(image, labels)], TINY))
    assert moved_batches == [torch.device("cpu")] * TINY.steps  # every training batch moved
    assert "cuda" in asked  # the device of the params was resolved for the training job
    moves.clear()
    prediction = model.predict(image)
    assert moves == [torch.device("cpu")]  # prediction moved the network to the chosen device
    assert isinstance(prediction.labels, np.ndarray)
    assert isinstance(prediction.extras["reconstruction"], np.ndarray)
    assert {p.device.type for p in model.net.parameters()} == {"cpu"}


def test_batch_to_moves_tensors_and_keeps_absent_targets():
    batch = Batch(torch.zeros(1, 1, 8, 8), torch.ones(1, 1, 8, 8))
    moved = air_training.batch_to(batch, torch.device("cpu"))
    assert moved.image.device.type == "cpu" and moved.pres_target is None
    assert torch.equal(moved.background, batch.background)


def test_checkpoints_load_onto_the_device_and_do_not_store_the_device(monkeypatch, tmp_path):
    image, labels = _crop(64)
    model = AirModel(AirParams(device="cpu"))
    drain(model.fit_iter([Sample(image, labels)], TINY))
    path = model.save(tmp_path / "air.pt")
    stored = torch.load(path, map_location="cpu", weights_only=True)
    assert "device" not in stored["params"]  # a GPU-trained model opens on a laptop
    locations = []
    real_load = torch.load

    def spy_load(*args, **kwargs):
        locations.append(kwargs.get("map_location"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy_load)
    loaded = AirModel.load(path, device="cpu")
    assert locations == [torch.device("cpu")]
    assert loaded.params.device == "auto"
    assert {p.device.type for p in loaded.net.parameters()} == {"cpu"}
    for key, value in model.net.state_dict().items():
        assert torch.equal(value, loaded.net.state_dict()[key])


def test_device_memory_is_released_after_every_job_also_on_error(monkeypatch):
    released = []
    monkeypatch.setattr(air_model, "release_device_memory", released.append)
    monkeypatch.setattr(devices, "release_device_memory", released.append)
    image, labels = _crop(64)
    model = AirModel(AirParams(device="cpu", test_time_shifts=1))
    drain(model.fit_iter([Sample(image, labels)], TINY))
    # the training job, and the prediction that scores the trained model inside it
    assert released == [torch.device("cpu")] * 2
    released.clear()
    model.predict(image)
    assert released == [torch.device("cpu")]
    released.clear()
    with pytest.raises(ValueError, match="2D"):
        model.predict(np.zeros((3, 16, 16), np.float32) + np.arange(16))
    assert released == [torch.device("cpu")]


def test_training_sets_its_thread_count_for_the_job_only():
    before = torch.get_num_threads()
    image, labels = _crop(64)
    seen = []
    model = AirModel(AirParams(device="cpu"))
    for _ in model.fit_iter([Sample(image, labels)], TINY):
        seen.append(torch.get_num_threads())
    assert seen and set(seen) == {TINY.threads}
    assert torch.get_num_threads() == before


def test_cpu_results_are_byte_identical_to_before_the_device_choice():
    image, labels = _crop(128)
    # the reference predates background flattening (on by default since): pinned off
    model = AirModel(AirParams(device="cpu", flatten_background=False))
    drain(
        model.fit_iter(
            [Sample(image, labels, name="crop")],
            AirTrainParams(steps=40, batch_size=2, crop_size=64, scale_jitter=0.0),
        )
    )
    prediction = model.predict(
        image,
        AirParams(device="cpu", test_time_shifts=2, min_score=0.02, flatten_background=False),
    )
    found = np.ascontiguousarray(prediction.labels, np.int32)
    recon = np.ascontiguousarray(prediction.extras["reconstruction"], np.float32)
    assert found.max() == REFERENCE_OBJECTS
    assert hashlib.sha256(found.tobytes()).hexdigest() == REFERENCE_LABELS_SHA256
    assert hashlib.sha256(recon.tobytes()).hexdigest() == REFERENCE_RECONSTRUCTION_SHA256


def test_cli_predicts_with_air_on_the_chosen_device(tmp_path, capsys, monkeypatch):
    from napari_cellist.cli import main

    _no_accelerators(monkeypatch)
    image, labels = _crop(64)
    model = AirModel()
    drain(model.fit_iter([Sample(image, labels)], TINY))
    checkpoint = model.save(tmp_path / "air.pt")
    (tmp_path / "images").mkdir()
    tifffile.imwrite(tmp_path / "images" / "a.tif", image)
    args = ["predict", str(tmp_path / "images"), "--out", str(tmp_path / "out")]
    args += ["--model", "air", "--checkpoint", str(checkpoint), "--param", "test_time_shifts=1"]
    assert main([*args, "--device", "cuda"]) != 0
    err = capsys.readouterr().err
    assert "'cuda'" in err and "CPU only" not in err  # the missing device, not a refusal
    assert main([*args, "--device", "cpu"]) == 0
    assert list((tmp_path / "out").iterdir())
