"""Which torch device a model runs on, per-job thread counts, and releasing device memory.

Every torch model (Cellpose, SAM, AIR) takes a ``device`` choice: ``"auto"`` picks CUDA, then
Apple's MPS, then the CPU (the order micro-sam uses); ``"cuda"``, ``"cuda:1"``, ``"mps"`` or
``"cpu"`` ask for one, and a device that is not there is a clear :class:`DeviceNotAvailableError`
instead of a crash deep inside torch. Nothing here imports torch at import time.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger(__name__)

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")
DEVICE_ENV = "CELLIST_DEVICE"


class DeviceNotAvailableError(ValueError):
    """The chosen device is not on this computer (or this torch build cannot use it)."""


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available() and mps.is_built())


def available_devices() -> list[str]:
    """Device kinds usable here, best first (``"cpu"`` always last)."""
    found = ["cuda"] if _cuda_available() else []
    return found + (["mps"] if _mps_available() else []) + ["cpu"]


def default_choice() -> str:
    """``$CELLIST_DEVICE`` or ``"auto"``."""
    return os.environ.get(DEVICE_ENV, "").strip() or "auto"


def resolve_device(choice: str | Any | None = "auto") -> Any:
    """The ``torch.device`` for a user's choice.

    Parameters
    ----------
    choice : str, torch.device or None
        ``"auto"`` / None / ``""`` (CUDA > MPS > CPU), ``"cuda"``, ``"cuda:N"``, ``"mps"`` or
        ``"cpu"`` (case-insensitive).

    Returns
    -------
    torch.device

    Raises
    ------
    DeviceNotAvailableError
        The device is not available here (the message lists the ones that are).
    ValueError
        For a name that is not a device.
    """
    import torch

    if isinstance(choice, torch.device):
        choice = str(choice)
    name = (choice or "auto").strip().lower()
    if name == "auto":
        return torch.device(available_devices()[0])
    kind, _, index = name.partition(":")
    if kind not in DEVICE_CHOICES or (index and not index.isdigit()):
        raise ValueError(f"Unknown device {choice!r}; use one of {', '.join(DEVICE_CHOICES)}.")
    if kind == "cuda":
        _check_cuda(int(index or 0))
    elif kind == "mps" and not _mps_available():
        raise DeviceNotAvailableError(
            "The device 'mps' (Apple silicon GPU) is not available: this torch build or this "
            f"computer has none. Available: {', '.join(available_devices())}; choose 'auto' or "
            "'cpu'."
        )
    return torch.device(name)


def _check_cuda(index: int) -> None:
    import torch

    if not _cuda_available():
        raise DeviceNotAvailableError(
            "The device 'cuda' (NVIDIA GPU) is not available: no CUDA GPU was found or this "
            f"torch is a CPU-only build ({torch.__version__}). Available: "
            f"{', '.join(available_devices())}; choose 'auto' or 'cpu', or install a CUDA "
            "build of torch."
        )
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceNotAvailableError(
            f"The device 'cuda:{index}' does not exist: this computer has {count} CUDA GPU(s) "
            f"(cuda:0..cuda:{count - 1})."
        )


def release_device_memory(device: Any | None = None) -> None:
    """Give cached GPU memory back after a job (``torch.cuda.empty_cache()`` /
    ``torch.mps.empty_cache()``); nothing to do on the CPU.

    Parameters
    ----------
    device : torch.device or str, optional
        The job's device; None releases whatever accelerator is present.
    """
    import torch

    kind = getattr(device, "type", str(device or "").split(":")[0]) or None
    if kind == "cpu":
        return
    gc.collect()
    if kind in (None, "cuda") and _cuda_available():
        torch.cuda.empty_cache()
        logger.debug("released cached CUDA memory")
    if kind in (None, "mps") and _mps_available():
        torch.mps.empty_cache()


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Use ``count`` intra-op CPU threads inside the block and restore the previous number after
    (torch's setting is process-wide, so a job sets it for its own duration only).

    Parameters
    ----------
    count : int or None
        Threads; None or < 1 leaves the setting as it is.
    """
    import torch

    if not count or count < 1:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(int(count))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def device_job(choice: str | Any | None = "auto", threads: int | None = None) -> Iterator[Any]:
    """A job on a device: resolves ``choice``, sets the CPU thread count for the job, and
    releases the device's cached memory when the job ends (also on error or Stop).

    Yields
    ------
    torch.device
    """
    device = resolve_device(choice)
    try:
        with torch_threads(threads):
            yield device
    finally:
        release_device_memory(device)
