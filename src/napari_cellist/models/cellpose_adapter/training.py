"""Cellpose training within a time budget, one epoch per progress report.

Built from Cellpose 3's own pieces (``dynamics.labels_to_flows`` for the flow targets,
``transforms.random_rotate_and_resize`` for augmentation, the CPnet network and Cellpose's loss)
instead of ``cellpose.train.train_seg``, which runs all epochs in one call and writes files into
the working directory. Here every epoch yields a Progress (loss, validation loss), so the GUI can
plot it and stop by closing the generator; nothing is written to disk.

Training stops when ``minutes`` are spent or after ``n_epochs`` (an upper bound); the learning
rate schedule follows the fraction of the budget used. The validation loss is measured about ten
times per run and the network keeps the state with the lowest one (batch-norm statistics
included), not merely the last.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Generator, Sequence
from dataclasses import dataclass

import numpy as np
from skimage.transform import resize

from ...augment import intensity_jitter
from ...budget import TimeBudget
from ...types import Progress, Sample
from .params import CellposeParams, CellposeTrainParams

logger = logging.getLogger(__name__)

MIN_DIAMETER = 5.0  # Cellpose clamps training diameters to at least 5 px
VALIDATIONS = 10  # validation losses per run (each needs a batch-norm recalibration)


@dataclass
class Planes:
    """2D training planes at the network's object size.

    ``images[k]`` is float32 ``(2, Y, X)`` (normalised cells and nucleus channels) and
    ``flows[k]`` float32 ``(3, Y, X)`` (cell probability, Y flow, X flow) of the same plane.
    ``diameters`` holds the planes' median object diameters before rescaling, in pixels.
    """

    images: list[np.ndarray]
    flows: list[np.ndarray]
    diameters: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


def with_objects(samples: Sequence[Sample]) -> list[Sample]:
    """The samples whose label map holds at least one object (what Cellpose can learn from).

    Raises
    ------
    ValueError
        If no sample has an annotated object.
    """
    annotated = [s for s in samples if s.labels is not None and np.any(s.labels)]
    if not annotated:
        raise ValueError(
            "Cellpose training needs annotated images (instance label maps); none of the "
            f"{len(samples)} samples has any annotated object."
        )
    return annotated


def _planes_of(sample: Sample, params: CellposeParams) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(Y, X, 2)`` (cells, nucleus) planes of a sample, each with its ``(Y, X)`` labels."""
    from .inference import cellpose_input

    x = cellpose_input(sample.image, params)  # (Y, X, 2) or (Z, Y, X, 2)
    labels = np.asarray(sample.labels)
    if x.shape[:-1] != labels.shape:
        raise ValueError(
            f"Sample {sample.name!r}: image {x.shape[:-1]} (channels removed) and labels "
            f"{labels.shape} differ in shape; check 'channel_axis'."
        )
    if x.ndim == 3:
        return [(x, labels)]
    return [(x[z], labels[z]) for z in range(x.shape[0])]  # Cellpose trains 3D on 2D planes


def prepare_planes(
    samples: Sequence[Sample], diam_mean: float, params: CellposeParams, min_masks: int
) -> Planes:
    """Normalise, rescale (objects to ``diam_mean`` px) and compute flow targets.

    Images are read as prediction reads them (``params.channel_axis``, ``params.channels``,
    ``params.invert``). Rescaling once here is what Cellpose's training does per patch
    (``diam / diam_mean``); doing it up front also makes the flow computation cheap for large
    objects.
    """
    import torch

    from ._backend import cellpose_modules

    _, transforms, dynamics, utils = cellpose_modules()
    images, labels, diameters = [], [], []
    for sample in samples:
        for image, plane_labels in _planes_of(sample, params):
            n_objects = len(np.unique(plane_labels)) - int((plane_labels == 0).any())
            if n_objects < max(1, min_masks):
                continue
            diameter = max(float(utils.diameters(plane_labels.astype(np.int32))[0]), MIN_DIAMETER)
            shape = tuple(max(8, int(round(n * diam_mean / diameter))) for n in image.shape[:2])
            image = resize(
                image, shape, order=1, preserve_range=True, anti_aliasing=shape[0] < image.shape[0]
            )
            plane_labels = resize(
                plane_labels, shape, order=0, preserve_range=True, anti_aliasing=False
            )
            x = transforms.normalize_img(image.astype(np.float32), invert=params.invert, axis=-1)
            images.append(np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32))
            labels.append(plane_labels.astype(np.int32))
            diameters.append(diameter)
    if not images:
        raise ValueError(
            f"No annotated plane has at least {min_masks} objects; lower 'min_train_masks'."
        )
    flows = dynamics.labels_to_flows(labels, device=torch.device("cpu"))
    return Planes(images, [f[1:].astype(np.float32) for f in flows], np.asarray(diameters))


def rate_at(epoch: int, progress: float, rate: float, warm_epochs: int = 10) -> float:
    """Learning rate of ``epoch`` (0-based) when ``progress`` of the budget is used.

    Linear warm-up over the first ``warm_epochs`` epochs, constant, then halvings over the last
    10 % of the budget (the shape of Cellpose's schedule, on the time axis).
    """
    value = rate * min(1.0, (epoch + 1) / max(1, warm_epochs))
    if progress > 0.9:
        value *= 0.5 ** (1 + int(min(4, (progress - 0.9) * 50)))
    return float(value)


def seg_loss(lbl: np.ndarray, y: object) -> object:
    """Cellpose's loss: MSE of the (5x scaled) flows / 2 + BCE of the cell probability.

    ``lbl`` is float32 ``(B, 3, Y, X)`` (cell probability, flows), ``y`` the network output.
    """
    import torch
    from torch import nn

    flows = 5.0 * torch.from_numpy(lbl[:, 1:]).to(y.device)
    inside = torch.from_numpy(lbl[:, 0] > 0.5).float().to(y.device)
    return nn.functional.mse_loss(
        y[:, :2], flows
    ) / 2.0 + nn.functional.binary_cross_entropy_with_logits(y[:, -1], inside)


def augmented_batch(
    planes: Planes,
    indices: np.ndarray,
    bsize: int,
    scale_range: float,
    intensity: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Randomly rotated, flipped, zoomed ``(B, 2, bsize, bsize)`` patches and their targets.

    Patches are drawn anywhere in the planes: those holding only unlabelled debris are kept (the
    targets say background there). ``intensity`` > 0 also jitters brightness, contrast, gamma
    and noise (:func:`napari_cellist.augment.intensity_jitter`, NumPy's global random state).
    """
    from ._backend import cellpose_modules

    transforms = cellpose_modules()[1]
    imgs = [planes.images[i] for i in indices]
    lbls = [planes.flows[i] for i in indices]
    out = transforms.random_rotate_and_resize(
        imgs, Y=lbls, rescale=np.ones(len(indices)), scale_range=scale_range, xy=(bsize, bsize)
    )
    x = out[0].astype(np.float32)
    if intensity > 0:
        rng = np.random.default_rng(np.random.randint(0, 2**31))
        x = np.stack([intensity_jitter(patch, intensity, rng) for patch in x])
    return x, out[1].astype(np.float32)


def train_epochs(
    net: object, train: Planes, val: Planes | None, tp: CellposeTrainParams
) -> Generator[Progress, None, list[float]]:
    """Train ``net`` (a CPnet) in place; yields one Progress per epoch, returns the losses.

    Stops when ``tp.minutes`` are spent or after ``tp.n_epochs``. With validation planes the
    validation loss is measured every tenth of the budget and at the end, and ``net`` ends with
    the weights and batch-norm statistics of the lowest one (``best_epoch`` and
    ``best_val_loss`` in the last report's metrics). Cellpose's augmentation draws from NumPy's
    global random state, which is seeded per epoch (``seed + epoch``) as Cellpose does.
    """
    import torch

    optimizer = torch.optim.AdamW(
        net.parameters(), lr=tp.learning_rate, weight_decay=tp.weight_decay
    )
    budget = TimeBudget.from_minutes(tp.n_epochs, tp.minutes)
    per_epoch = tp.images_per_epoch or max(len(train), tp.batch_size)
    val_batch = _validation_batch(val, tp)
    best = _Best()
    mkldnn, net.mkldnn = net.mkldnn, False  # dense while training; inference converts a copy
    losses: list[float] = []
    next_check = 1.0 / VALIDATIONS
    try:
        for epoch in range(tp.n_epochs):
            rate = rate_at(epoch, budget.progress(epoch), tp.learning_rate)
            losses.append(_train_one_epoch(net, optimizer, train, tp, epoch, rate, per_epoch))
            metrics = {"learning_rate": rate, "elapsed_s": budget.elapsed()}
            last = epoch + 1 >= tp.n_epochs or metrics["elapsed_s"] >= budget.seconds
            if last or (val_batch is not None and budget.progress(epoch + 1) >= next_check):
                next_check = budget.progress(epoch + 1) + 1.0 / VALIDATIONS
                recalibrate_batchnorm(net, train, tp)
                if val_batch is not None:
                    metrics["val_loss"] = _batch_loss(net, *val_batch)
                    best.offer(net, epoch + 1, metrics["val_loss"])
            if last and best.state is not None:
                net.load_state_dict(best.state)
                metrics.update(best_epoch=float(best.epoch), best_val_loss=best.loss)
            logger.info("epoch %d loss %.4f %s", epoch + 1, losses[-1], metrics)
            total = epoch + 1 if last else budget.estimated_total(epoch + 1)
            yield Progress(
                epoch + 1,
                total,
                f"epoch {epoch + 1}/{total}",
                loss=losses[-1],
                metrics=metrics,
            )
            if last:
                break
    except GeneratorExit:  # Stop: the weights of the last finished epoch stay, made usable
        recalibrate_batchnorm(net, train, tp)
        raise
    finally:  # leave the network ready to predict
        net.mkldnn = mkldnn
        net.eval()
    return losses


class _Best:
    """The lowest validation loss seen and a copy of the network state that had it."""

    def __init__(self) -> None:
        self.loss, self.epoch, self.state = float("inf"), 0, None

    def offer(self, net: object, epoch: int, loss: float) -> None:
        if loss < self.loss:
            self.loss, self.epoch = float(loss), epoch
            self.state = copy.deepcopy(net.state_dict())


def _train_one_epoch(
    net: object,
    optimizer: object,
    train: Planes,
    tp: CellposeTrainParams,
    epoch: int,
    rate: float,
    per_epoch: int,
) -> float:

    np.random.seed(tp.seed + epoch)
    for group in optimizer.param_groups:
        group["lr"] = rate
    order = np.random.permutation(np.resize(np.random.permutation(len(train)), per_epoch))
    net.train()
    total = 0.0
    for start in range(0, per_epoch, tp.batch_size):
        indices = order[start : start + tp.batch_size]
        x, lbl = augmented_batch(train, indices, tp.bsize, tp.scale_range, tp.intensity_augment)
        loss = seg_loss(lbl, net(_on_device(net, x))[0])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += float(loss.item()) * len(indices)
    return total / per_epoch


def recalibrate_batchnorm(
    net: object, planes: Planes, tp: CellposeTrainParams, n_batches: int = 4
) -> None:
    """Re-estimate the batch-norm statistics of ``net`` on augmented training patches.

    Cellpose's batch norms average their statistics slowly (momentum 0.05), so after a short run
    the statistics used for prediction lag behind the weights and the predictions are garbage.
    Averaging them afresh over a few batches with the final weights fixes that.
    """
    import torch

    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    state = np.random.get_state()
    np.random.seed(tp.seed + 20_000)
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches below
    net.train()
    try:
        with torch.no_grad():
            for _ in range(n_batches):
                indices = np.random.permutation(np.resize(np.arange(len(planes)), tp.batch_size))
                net(_on_device(net, augmented_batch(planes, indices, tp.bsize, tp.scale_range)[0]))
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        np.random.set_state(state)
        net.eval()


def _validation_batch(
    val: Planes | None, tp: CellposeTrainParams
) -> tuple[np.ndarray, np.ndarray] | None:
    if val is None or not len(val):
        return None
    state = np.random.get_state()
    np.random.seed(tp.seed + 10_000)
    try:
        indices = np.arange(min(len(val), 2 * tp.batch_size))
        return augmented_batch(val, indices, tp.bsize, 0.0)
    finally:
        np.random.set_state(state)


def _batch_loss(net: object, x: np.ndarray, lbl: np.ndarray) -> float:
    import torch

    net.eval()
    with torch.no_grad():
        return float(seg_loss(lbl, net(_on_device(net, x))[0]).item())


def _on_device(net: object, x: np.ndarray) -> object:
    """float32 batch ``x`` as a tensor on the device of ``net``'s weights (CPU, CUDA or MPS)."""
    import torch

    return torch.from_numpy(x).to(next(net.parameters()).device)
