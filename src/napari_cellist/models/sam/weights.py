"""Finding, downloading and loading Segment Anything checkpoints.

A checkpoint is a file the user picks, a registry name downloaded on first use (``vit_b``,
``vit_l``, ``vit_h``: the official files in ``$CELLIST_SAM_CACHE``, default
``~/.cache/napari-cellist/sam``; ``vit_b_lm``, ``vit_l_lm``, ``vit_b_em_organelles``...:
micro-sam's microscopy models in micro-sam's own cache folder), or empty for whatever official
file is in the cache folder. The architecture is read from the state dict's tensor shapes, so the
official files, micro-sam's fine-tuned ones (saved as ``{"model_state": ..., "decoder_state":
...}`` with ``sam.``-prefixed keys) and smaller (test or distilled) ViT-SAMs load through the same
path; a JSON sidecar ``<checkpoint>.json`` may override inferred values (e.g.
``decoder_num_heads``). Checkpoints are loaded with ``map_location`` = the chosen device.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ... import downloads
from ...progress import relay
from ...types import Progress
from ..base import WeightsNotFoundError
from .architecture import SamConfig, build_sam, infer_config

logger = logging.getLogger(__name__)

CHECKPOINT_NAMES = {
    "vit_b": "sam_vit_b_01ec64.pth",
    "vit_l": "sam_vit_l_0b3195.pth",
    "vit_h": "sam_vit_h_4b8939.pth",
}
DOWNLOAD_URL = "https://dl.fbaipublicfiles.com/segment_anything/{name}"
CACHE_ENV = downloads.SAM_DIR_ENV
MICRO_SAM_MODELS = downloads.MICRO_SAM_MODELS


def cache_dir() -> Path:
    """Folder holding checkpoints and embeddings (``$CELLIST_SAM_CACHE`` or the default)."""
    return downloads.cache_folder("sam")


def registry_name(checkpoint: str | Path | None, model_type: str = "vit_b") -> str | None:
    """The downloads-registry key a checkpoint choice stands for, or None for a path.

    ``"vit_b"``/``"vit_l"``/``"vit_h"`` -> ``"sam/..."``; micro-sam names (``"vit_b_lm"``) ->
    ``"micro_sam/..."``; empty with an explicit ``model_type`` -> that official file.
    """
    text = str(checkpoint or "").strip()
    if not text:
        return f"sam/{model_type}" if model_type in CHECKPOINT_NAMES else None
    if text in CHECKPOINT_NAMES:
        return f"sam/{text}"
    if text in MICRO_SAM_MODELS:
        return f"micro_sam/{text}"
    return None


def ensure_checkpoint_iter(
    checkpoint: str | Path | None, model_type: str = "auto"
) -> Generator[Progress, None, Path]:
    """:func:`resolve_checkpoint`, downloading a registry model on first use (yields progress).

    With an empty ``checkpoint`` and ``model_type="auto"``, a file already in the cache folder
    is used, else ``vit_b`` is downloaded. Offline (``CELLIST_OFFLINE=1``) nothing is fetched
    and the error says which file to put where.
    """
    name = registry_name(checkpoint, model_type)
    if name is None and not str(checkpoint or "").strip():
        try:
            return resolve_checkpoint(None, model_type)
        except WeightsNotFoundError:
            if downloads.is_offline():
                raise
            name = "sam/vit_b"
    if name is None:
        return resolve_checkpoint(checkpoint, model_type)
    return (yield from relay(downloads.fetch_iter(name)))


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
    name = registry_name(checkpoint, "auto")
    if name is not None:
        found = downloads.find(name)
        if found is not None:
            return found
        raise WeightsNotFoundError(
            f"The SAM weights '{checkpoint}' are not on this computer"
            f"{' and ' + downloads.OFFLINE_ENV + ' is set' if downloads.is_offline() else ''}. "
            f"{downloads.how_to_get(downloads.get_file(name))}"
        )
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


@dataclass
class LoadedSam:
    """A SAM model ready to use, with what its checkpoint carried besides the weights.

    ``extra`` holds the other entries of a micro-sam checkpoint (e.g. ``decoder_state``, the
    weights of micro-sam's instance-segmentation decoder), kept for callers that use them.
    """

    sam: Any
    model_id: str
    path: Path
    extra: dict[str, Any] = field(default_factory=dict)


def load_sam(
    checkpoint: str | Path | None, model_type: str = "auto", device: Any = None
) -> tuple[Any, str]:
    """Load a SAM checkpoint (already on disk) onto ``device``.

    Parameters
    ----------
    checkpoint : str, Path or None
        See :func:`resolve_checkpoint` (use :func:`ensure_checkpoint_iter` to download first).
    model_type : str
        ``"auto"`` (read the architecture from the file) or ``"vit_b"``/``"vit_l"``/``"vit_h"``
        (built by ``segment_anything.sam_model_registry``).
    device : torch.device or str, optional
        Where the weights go (``map_location``); default the CPU.

    Returns
    -------
    sam : segment_anything.modeling.Sam
        The model in eval mode on ``device``.
    model_id : str
        Identifies the weights (file name, size and a hash of its head and tail) for caches.
    """
    path = resolve_checkpoint(checkpoint, "vit_b" if model_type == "auto" else model_type)
    loaded = load_sam_file(path, model_type, device)
    return loaded.sam, loaded.model_id


def load_sam_file(path: str | Path, model_type: str = "auto", device: Any = None) -> LoadedSam:
    """Load the checkpoint file ``path`` onto ``device`` (see :func:`load_sam`)."""
    import torch

    path = Path(path)
    device = torch.device("cpu") if device is None else torch.device(device)
    with _cyclic_gc_paused():
        sam, extra = _build_and_load(path, model_type, device)
    logger.info("Loaded SAM checkpoint %s on %s", path, device)
    return LoadedSam(sam.eval(), model_id(path), path, extra)


def split_checkpoint(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(sam_state_dict, extra)`` of a checkpoint in any of the known layouts.

    * a plain SAM state dict (official files);
    * ``{"model": state_dict}``;
    * micro-sam / torch_em: ``{"model_state": state_dict with "sam."-prefixed keys,
      "decoder_state": ..., ...}`` (the other entries are returned in ``extra``).
    """
    if not isinstance(state, dict) or "image_encoder.pos_embed" in state:
        return state, {}
    for key in ("model_state", "model"):
        if key in state and isinstance(state[key], dict):
            inner = {
                (k[len("sam.") :] if k.startswith("sam.") else k): v for k, v in state[key].items()
            }
            return inner, {k: v for k, v in state.items() if k != key}
    return state, {}


def _build_and_load(path: Path, model_type: str, device: Any) -> tuple[Any, dict[str, Any]]:
    from .torchvision_compat import load_segment_anything

    state_dict, extra = split_checkpoint(_read_state_dict(path, device))
    if model_type in CHECKPOINT_NAMES:  # "auto" reads the architecture from the tensors
        sam = load_segment_anything().sam_model_registry[model_type](checkpoint=None)
    else:
        sam = build_sam(_with_sidecar(infer_config(state_dict), path))
    sam.load_state_dict(state_dict)
    return sam.to(device), extra


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


def _read_state_dict(path: Path, device: Any = None) -> dict[str, Any]:
    """Tensors of a checkpoint, loaded with ``map_location=device``; memory-mapped on the CPU
    when the format allows, which also keeps the GIL free enough for a responsive viewer while a
    worker thread loads 375 MB-2.5 GB."""
    import torch

    location = torch.device("cpu") if device is None else torch.device(device)
    if location.type != "cpu":
        return torch.load(path, map_location=location, weights_only=True)
    try:
        return torch.load(path, map_location=location, weights_only=True, mmap=True)
    except RuntimeError:  # legacy (non-zip) checkpoint format: no mmap
        return torch.load(path, map_location=location, weights_only=True)


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
