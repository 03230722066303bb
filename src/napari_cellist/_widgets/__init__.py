"""The napari dock widgets: the only package of napari-cellist that imports Qt / magicgui."""

from __future__ import annotations

from .annotations import AnnotationsWidget
from .base_model import BaseModelWidget
from .finetune import FineTuneWidget
from .sam_widget import SamWidget
from .target_model import TargetModelWidget

__all__ = [
    "AnnotationsWidget",
    "BaseModelWidget",
    "FineTuneWidget",
    "SamWidget",
    "TargetModelWidget",
]
