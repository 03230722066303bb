"""The registered ``air`` model: :class:`AirModel` (predict, train, save, load)."""

from __future__ import annotations

import logging
from collections.abc import Generator, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...background import flatten_background
from ...borders import crop_border, crop_labels, mirror_border, mirror_labels, mirror_width
from ...devices import device_job, release_device_memory, resolve_device
from ...diameters import diameter_from_image, diameter_from_labels
from ...geometry import bounding_boxes
from ...images import is_constant, prepare_grey
from ...metrics import score_images
from ...progress import relay
from ...types import FitResult, ObjectMeta, Prediction, Progress, Sample
from ..base import TrainableSegmenter, params_from_mapping, params_to_dict
from .checkpoint import NetConfig, load_checkpoint, save_checkpoint
from .fusion import fuse_runs, shift_objects
from .inference import (
    Objects,
    find_objects,
    foreground_signal,
    label_map,
    reconstruction,
    select_objects,
)
from .params import AirParams, AirTrainParams
from .refine import snap_to_image
from .supervision import WorkingImage, cell_targets, resize, to_working
from .training import Schedule, TrainingItem, train_iter

logger = logging.getLogger(__name__)


def estimate_diameter_fast(image: np.ndarray, max_side: int = 512) -> float:
    """:func:`~napari_cellist.diameters.diameter_from_image` of a copy of the grey ``(Y, X)``
    image shrunk (by AIR's resize) to at most ``max_side`` pixels, in the image's pixels."""
    factor = max(1.0, max(image.shape) / max_side)
    small = (
        image
        if factor == 1.0
        else resize(
            image, (max(1, round(image.shape[0] / factor)), max(1, round(image.shape[1] / factor)))
        )
    )
    return float(diameter_from_image(small)) * factor


def grid_offsets(copies: int, cell_px: float, rng: np.random.Generator) -> list[tuple[int, int]]:
    """``copies`` (row, col) crops in image pixels: (0, 0), then random shifts of less than one
    grid cell (``cell_px`` image pixels), so objects fall at new positions within their cells."""
    limit = max(1, int(cell_px))
    extra = [tuple(int(v) for v in rng.integers(0, limit, 2)) for _ in range(copies - 1)]
    return [(0, 0), *extra]


def half_cell_shifts(count: int, half_cell: float) -> list[tuple[int, int]]:
    """(row, col) shifts in image pixels of the ``count`` (1, 2 or 4) test-time grid positions:
    unshifted, then by half a cell (``half_cell`` image pixels) diagonally, then along each axis.
    A shift pads the image's top and left by reflection, so every run sees the whole image."""
    if count not in (1, 2, 4):
        raise ValueError(f"test_time_shifts must be 1, 2 or 4, got {count}.")
    h = max(1, int(round(half_cell)))
    return [(0, 0), (h, h), (h, 0), (0, h)][:count]


class AirModel(TrainableSegmenter):
    """Attend-Infer-Repeat on a grid, trained by SVI; predicts with one encoder pass.

    Parameters
    ----------
    params : AirParams, optional
        Prediction parameters.
    config : NetConfig, optional
        Architecture (working scale, grid, code sizes).
    """

    name = "air"
    Params = AirParams
    TrainParams = AirTrainParams

    def __init__(self, params: AirParams | None = None, config: NetConfig | None = None) -> None:
        super().__init__(params)
        self.config = config or NetConfig()
        self.net = self.config.build().eval()
        self.diameter: float | None = None  # annotated diameter the model was trained at
        self.info: dict[str, Any] = {"steps": 0}

    def _initialise(self, seed: int, device: Any = None) -> None:
        """Fresh weights drawn from ``seed`` on the CPU (the same weights whatever the device),
        then moved to ``device`` (torch's global random state is left as it was)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = self.config.build().eval()
        if device is not None:
            self.net.to(device)

    @property
    def device(self) -> torch.device:
        """Where the network's weights are now."""
        return next(self.net.parameters()).device

    def to(self, device: Any) -> AirModel:
        """Move the network to ``device`` (a choice as in :func:`~napari_cellist.devices.resolve_device`
        or a ``torch.device``); returns the model."""
        self.net.to(resolve_device(device))
        return self

    @property
    def n_parameters(self) -> int:
        """Number of trainable weights."""
        return sum(p.numel() for p in self.net.parameters())

    # -- prediction -------------------------------------------------------------------------
    def object_diameter(self, image: np.ndarray, params: AirParams | None = None) -> float:
        """Diameter (px) used for ``image``: given, else trained-at, else estimated."""
        params = params or self.params
        if params.diameter and params.diameter > 0:
            return float(params.diameter)
        if self.diameter:
            return float(self.diameter)
        return estimate_diameter_fast(image)

    def predict_iter(
        self, image: np.ndarray, params: AirParams | None = None
    ) -> Generator[Progress, None, Prediction]:
        """Predict objects of a 2D grey image ``(Y, X)``; see :class:`AirParams`.

        The network runs on ``params.device`` (the model is moved there and stays); the labels
        and arrays returned are numpy arrays on the CPU. Cached device memory is released when
        the prediction ends (also on error or Stop).

        Raises
        ------
        DeviceNotAvailableError
            ``params.device`` is not on this computer.
        """
        params = params or self.params
        device = resolve_device(params.device)
        try:
            self.net.to(device)
            return (yield from self._predict(image, params))
        finally:
            release_device_memory(device)

    def _predict(
        self, image: np.ndarray, params: AirParams
    ) -> Generator[Progress, None, Prediction]:
        grey = prepare_grey(image)
        if grey.ndim != 2:
            raise ValueError(
                f"AIR segments 2D images; got shape {grey.shape}. Pick one plane of the stack."
            )
        if is_constant(grey):
            yield Progress(1, 1, "AIR: constant image, no objects")
            return Prediction(np.zeros(grey.shape, np.int32), {}, source=self.name)
        yield Progress(1, 3, "AIR: rescaling")
        diameter = self.object_diameter(grey, params)
        if params.flatten_background:
            grey = flatten_background(grey, diameter)
        margin = mirror_width(diameter, params.border_mirror, grey.shape)
        mirrored = mirror_border(grey, margin)
        yield Progress(2, 3, "AIR: encoding")
        geom = self.net.geom
        floor = params.min_score if params.test_time_shifts == 1 else 0.5 * params.min_score
        runs, works = self.grid_runs(mirrored, diameter, params, floor)
        # One run has no vote across grid positions: its absolute alpha threshold drops the
        # decoder's faint guesses. Fused runs outline each object relative to its peak alpha.
        found = (
            runs[0]
            if len(runs) == 1
            else fuse_runs(
                runs,
                mirrored.shape,
                params.min_score,
                params.alpha_threshold,
                match_scale=min(1.0, geom.diameter / diameter),  # compared at the working scale
            )
        )
        labels, scores = label_map(
            mirrored.shape, found, params.alpha_threshold, params.min_keep, margin
        )
        if params.refine_masks:
            labels = snap_to_image(labels, foreground_signal(mirrored, works[0], geom), diameter)
        labels, old_ids = crop_labels(labels, margin)
        scores = scores[old_ids - 1]
        extras = {}
        if params.reconstruction:
            unshifted = select_objects(runs[0], runs[0].scores >= params.min_score)
            full = reconstruction(self.net, works[0], unshifted, mirrored.shape)
            extras["reconstruction"] = crop_border(full, margin)
        yield Progress(3, 3, f"AIR: {len(scores)} objects")
        boxes = bounding_boxes(labels)
        objects = {
            i: ObjectMeta(i, float(scores[i - 1]), box=boxes[i], source=self.name)
            for i in range(1, len(scores) + 1)
            if i in boxes
        }
        return Prediction(labels, objects, source=self.name, extras=extras)

    def grid_runs(
        self, image: np.ndarray, diameter: float, params: AirParams, floor: float
    ) -> tuple[list[Objects], list[WorkingImage]]:
        """The objects found at each of the ``params.test_time_shifts`` grid positions.

        ``image`` is the grey ``(Y, X)`` image (already mirrored at its border), ``diameter`` its
        typical object diameter (px) and ``floor`` the smallest presence kept. A shifted run pads
        the image's top and left by reflection; its boxes are moved back, so every run's objects
        are in ``image``'s coordinates. Also returns each run's working image.
        """
        geom = self.net.geom
        half_cell = 0.5 * geom.cell * diameter / geom.diameter  # image pixels
        runs, works = [], []
        for dy, dx in half_cell_shifts(params.test_time_shifts, half_cell):
            shifted = np.pad(image, ((dy, 0), (dx, 0)), mode="reflect") if dy or dx else image
            works.append(to_working(shifted, diameter, geom))
            found = find_objects(self.net, works[-1], floor, params.tile_size)
            runs.append(shift_objects(found, -dy, -dx))
        return runs, works

    # -- training ---------------------------------------------------------------------------
    def _training_items(self, samples: Sequence[Sample], tp: AirTrainParams) -> list[TrainingItem]:
        items = []
        geom = self.net.geom
        rng = np.random.default_rng(tp.seed)
        for sample in samples:
            grey = prepare_grey(sample.image)
            # Unannotated images are seen at the scale prediction will use (given or estimated).
            diameter = diameter_from_labels([sample.labels]) or (
                tp.diameter if tp.diameter > 0 else estimate_diameter_fast(grey)
            )
            if self.params.flatten_background:
                grey = flatten_background(grey, diameter)
            labels, weight = sample.labels, float(sample.weight)
            if labels is None and sample.points is None and tp.pseudo_labels:
                from ..threshold import ThresholdModel, ThresholdParams

                labels = ThresholdModel().predict(grey, ThresholdParams(diameter=diameter)).labels
                weight = tp.pseudo_label_weight * weight
            margin = mirror_width(diameter, tp.border_mirror, grey.shape)
            mirrored = mirror_border(grey, margin)
            labels = None if labels is None else mirror_labels(labels, margin)
            points = (
                None if sample.points is None else np.asarray(sample.points, float)[:, -2:] + margin
            )
            annotated = labels is not None or points is not None
            scales = (
                (1.0,)
                if tp.scale_jitter <= 0
                else (1.0 / (1.0 + tp.scale_jitter), 1.0, 1.0 + tp.scale_jitter)
            )
            for scale in scales:  # objects `scale` times their size at the working scale
                cell_px = geom.cell * diameter / (scale * geom.diameter)  # one cell, image pixels
                for dy, dx in grid_offsets(tp.grid_jitter, cell_px, rng):
                    shifted = mirrored[dy:, dx:]
                    work = to_working(shifted, diameter / scale, geom)
                    targets = (
                        None
                        if not annotated
                        else cell_targets(
                            work,
                            geom,
                            None if labels is None else labels[dy:, dx:],
                            None if points is None else points - (dy, dx),
                        )
                    )
                    items.append(TrainingItem(work, targets, weight, sample.name))
        # Weights are relative: the strongest annotation of the set counts fully.
        top = max((it.weight for it in items if it.targets is not None), default=1.0) or 1.0
        return [replace(it, weight=it.weight / top) for it in items]

    def fit_iter(
        self, samples: Sequence[Sample], train_params: AirTrainParams | None = None
    ) -> Generator[Progress, None, FitResult]:
        """Train on ``samples`` (annotated or not); yields Progress with the loss.

        Resuming from a trained model is fine-tuning: the weights are not reset. An untrained
        model starts from weights drawn with ``seed``, so the same data and parameters give the
        same model. Training runs on ``self.params.device`` with ``threads`` CPU threads; cached
        device memory is released when it ends (also on error or Stop).

        Raises
        ------
        DeviceNotAvailableError
            ``self.params.device`` is not on this computer.
        """
        tp = train_params or self.TrainParams()
        with device_job(self.params.device, tp.threads) as device:
            return (yield from self._fit(samples, tp, device))

    def _fit(
        self, samples: Sequence[Sample], tp: AirTrainParams, device: torch.device
    ) -> Generator[Progress, None, FitResult]:
        if tp.crop_size % self.net.geom.cell:
            raise ValueError(f"crop_size must be a multiple of {self.net.geom.cell}.")
        if not self.info.get("steps"):
            self._initialise(tp.seed, device)
        self.net.to(device)
        yield Progress(0, tp.steps, "AIR: preparing images")
        items = self._training_items(samples, tp)
        schedule = Schedule(
            steps=tp.steps,
            batch_size=tp.batch_size,
            crop=tp.crop_size,
            lr=tp.learning_rate,
            temperature=(1.0, tp.temperature),
            prior_prob=(0.5, tp.prior_prob),
            time_limit_s=tp.time_limit_s,
            intensity_augment=tp.intensity_augment,
        )
        steps_before, losses = int(self.info.get("steps", 0)), None
        try:
            history = []
            losses = yield from relay(
                train_iter(self.net, items, schedule, tp.seed), history.append
            )
        finally:
            if losses is None and history:  # stopped: the weights are trained, keep them so
                self.info = {**self.info, "steps": steps_before + history[-1].step}
        self._record_training(samples, tp, len(losses))
        metrics = self._training_metrics(samples)
        return FitResult(
            params=params_to_dict(self.params),
            metrics=metrics,
            data_used=tuple(s.name for s in samples),
            history=tuple(history),
        )

    def _record_training(self, samples: Sequence[Sample], tp: AirTrainParams, steps: int) -> None:
        annotated = [diameter_from_labels([s.labels]) for s in samples if s.labels is not None]
        annotated = [d for d in annotated if d]
        if annotated and len(annotated) == len(samples):
            self.diameter = float(np.median(annotated))
        self.info = {
            "steps": int(self.info.get("steps", 0)) + steps,
            "train_params": asdict(tp),
            "n_images": len(samples),
        }

    def _training_metrics(self, samples: Sequence[Sample]) -> dict[str, float]:
        annotated = [s for s in samples if s.labels is not None]
        if not annotated:
            return {}
        params = replace(self.params, reconstruction=False)
        preds = [self.predict(s.image, params).labels for s in annotated]
        scores = score_images([s.labels for s in annotated], preds)
        return {"ap50": scores.ap50, "mean_ap": scores.mean_ap, "count_error": scores.count_error}

    # -- checkpoints ------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write a small checkpoint atomically (see :mod:`.checkpoint`); weights are stored on
        the CPU and the device choice is not stored (it belongs to the computer, not the model)."""
        params = {k: v for k, v in params_to_dict(self.params).items() if k != "device"}
        return save_checkpoint(path, self.net, self.config, params, self.diameter, self.info)

    @classmethod
    def load(cls, path: str | Path, device: Any = None) -> AirModel:
        """Load a checkpoint written by :meth:`save`, its tensors mapped onto ``device``
        (``map_location``; None = the CPU). Prediction and training move the network to
        ``params.device`` anyway.

        Raises
        ------
        DeviceNotAvailableError
            ``device`` is not on this computer.
        """
        net, config, payload = load_checkpoint(
            path, None if device is None else resolve_device(device)
        )
        stored = dict(payload.get("params") or {})
        stored.setdefault("flatten_background", False)  # trained before the option existed
        model = cls(params_from_mapping(AirParams, stored), config)
        model.net = net
        model.diameter = payload.get("diameter")
        model.info = dict(payload.get("info", {}))
        return model
