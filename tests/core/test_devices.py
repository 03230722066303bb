"""Device choice on the CPU: torch's availability functions are replaced to play each machine."""

from __future__ import annotations

import pytest
import torch

from napari_cellist import devices
from napari_cellist.devices import DeviceNotAvailableError, resolve_device


@pytest.fixture
def machine(monkeypatch):
    """``machine(cuda=..., mps=..., gpus=...)`` makes torch report those accelerators."""

    def make(cuda: bool = False, mps: bool = False, gpus: int = 1) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus if cuda else 0)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
        monkeypatch.setattr(torch.backends.mps, "is_built", lambda: mps)

    return make


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [(True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_auto_prefers_cuda_then_mps_then_cpu(machine, cuda, mps, expected):
    machine(cuda=cuda, mps=mps)
    assert resolve_device("auto") == torch.device(expected)
    assert resolve_device(None) == torch.device(expected)
    assert devices.available_devices()[0] == expected
    assert devices.available_devices()[-1] == "cpu"


def test_explicit_devices(machine):
    machine(cuda=True, mps=False, gpus=2)
    assert resolve_device("CUDA") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(DeviceNotAvailableError, match=r"cuda:2.*2 CUDA GPU"):
        resolve_device("cuda:2")


def test_missing_cuda_says_what_is_available(machine):
    machine(cuda=False, mps=False)
    with pytest.raises(DeviceNotAvailableError) as info:
        resolve_device("cuda")
    message = str(info.value)
    assert "'cuda'" in message and "not available" in message and "Available: cpu" in message
    assert "'auto' or 'cpu'" in message


def test_missing_mps(machine):
    machine(cuda=True, mps=False)
    with pytest.raises(DeviceNotAvailableError, match=r"'mps'.*Available: cuda, cpu"):
        resolve_device("mps")


def test_unknown_device_name():
    with pytest.raises(ValueError, match="use one of auto, cuda, mps, cpu"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="Unknown device"):
        resolve_device("cuda:x")


def test_release_memory_empties_the_cuda_cache_only_for_cuda(machine, monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append("cuda"))
    monkeypatch.setattr(torch.mps, "empty_cache", lambda: calls.append("mps"))
    machine(cuda=True, mps=True)
    devices.release_device_memory(torch.device("cpu"))
    assert calls == []
    devices.release_device_memory(torch.device("cuda:0"))
    assert calls == ["cuda"]
    devices.release_device_memory("mps")
    assert calls == ["cuda", "mps"]


def test_device_job_releases_memory_and_restores_threads_even_on_error(machine, monkeypatch):
    machine(cuda=True)
    released = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: released.append(True))
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="boom"):
        with devices.device_job("auto", threads=1) as device:
            assert device == torch.device("cuda")
            assert torch.get_num_threads() == 1
            raise RuntimeError("boom")
    assert released == [True]
    assert torch.get_num_threads() == before


def test_torch_threads_is_per_job():
    before = torch.get_num_threads()
    with devices.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with devices.torch_threads(None):
        assert torch.get_num_threads() == before


def test_default_choice_from_environment(monkeypatch):
    monkeypatch.delenv("CELLIST_DEVICE", raising=False)
    assert devices.default_choice() == "auto"
    monkeypatch.setenv("CELLIST_DEVICE", "cpu")
    assert devices.default_choice() == "cpu"
