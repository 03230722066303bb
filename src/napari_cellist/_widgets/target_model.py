"""*Target model* dock widget: train / fine-tune a target model (AIR) and predict with it."""

from __future__ import annotations

from typing import Any

from magicgui.widgets import Container

from ._params import section
from .base_model import ModelRunWidget
from .finetune import FineTuneWidget


class _TargetPredict(ModelRunWidget):
    kind = "target"


class _TargetTrain(FineTuneWidget):
    kinds = ("target",)
    use_open_images = True


class TargetModelWidget(Container):
    """Train a target model on the open images and everything committed; predict with a version.

    Training uses every committed image (masks and points supervise) and the open images
    without annotations (unsupervised). Each run becomes a model version that *Predict* uses.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(labels=False)
        self.train = _TargetTrain(napari_viewer)
        self.predict = _TargetPredict(napari_viewer)
        self.extend([section("Train / fine-tune"), self.train, section("Predict"), self.predict])
