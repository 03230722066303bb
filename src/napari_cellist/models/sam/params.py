"""Parameters of the ``sam`` model (importable without torch or segment_anything)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...devices import DEVICE_CHOICES

MODEL_TYPES = ("auto", "vit_b", "vit_l", "vit_h")


@dataclass(frozen=True)
class SamParams:
    """Parameters of the SAM base model."""

    checkpoint: str = field(
        default="",
        metadata={
            "help": "SAM checkpoint file (.pth), a folder holding one, or a model name "
            "downloaded on first use: vit_b, vit_l, vit_h (official) or micro-sam's microscopy "
            "models vit_b_lm, vit_l_lm, vit_b_em_organelles, vit_l_em_organelles; empty = the "
            "cache folder ($CELLIST_SAM_CACHE or ~/.cache/napari-cellist/sam), else vit_b.",
            "suggestions": ("vit_b", "vit_b_lm", "vit_l_lm", "vit_l", "vit_h"),
        },
    )
    device: str = field(
        default="auto",
        metadata={
            "help": "Where SAM runs: 'auto' = an NVIDIA GPU (cuda), else an Apple GPU (mps), "
            "else the CPU.",
            "choices": DEVICE_CHOICES,
        },
    )
    diameter: float = field(
        default=0.0,
        metadata={
            "help": "Segment everything: typical object diameter in pixels, which sizes the tiles "
            "and the prompt grid; 0 = estimate it from the image.",
            "min": 0.0,
        },
    )
    model_type: str = field(
        default="auto",
        metadata={
            "help": "Architecture: 'auto' reads it from the checkpoint.",
            "choices": MODEL_TYPES,
            "advanced": True,
        },
    )
    points_per_side: int = field(
        default=32,
        metadata={
            "help": "Segment everything: at most this many prompt points per tile side (fewer "
            "for large objects).",
            "min": 1,
            "max": 128,
        },
    )
    pred_iou_thresh: float = field(
        default=0.88,
        metadata={
            "help": "Keep masks whose predicted IoU is at least this.",
            "min": 0.0,
            "max": 1.0,
        },
    )
    stability_score_thresh: float = field(
        default=0.95,
        metadata={
            "help": "Keep masks whose stability score is at least this.",
            "min": 0.0,
            "max": 1.0,
        },
    )
    min_mask_region_area: int = field(
        default=0,
        metadata={
            "help": "Remove objects (and fill holes / islands) smaller than this many pixels.",
            "min": 0,
        },
    )
    points_per_batch: int = field(
        default=32,
        metadata={
            "help": "Prompt points decoded at once (memory vs speed).",
            "advanced": True,
            "min": 1,
        },
    )
    tile_overlap: int = field(
        default=128,
        metadata={
            "help": "Overlap in pixels of the tiles of images larger than the model input.",
            "advanced": True,
            "min": 0,
        },
    )
    disk_cache: bool = field(
        default=True,
        metadata={
            "help": "Keep image embeddings on disk (next to the checkpoints) for reopened images.",
            "advanced": True,
        },
    )
