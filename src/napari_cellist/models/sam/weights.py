"""Finding and loading Segment Anything checkpoints.

A checkpoint is either a file the user picks or one of the official files in the cache folder
(``$CELLIST_SAM_CACHE``, default ``~/.cache/napari-cellist/sam``) under its standard name. The
architecture is read from the state dict's tensor shapes, so the official ``vit_b``/``vit_l``/
``vit_h`` files and smaller (e.g. test or distilled) ViT-SAMs load through the same path; a JSON
sidecar ``<checkpoint>.json`` may override inferred values (e.g. ``decoder_num_heads``).
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from ..base import WeightsNotFoundError
from .architecture import SamConfig, build_sam, infer_config

logger = logging.getLogger(__name__)

CHECKPOINT_NAMES = {
    "vit_b": "sam_vit_b_01ec64.pth",
    "vit_l": "sam_vit_l_0b3195.pth",
    "vit_h": "sam_vit_h_4b8939.pth",
}
DOWNLOAD_URL = "https://dl.fbaipublicfiles.com/segment_anything/{name}"
CACHE_ENV = "CELLIST_SAM_CACHE"


def cache_dir() -> Path:
    """Folder holding checkpoints and embeddings (``$CELLIST_SAM_CACHE`` or the default)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "napari-cellist" / "sam")


def resolve_checkpoint(checkpoint: str | Path | None, model_type: str = "vit_b") -> Path:
    """Path of the checkpoint to load.

    Parameters
    ----------
    checkpoint : str, Path or None
        A checkpoint file, a folder holding a standard-named file, or None/"" for the cache
        folder.
    model_type : str
        ``"vit_b"``, ``"vit_l"`` or ``"vit_h"``: which standard file to look for in a folder
        (``"auto"`` takes the first one found, smallest first).

    Raises
    ------
    WeightsNotFoundError
        No such file; the message names the file, its download URL and the folder.
    """
    if checkpoint and Path(checkpoint).expanduser().is_file():
        return Path(checkpoint).expanduser()
    folder = Path(checkpoint).expanduser() if checkpoint else cache_dir()
    if checkpoint and not folder.is_dir():
        raise WeightsNotFoundError(
            f"SAM checkpoint {str(checkpoint)!r} does not exist. {_how_to_get(model_type, folder.parent)}"
        )
    types_ = list(CHECKPOINT_NAMES) if model_type == "auto" else [model_type]
    for type_ in types_:
        if type_ not in CHECKPOINT_NAMES:
            raise ValueError(f"Unknown SAM model type {type_!r}; use vit_b, vit_l, vit_h or auto.")
        candidate = folder / CHECKPOINT_NAMES[type_]
        if candidate.is_file():
            return candidate
    raise WeightsNotFoundError(
        f"No SAM checkpoint found in {folder}. {_how_to_get(model_type, folder)}"
    )


def _how_to_get(model_type: str, folder: Path) -> str:
    name = CHECKPOINT_NAMES.get(model_type, CHECKPOINT_NAMES["vit_b"])
    return (
        f"Download {name} from {DOWNLOAD_URL.format(name=name)} and put it in {folder} "
        f"(or set {CACHE_ENV} to the folder holding it, or pick the file as the checkpoint)."
    )


def load_sam(checkpoint: str | Path | None, model_type: str = "auto") -> tuple[Any, str]:
    """Load a SAM checkpoint on the CPU.

    Parameters
    ----------
    checkpoint : str, Path or None
        See :func:`resolve_checkpoint`.
    model_type : str
        ``"auto"`` (read the architecture from the file) or ``"vit_b"``/``"vit_l"``/``"vit_h"``
        (built by ``segment_anything.sam_model_registry``).

    Returns
    -------
    sam : segment_anything.modeling.Sam
        The model in eval mode.
    model_id : str
        Identifies the weights (file name, size and a hash of its head and tail) for caches.
    """
    path = resolve_checkpoint(checkpoint, "vit_b" if model_type == "auto" else model_type)
    with _cyclic_gc_paused():
        sam = _build_and_load(path, model_type)
    logger.info("Loaded SAM checkpoint %s", path)
    return sam.eval(), model_id(path)


def _build_and_load(path: Path, model_type: str) -> Any:
    from .torchvision_compat import load_segment_anything

    state_dict = _read_state_dict(path)
    if (
        isinstance(state_dict, dict)
        and "model" in state_dict
        and "image_encoder.pos_embed" not in state_dict
    ):
        state_dict = state_dict["model"]
    standard = {name: type_ for type_, name in CHECKPOINT_NAMES.items()}
    if model_type == "auto" and path.name in standard:
        model_type = standard[path.name]
    if model_type in CHECKPOINT_NAMES:
        sam = load_segment_anything().sam_model_registry[model_type](checkpoint=None)
    else:
        sam = build_sam(_with_sidecar(infer_config(state_dict), path))
    sam.load_state_dict(state_dict)
    return sam


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a model is built.

    Building a SAM creates many small Python objects; in a process as large as a napari viewer
    (~470k tracked objects) that triggers full collections which stop every thread, the GUI's
    included: we measured 120-250 ms event-loop gaps while a vit_b checkpoint loaded in a worker,
    76 ms with the collector out of the way. Reference counting still frees memory meanwhile;
    the collector's previous state is restored afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _read_state_dict(path: Path) -> dict[str, Any]:
    """Tensors of a checkpoint; memory-mapped when the format allows, which also keeps the
    GIL free enough for a responsive viewer while a worker thread loads 375 MB-2.5 GB."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # legacy (non-zip) checkpoint format: no mmap
        return torch.load(path, map_location="cpu", weights_only=True)


def _with_sidecar(config: SamConfig, path: Path) -> SamConfig:
    sidecar = path.with_suffix(path.suffix + ".json")
    if not sidecar.is_file():
        return config
    values = json.loads(sidecar.read_text())
    known = asdict(config)
    unknown = set(values) - set(known)
    if unknown:
        raise ValueError(f"Unknown keys {sorted(unknown)} in {sidecar}; known: {sorted(known)}.")
    if "encoder_global_attn_indexes" in values:
        values["encoder_global_attn_indexes"] = tuple(values["encoder_global_attn_indexes"])
    return replace(config, **values)


def model_id(path: Path) -> str:
    """Short id of a weights file from its name, size and first/last MiB (fast for 2.5 GB)."""
    size = path.stat().st_size
    digest = hashlib.sha256(f"{path.name}:{size}".encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(1 << 20))
        handle.seek(max(0, size - (1 << 20)))
        digest.update(handle.read(1 << 20))
    return f"{path.stem}-{digest.hexdigest()[:16]}"
