"""Architecture of ViT Segment Anything models: read it from a state dict, build it, and write
small random-weight checkpoints (tests, benchmarks, demos) that load like official ones."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
    rel = [
        int(state_dict[f"image_encoder.blocks.{i}.attn.rel_pos_h"].shape[0]) for i in range(depth)
    ]
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
        decoder_mlp_dim=int(
            state_dict["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0]
        ),
        iou_head_hidden_dim=int(
            state_dict["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0]
        ),
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


def write_random_checkpoint(
    path: str | Path, config: SamConfig = TINY_CONFIG, seed: int = 0
) -> Path:
    """Save the state dict of a randomly initialised SAM (tests, benchmarks, demos).

    The file loads through :func:`load_sam` exactly like an official checkpoint; its masks are
    meaningless. Written atomically.
    """
    import torch

    torch.manual_seed(seed)
    from ...io.writers import atomic_open

    path = Path(path)
    with atomic_open(path, "wb") as stream:
        torch.save(build_sam(config).state_dict(), stream)
    return path
