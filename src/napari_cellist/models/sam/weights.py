"""Finding and loading Segment Anything checkpoints.

A checkpoint is either a file the user picks or one of the official files in the cache folder
(``$CELLIST_SAM_CACHE``, default ``~/.cache/napari-cellist/sam``) under its standard name. The
architecture is read from the state dict's tensor shapes, so the official ``vit_b``/``vit_l``/
``vit_h`` files and smaller (e.g. test or distilled) ViT-SAMs load through the same path; a JSON
sidecar ``<checkpoint>.json`` may override inferred values (e.g. ``decoder_num_heads``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ..base import WeightsNotFoundError

logger = logging.getLogger(__name__)

CHECKPOINT_NAMES = {
    "vit_b": "sam_vit_b_01ec64.pth",
    "vit_l": "sam_vit_l_0b3195.pth",
    "vit_h": "sam_vit_h_4b8939.pth",
}
DOWNLOAD_URL = "https://dl.fbaipublicfiles.com/segment_anything/{name}"
CACHE_ENV = "CELLIST_SAM_CACHE"


@dataclass(frozen=True)
class SamConfig:
    """Architecture of a ViT Segment Anything model (sizes in pixels / channels)."""

    encoder_embed_dim: int
    encoder_depth: int
    encoder_num_heads: int
    encoder_global_attn_indexes: tuple[int, ...]
    img_size: int = 1024
    patch_size: int = 16
    window_size: int = 14
    mlp_ratio: float = 4.0
    prompt_embed_dim: int = 256
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_num_heads: int = 8
    iou_head_hidden_dim: int = 256
    num_multimask_outputs: int = 3


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
    raise WeightsNotFoundError(f"No SAM checkpoint found in {folder}. {_how_to_get(model_type, folder)}")


def _how_to_get(model_type: str, folder: Path) -> str:
    name = CHECKPOINT_NAMES.get(model_type, CHECKPOINT_NAMES["vit_b"])
    return (
        f"Download {name} from {DOWNLOAD_URL.format(name=name)} and put it in {folder} "
        f"(or set {CACHE_ENV} to the folder holding it, or pick the file as the checkpoint)."
    )


def infer_config(state_dict: dict[str, Any]) -> SamConfig:
    """Architecture of a ViT-SAM from its state-dict tensor shapes.

    Raises
    ------
    ValueError
        If the state dict is not a ViT Segment Anything model.
    """
    try:
        patch = state_dict["image_encoder.patch_embed.proj.weight"]
        pos = state_dict["image_encoder.pos_embed"]
    except KeyError as err:
        raise ValueError(
            f"Not a ViT Segment Anything checkpoint (missing {err}); use an official SAM file."
        ) from None
    embed_dim, patch_size = int(patch.shape[0]), int(patch.shape[-1])
    grid = int(pos.shape[1])
    depth = _count(state_dict, r"image_encoder\.blocks\.(\d+)\.")
    rel = [int(state_dict[f"image_encoder.blocks.{i}.attn.rel_pos_h"].shape[0]) for i in range(depth)]
    head_dim = int(state_dict["image_encoder.blocks.0.attn.rel_pos_h"].shape[1])
    global_idx = tuple(i for i, n in enumerate(rel) if n == 2 * grid - 1)
    window = next(((n + 1) // 2 for n in rel if n != 2 * grid - 1), 14)
    return SamConfig(
        encoder_embed_dim=embed_dim,
        encoder_depth=depth,
        encoder_num_heads=embed_dim // head_dim,
        encoder_global_attn_indexes=global_idx,
        img_size=grid * patch_size,
        patch_size=patch_size,
        window_size=window,
        mlp_ratio=state_dict["image_encoder.blocks.0.mlp.lin1.weight"].shape[0] / embed_dim,
        prompt_embed_dim=int(state_dict["image_encoder.neck.0.weight"].shape[0]),
        mask_in_chans=int(state_dict["prompt_encoder.mask_downscaling.3.weight"].shape[0]),
        decoder_depth=_count(state_dict, r"mask_decoder\.transformer\.layers\.(\d+)\."),
        decoder_mlp_dim=int(state_dict["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0]),
        iou_head_hidden_dim=int(state_dict["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0]),
        num_multimask_outputs=int(state_dict["mask_decoder.mask_tokens.weight"].shape[0]) - 1,
    )


def _count(state_dict: dict[str, Any], pattern: str) -> int:
    found = {int(m.group(1)) for k in state_dict if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def build_sam(config: SamConfig) -> Any:
    """An (untrained) ``segment_anything.modeling.Sam`` of this architecture, on the CPU."""
    from functools import partial

    import torch

    from .torchvision_compat import load_segment_anything

    load_segment_anything()
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    grid = config.img_size // config.patch_size
    dim = config.prompt_embed_dim
    encoder = ImageEncoderViT(
        depth=config.encoder_depth,
        embed_dim=config.encoder_embed_dim,
        img_size=config.img_size,
        mlp_ratio=config.mlp_ratio,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        num_heads=config.encoder_num_heads,
        patch_size=config.patch_size,
        qkv_bias=True,
        use_rel_pos=True,
        global_attn_indexes=config.encoder_global_attn_indexes,
        window_size=config.window_size,
        out_chans=dim,
    )
    prompt = PromptEncoder(
        embed_dim=dim,
        image_embedding_size=(grid, grid),
        input_image_size=(config.img_size, config.img_size),
        mask_in_chans=config.mask_in_chans,
    )
    transformer = TwoWayTransformer(
        depth=config.decoder_depth,
        embedding_dim=dim,
        mlp_dim=config.decoder_mlp_dim,
        num_heads=config.decoder_num_heads,
    )
    decoder = MaskDecoder(
        num_multimask_outputs=config.num_multimask_outputs,
        transformer=transformer,
        transformer_dim=dim,
        iou_head_depth=3,
        iou_head_hidden_dim=config.iou_head_hidden_dim,
    )
    sam = Sam(image_encoder=encoder, prompt_encoder=prompt, mask_decoder=decoder)
    return sam.eval()


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
    import torch

    from .torchvision_compat import load_segment_anything

    path = resolve_checkpoint(checkpoint, "vit_b" if model_type == "auto" else model_type)
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state_dict, dict) and "model" in state_dict and "image_encoder.pos_embed" not in state_dict:
        state_dict = state_dict["model"]
    standard = {name: type_ for type_, name in CHECKPOINT_NAMES.items()}
    if model_type == "auto" and path.name in standard:
        model_type = standard[path.name]
    if model_type in CHECKPOINT_NAMES:
        sam = load_segment_anything().sam_model_registry[model_type](checkpoint=None)
    else:
        sam = build_sam(_with_sidecar(infer_config(state_dict), path))
    sam.load_state_dict(state_dict)
    logger.info("Loaded SAM checkpoint %s", path)
    return sam.eval(), model_id(path)


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


TINY_CONFIG = SamConfig(
    encoder_embed_dim=32,
    encoder_depth=2,
    encoder_num_heads=2,
    encoder_global_attn_indexes=(1,),
    img_size=128,
    window_size=4,
    prompt_embed_dim=32,
    decoder_mlp_dim=64,
    iou_head_hidden_dim=32,
)


def write_random_checkpoint(path: str | Path, config: SamConfig = TINY_CONFIG, seed: int = 0) -> Path:
    """Save the state dict of a randomly initialised SAM (tests, benchmarks, demos).

    The file loads through :func:`load_sam` exactly like an official checkpoint; its masks are
    meaningless. Written atomically.
    """
    import torch

    torch.manual_seed(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(build_sam(config).state_dict(), tmp)
    os.replace(tmp, path)
    return path
