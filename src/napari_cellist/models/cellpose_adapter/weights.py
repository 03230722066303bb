"""Finding Cellpose weights on this computer, never downloading them.

Cellpose 3 downloads a missing pretrained file from cellpose.org when a model is built by name. A
computer without internet would hang or fail deep inside that call, so this module resolves a
name to a file in Cellpose's model folder *before* anything is built, and raises
:class:`~napari_cellist.models.base.WeightsNotFoundError` with the file name, the folder and the
alternatives (pick a file, train from scratch) when the file is not there.
"""

from __future__ import annotations

import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base import WeightsNotFoundError

logger = logging.getLogger(__name__)

MODEL_DIR_ENV = "CELLPOSE_LOCAL_MODELS_PATH"
MODEL_URL = "https://www.cellpose.org/models"
# Pretrained networks of Cellpose 3 (cellpose.models.MODEL_NAMES, the CPnet ones).
KNOWN_NAMES = (
    "cyto3", "nuclei", "cyto2", "cyto", "cyto2_cp3", "tissuenet_cp3", "livecell_cp3",
    "yeast_PhC_cp3", "yeast_BF_cp3", "bact_phase_cp3", "bact_fluor_cp3", "deepbacs_cp3",
    "neurips_cellpose_default", "neurips_grayscale_cyto2",
)  # fmt: skip
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
    env = os.environ.get(MODEL_DIR_ENV)
    return Path(env) if env else Path.home() / ".cellpose" / "models"


def pretrained_filename(name: str) -> str:
    """File name Cellpose 3 stores the pretrained network ``name`` under."""
    return f"{name}torch_0" if name in ("cyto", "cyto2", "nuclei") else name


def size_filename(name: str) -> str:
    """File name of the size model (automatic diameter) of a pretrained network."""
    return "size_cyto3.npy" if name == "cyto3" else f"size_{name}torch_0.npy"


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
            f"The Cellpose '{spec}' weights are not on this computer (nothing is downloaded). "
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


def build_network(weights: ResolvedWeights | None, diam_mean: float = 30.0) -> Any:
    """A CPU ``cellpose.models.CellposeModel`` from a resolved file, or with random weights.

    Only ever called with a file that exists, so Cellpose never tries to download.

    Raises
    ------
    ValueError
        When the file is not a Cellpose 3 network (e.g. a Cellpose 4 / cpsam file).
    """
    import torch

    from ._backend import cellpose_modules

    models = cellpose_modules()[0]
    cpu = torch.device("cpu")
    if weights is None:
        model = models.CellposeModel(
            gpu=False, device=cpu, pretrained_model=False, diam_mean=diam_mean, nchan=2
        )
        model.net_ortho = None  # Cellpose sets it only when it loads weights; 3D mode reads it
        return model
    try:
        model = models.CellposeModel(
            gpu=False,
            device=cpu,
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
    logger.info("Loaded Cellpose weights %s (diam_mean %.1f)", weights.path, float(model.diam_mean))
    return model
