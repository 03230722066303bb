"""Segment Anything (SAM): interactive prompts, "segment everything" and box refinement.

Importing this package does not import torch or segment_anything; they load with the first
model. ``SamSegmenter`` is the registered ``sam`` model; ``PromptableSegmenter`` (in
:mod:`.interactive`) answers clicks and boxes.
"""

from __future__ import annotations

from .model import SamParams, SamSegmenter

__all__ = ["SamParams", "SamSegmenter"]
