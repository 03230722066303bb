"""Parameters of the ``sam`` model (importable without torch or segment_anything)."""

from __future__ import annotations

from dataclasses import dataclass, field

MODEL_TYPES = ("auto", "vit_b", "vit_l", "vit_h")


@dataclass(frozen=True)
class SamParams:
    """Parameters of the SAM base model."""

    checkpoint: str = field(
        default="",
        metadata={
            "help": "SAM checkpoint file (.pth) or a folder holding one; empty = the cache folder ($CELLIST_SAM_CACHE or ~/.cache/napari-cellist/sam)."
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
            "help": "Segment everything: prompt points per image side (per tile).",
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
