"""*Target model* dock widget: train / fine-tune a target model (AIR) and predict with it."""

from __future__ import annotations

from typing import Any

from ._common import DockWidget
from ._params import section
from .base_model import ModelRunWidget
from .finetune import FineTuneWidget


class _TargetPredict(ModelRunWidget):
    kind = "target"


class _TargetTrain(FineTuneWidget):
    kinds = ("target",)
    use_open_images = True


class TargetModelWidget(DockWidget):
    """Train a target model on the open images and everything committed; predict with a version.

    Training uses every committed image (masks and points supervise) and the open images
    without annotations (unsupervised). Each run becomes a model version that *Predict* uses
    (and announces). Public actions: :meth:`train`, :meth:`run`.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer, labels=False)
        self.trainer = _TargetTrain(self.viewer, scrollable=False)
        self.predictor = _TargetPredict(self.viewer, scrollable=False)
        self.extend(
            [section("Train / fine-tune"), self.trainer, section("Predict"), self.predictor]
        )

    def train(self) -> bool:
        """Train the chosen target model (see :meth:`FineTuneWidget.train`)."""
        return self.trainer.train()

    def run(self) -> bool:
        """Predict with the chosen version (see :meth:`ModelRunWidget.run`)."""
        return self.predictor.run()
