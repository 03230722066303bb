"""How long SAM work will take, said before it starts.

* The image encoder: its floating-point operations counted from the model's own sizes (patch
  grid, width, depth, windowed / global attention), divided by the throughput of a matrix product
  of the encoder's shape timed once on the device (a few ms).
* The mask decoder (segment everything): one batch of point prompts timed on a random embedding,
  with the up-sampling to the tile size that every prompt pays.

Both are cached per model, device and thread count. The factors that turn these into seconds are
measured by ``python -m benchmarks.bench_sam_everything`` (see docs/benchmarks.md).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

# Whole-encoder time / pure-matmul time for the same FLOPs (norms, softmax, GELU, reshapes);
# measured on this project's 2-core CPU with vit_b-sized and tiny random-weight SAMs.
ENCODER_OVERHEAD = 2.0
# Automatic-mask post-processing per prompt (stability score, thresholds, boxes, NMS, RLE) on top
# of the decoder call and the up-sampling timed by decoder_seconds_per_point.
DECODER_OVERHEAD = 1.0

_throughput: dict[tuple[str, int, int, int], float] = {}
_decoder: dict[tuple[int, str, int, int], float] = {}


def encoder_flops(sam: Any) -> float:
    """Floating-point operations of one pass of ``sam.image_encoder`` (one tile).

    Counts the matrix products (patch embedding, attention projections, attention itself with
    each block's window, MLPs, the neck); ignores element-wise work.
    """
    encoder = sam.image_encoder
    proj = encoder.patch_embed.proj
    patch = int(proj.kernel_size[0])
    width = int(proj.out_channels)
    grid = int(encoder.img_size) // patch
    tokens = grid * grid
    flops = 2.0 * tokens * width * proj.in_channels * patch * patch
    for block in encoder.blocks:
        hidden = int(block.mlp.lin1.out_features)
        window = int(getattr(block, "window_size", 0))
        attended = tokens if window == 0 else window * window
        flops += 2.0 * tokens * width * (4 * width) + 2.0 * 2 * tokens * width * hidden
        flops += 4.0 * tokens * attended * width
    neck_out = int(encoder.neck[0].out_channels)
    flops += 2.0 * tokens * (width * neck_out + 9 * neck_out * neck_out)
    return flops


def matmul_throughput(device: Any, width: int, tokens: int) -> float:
    """FLOP/s of a ``(tokens, width) @ (width, 4 width)`` float32 product on ``device``."""
    import torch

    device = torch.device(device)
    tokens = int(min(tokens, 4096))
    key = (str(device), torch.get_num_threads(), width, tokens)
    if key not in _throughput:
        a = torch.randn(tokens, width, device=device)
        b = torch.randn(width, 4 * width, device=device)
        best = float("inf")
        for _ in range(4):
            _sync(device)
            start = time.perf_counter()
            a @ b
            _sync(device)
            best = min(best, time.perf_counter() - start)
        _throughput[key] = 2.0 * tokens * width * 4 * width / max(best, 1e-9)
    return _throughput[key]


def embedding_seconds(sam: Any, n_tiles: int = 1) -> float:
    """Estimated seconds to embed ``n_tiles`` tiles with ``sam`` on its device."""
    encoder = sam.image_encoder
    device = next(encoder.parameters()).device
    width = int(encoder.patch_embed.proj.out_channels)
    tokens = (int(encoder.img_size) // int(encoder.patch_embed.proj.kernel_size[0])) ** 2
    rate = matmul_throughput(device, width, tokens)
    return n_tiles * ENCODER_OVERHEAD * encoder_flops(sam) / rate


def decoder_seconds_per_point(sam: Any, tile_size: int, batch: int = 16) -> float:
    """Estimated seconds per prompt point of "segment everything" on one tile of ``tile_size``
    pixels: one timed decoder batch (3 masks per point, up-sampled to the tile) times
    :data:`DECODER_OVERHEAD`."""
    import torch

    device = next(sam.parameters()).device
    key = (id(sam), str(device), int(tile_size), torch.get_num_threads())
    if key not in _decoder:
        size = int(sam.image_encoder.img_size)
        grid = size // int(sam.image_encoder.patch_embed.proj.kernel_size[0])
        channels = int(sam.prompt_encoder.embed_dim)
        embedding = torch.zeros(1, channels, grid, grid, device=device)
        points = torch.as_tensor(
            np.random.default_rng(0).uniform(0, size, (batch, 1, 2)), dtype=torch.float32
        ).to(device)
        labels = torch.ones(batch, 1, dtype=torch.int, device=device)
        with torch.no_grad():
            sam.mask_decoder(  # warm-up
                **_decoder_inputs(sam, embedding, points[:1], labels[:1])
            )
            _sync(device)
            start = time.perf_counter()
            masks, _ = sam.mask_decoder(**_decoder_inputs(sam, embedding, points, labels))
            torch.nn.functional.interpolate(masks, (tile_size, tile_size), mode="bilinear")
            _sync(device)
        _decoder[key] = DECODER_OVERHEAD * (time.perf_counter() - start) / batch
    return _decoder[key]


def _decoder_inputs(sam: Any, embedding: Any, points: Any, labels: Any) -> dict[str, Any]:
    sparse, dense = sam.prompt_encoder(points=(points, labels), boxes=None, masks=None)
    return {
        "image_embeddings": embedding,
        "image_pe": sam.prompt_encoder.get_dense_pe(),
        "sparse_prompt_embeddings": sparse,
        "dense_prompt_embeddings": dense,
        "multimask_output": True,
    }


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def describe_seconds(seconds: float) -> str:
    """``"about 40 s"`` / ``"about 3 min"`` / ``"about 1.5 h"``."""
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    if seconds < 5400:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"
