"""Segment Anything (SAM): interactive prompts, "segment everything" and box refinement.

Importing this package does not import torch or segment_anything; they load with the first
model. ``SamModel`` is the registered ``sam`` model; ``PromptableSegmenter`` (in
:mod:`.interactive`) answers clicks and boxes.
"""

from __future__ import annotations

from .model import SamModel
from .params import SamParams

__all__ = ["SamParams", "SamModel"]
