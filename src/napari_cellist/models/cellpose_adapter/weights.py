"""Cellpose weights: found in Cellpose's model folder, downloaded there on first use.

A pretrained name (``cyto3``, ``nuclei``, the ``*_cp3`` dataset models...) is resolved to a file
in Cellpose's own model folder (``$CELLPOSE_LOCAL_MODELS_PATH`` or ``~/.cellpose/models``, under
Cellpose's own file names, so Cellpose's GUI and command line find the same files). A missing
file is fetched by :func:`ensure_weights_iter` through :mod:`napari_cellist.downloads` (verified,
atomic, with progress and Stop) *before* Cellpose is asked to build anything, so Cellpose never
downloads by itself. Offline (``CELLIST_OFFLINE=1``) or when the download fails,
:class:`~napari_cellist.models.base.WeightsNotFoundError` names the file, its URL, the folder and
the alternatives (pick a file, train from scratch).
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ... import downloads
from ...progress import relay
from ...types import Progress
from ..base import WeightsNotFoundError

logger = logging.getLogger(__name__)

MODEL_DIR_ENV = downloads.CELLPOSE_DIR_ENV
MODEL_URL = downloads.CELLPOSE_URL
# Pretrained networks of Cellpose 3 (cellpose.models.MODEL_NAMES, the CPnet ones).
KNOWN_NAMES = downloads.CELLPOSE_NAMES
TRAIN_HINT = (
    "or train a Cellpose model from scratch on your committed annotations (Fine-tune with "
    "start from 'scratch'; command line: cellist train --model cellpose --train-param "
    "start_from=scratch --data DIR --out model.pth)."
)


@dataclass(frozen=True)
class ResolvedWeights:
    """A weights file found on disk.

    Parameters
    ----------
    path : Path
        The CPnet state-dict file.
    name : str
        Pretrained name (``"cyto3"``) or ``""`` for a user file.
    size_path : Path or None
        Cellpose's size-model file (``.npy``) for automatic diameters, when present.
    """

    path: Path
    name: str = ""
    size_path: Path | None = None

    @property
    def diam_mean(self) -> float:
        """Object diameter the network was trained at (the file's own value wins if stored)."""
        return 17.0 if self.name == "nuclei" else 30.0


def model_dir() -> Path:
    """Cellpose's model folder: ``$CELLPOSE_LOCAL_MODELS_PATH`` or ``~/.cellpose/models``.

    Read at call time (``cellpose.models.MODEL_DIR`` is fixed when Cellpose is imported).
    """
    return downloads.cache_folder("cellpose")


pretrained_filename = downloads.cellpose_filename
size_filename = downloads.cellpose_size_filename


def ensure_weights_iter(spec: str) -> Generator[Progress, None, ResolvedWeights]:
    """:func:`resolve_weights`, downloading a missing pretrained network (and its size model)
    first; yields download progress.

    Raises
    ------
    WeightsNotFoundError
        Offline, or the download failed (the message says why and where to put the file).
    """
    spec = str(spec).strip()
    if spec in KNOWN_NAMES and not (model_dir() / pretrained_filename(spec)).is_file():
        if downloads.is_offline():
            return resolve_weights(spec)  # raises the offline message
        yield from relay(downloads.fetch_iter(f"cellpose/{spec}"))
        size_name = f"cellpose/{size_filename(spec)}"
        if size_name in downloads.REGISTRY:
            try:
                yield from relay(downloads.fetch_iter(size_name))
            except WeightsNotFoundError as err:  # optional: diameters then come from the image
                logger.warning("Cellpose size model not downloaded: %s", err)
    return resolve_weights(spec)


def resolve_weights(spec: str) -> ResolvedWeights:
    """Find the weights file for a pretrained name or a model-file path.

    Parameters
    ----------
    spec : str
        ``"cyto3"``, ``"nuclei"``, ... (looked up in :func:`model_dir`) or a file path.

    Raises
    ------
    WeightsNotFoundError
        When the file is not on disk; the message names the file, the folder and alternatives.
    """
    spec = str(spec).strip()
    if not spec:
        raise WeightsNotFoundError(
            f"No Cellpose model chosen: give a pretrained name or a model file, {TRAIN_HINT}"
        )
    as_path = Path(spec).expanduser()
    if as_path.is_file():
        size = as_path.with_name(as_path.name + "_size.npy")
        return ResolvedWeights(as_path, "", size if size.is_file() else None)
    folder = model_dir()
    if spec in KNOWN_NAMES or (os.sep not in spec and (folder / spec).is_file()):
        path = folder / pretrained_filename(spec)
        if path.is_file():
            size = folder / size_filename(spec)
            return ResolvedWeights(path, spec, size if size.is_file() else None)
        raise WeightsNotFoundError(
            f"The Cellpose '{spec}' weights are not on this computer"
            f"{' and ' + downloads.OFFLINE_ENV + ' is set' if downloads.is_offline() else ''}. "
            f"Put the file '{path.name}' (from {MODEL_URL}/{path.name}) into the folder {folder} "
            f"(or set {MODEL_DIR_ENV} to the folder that holds it), choose a model file in the "
            f"'model' parameter, {TRAIN_HINT}"
        )
    if os.sep in spec or as_path.suffix:
        raise WeightsNotFoundError(
            f"The Cellpose model file {as_path} does not exist. Check the path, {TRAIN_HINT}"
        )
    raise WeightsNotFoundError(
        f"Cellpose model {spec!r} is neither a pretrained name ({', '.join(KNOWN_NAMES[:4])}, ...) "
        f"nor an existing file. Check the path, put the file into {folder}, {TRAIN_HINT}"
    )


def build_network(
    weights: ResolvedWeights | None, diam_mean: float = 30.0, device: Any = None
) -> Any:
    """A ``cellpose.models.CellposeModel`` on ``device`` from a resolved file, or with random
    weights.

    Only ever called with a file that exists, so Cellpose never tries to download. The file is
    loaded with ``map_location`` = the device (Cellpose's ``load_model``).

    Parameters
    ----------
    weights : ResolvedWeights or None
        None: random weights (training from scratch).
    diam_mean : float
        Diameter the network works at (random weights only).
    device : torch.device, optional
        Default: the CPU.

    Raises
    ------
    ValueError
        When the file is not a Cellpose 3 network (e.g. a Cellpose 4 / cpsam file).
    """
    import torch

    from ._backend import cellpose_modules

    models = cellpose_modules()[0]
    device = torch.device("cpu") if device is None else torch.device(device)
    gpu = device.type != "cpu"
    if weights is None:
        model = models.CellposeModel(
            gpu=gpu, device=device, pretrained_model=False, diam_mean=diam_mean, nchan=2
        )
        model.net_ortho = None  # Cellpose sets it only when it loads weights; 3D mode reads it
        return model
    try:
        model = models.CellposeModel(
            gpu=gpu,
            device=device,
            pretrained_model=str(weights.path),
            diam_mean=weights.diam_mean,
            nchan=2,
        )
    except (
        AssertionError,
        RuntimeError,
        KeyError,
        OSError,
        EOFError,
        ValueError,
        pickle.UnpicklingError,
    ) as err:
        raise ValueError(
            f"{weights.path} is not a Cellpose 3 model file ({type(err).__name__}: {err}). "
            "Cellpose 4 (cpsam) files need Cellpose 4; pick a cyto3/nuclei/custom Cellpose 3 file."
        ) from err
    logger.info(
        "Loaded Cellpose weights %s on %s (diam_mean %.1f)",
        weights.path,
        device,
        float(model.diam_mean),
    )
    return model
