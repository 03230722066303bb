"""Training AIR with stochastic variational inference on random crops of the working images.

Every step draws a batch of crops (whole cells, random flips / transposition), anneals the
relaxed-presence temperature and the prior presence probability, and takes one Adam step on the
negative ELBO (``Trace_ELBO.differentiable_loss``), divided by the number of pixels.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
import pyro
import torch

from ...augment import Jitter
from ...budget import TimeBudget
from ...types import Progress
from .generative import AirNet, Anneal, Batch, EncoderPass
from .modules import WHERE_DIM
from .supervision import CellTargets, WorkingImage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingItem:
    """A working image with its targets (None when unannotated) and annotation weight."""

    work: WorkingImage
    targets: CellTargets | None
    weight: float
    name: str = ""


@dataclass(frozen=True)
class Schedule:
    """Optimisation and annealing settings of one run."""

    steps: int
    batch_size: int = 8
    crop: int = 96  # working pixels, a multiple of the cell
    lr: float = 2e-3
    temperature: tuple[float, float] = (1.0, 0.3)  # start, end
    prior_prob: tuple[float, float] = (0.5, 0.05)
    anneal_fraction: float = 0.6  # annealing ends at this fraction of the run (steps or time)
    cooldown_fraction: float = 0.25  # the learning rate falls to 5 % over this last part
    time_limit_s: float = 600.0
    report_every: int = 10
    intensity_augment: float = 0.0  # see napari_cellist.augment.intensity_jitter


def anneal_at(step: int, schedule: Schedule, progress: float | None = None) -> Anneal:
    """Temperature and prior presence probability at ``step`` (geometric interpolation).

    ``progress`` is the fraction of the run done (steps or time budget, see
    :class:`~napari_cellist.budget.TimeBudget`); None = ``step / schedule.steps``.
    """
    done = step / max(1, schedule.steps) if progress is None else progress
    frac = min(1.0, done / max(1e-9, schedule.anneal_fraction))
    (t0, t1), (p0, p1) = schedule.temperature, schedule.prior_prob
    return Anneal(float(t0 * (t1 / t0) ** frac), float(p0 * (p1 / p0) ** frac))


def learning_rate_factor(step: int, schedule: Schedule, progress: float | None = None) -> float:
    """Multiplier of the learning rate at ``step`` (1-based): 1, then a cosine fall to 0.05 over the
    last ``cooldown_fraction`` of the run, so the weights settle instead of stopping at a random
    point of Adam's noisy path (smaller run-to-run differences). ``progress`` as in
    :func:`anneal_at`."""
    done = step / max(1, schedule.steps) if progress is None else progress
    start = 1.0 - schedule.cooldown_fraction
    if done <= start or schedule.cooldown_fraction <= 0:
        return 1.0
    frac = min(1.0, (done - start) / schedule.cooldown_fraction)
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * frac))


def _crop_origin(size: int, crop: int, cell: int, rng: np.random.Generator) -> int:
    return int(rng.integers(0, (size - crop) // cell + 1)) * cell if size > crop else 0


def _crop(array: np.ndarray, r: int, c: int, n: int, fill: float = 0.0) -> np.ndarray:
    """``n x n`` crop at (r, c) of the first two axes, padded with ``fill`` past the border."""
    part = array[r : r + n, c : c + n]
    pad = [(0, n - part.shape[0]), (0, n - part.shape[1])] + [(0, 0)] * (array.ndim - 2)
    return np.pad(part, pad, constant_values=fill) if any(p[1] for p in pad[:2]) else part


def _dihedral(arrays: dict[str, np.ndarray], flip_y: bool, flip_x: bool, transpose: bool) -> None:
    """Flip / transpose image-like and cell-grid arrays (and their box targets) in place."""
    for key, value in arrays.items():
        if flip_y:
            value = value[::-1]
        if flip_x:
            value = value[:, ::-1]
        if transpose:
            value = value.swapaxes(0, 1)
        if key == "mask_target":  # (hc, wc, s, wn, wn): the window turns with the image
            value = value[..., ::-1, :] if flip_y else value
            value = value[..., ::-1] if flip_x else value
            value = value.swapaxes(-1, -2) if transpose else value
        arrays[key] = value
    where = arrays.get("where_target")
    if where is not None:  # (dy, dx, size, aspect, angle); each mirror turns the angle over
        where = where.copy()
        where[..., 0] *= -1 if flip_y else 1
        where[..., 1] *= -1 if flip_x else 1
        where[..., 4] *= (-1) ** (flip_y + flip_x + transpose)
        if transpose:
            where = where[..., [1, 0, 2, 3, 4]]
            where[..., 3] *= -1
            arrays["where_known"] = arrays["where_known"][..., [1, 0, 2, 3, 4]]
        arrays["where_target"] = where


def _item_crop(item: TrainingItem, crop: int, cell: int, rng: np.random.Generator) -> dict:
    h, w = item.work.image.shape
    r, c = _crop_origin(h, crop, cell, rng), _crop_origin(w, crop, cell, rng)
    low = float(np.percentile(item.work.image, 1.0))
    out = {
        "image": _crop(item.work.image, r, c, crop, low),
        "background": _crop(item.work.background, r, c, crop, low),
    }
    if item.targets is not None:
        n = crop // cell
        for key, value in vars(item.targets).items():
            out[key] = _crop(value, r // cell, c // cell, n)
    _dihedral(out, *(bool(b) for b in rng.integers(0, 2, 3)))
    return out


def _relit(crop: dict, strength: float, rng: np.random.Generator) -> dict:
    """The crop with image and background re-lit by one draw of :class:`Jitter` (noise only on
    the image), so the background estimate still matches the image."""
    if strength <= 0:
        return crop
    jitter = Jitter.draw(strength, rng)
    crop["image"] = jitter.apply(crop["image"], rng)
    crop["background"] = jitter.apply(crop["background"], rng, noise=False)
    return crop


def make_batch(
    items: Sequence[TrainingItem], schedule: Schedule, cell: int, rng: np.random.Generator
) -> Batch:
    """A random batch of augmented crops; supervision tensors when any chosen item has targets."""
    chosen = [items[i] for i in rng.integers(0, len(items), schedule.batch_size)]
    crops = [
        _relit(_item_crop(it, schedule.crop, cell, rng), schedule.intensity_augment, rng)
        for it in chosen
    ]
    tensor = lambda key: torch.from_numpy(np.stack([np.ascontiguousarray(c[key]) for c in crops]))  # noqa: E731
    image, background = tensor("image")[:, None], tensor("background")[:, None]
    if all(it.targets is None for it in chosen):
        return Batch(image, background)
    template = next(c for c, it in zip(crops, chosen, strict=True) if it.targets is not None)
    for c in crops:  # unannotated crops: nothing known
        for key in (
            "pres_target",
            "pres_known",
            "where_target",
            "where_known",
            "mask_target",
            "mask_known",
        ):
            c.setdefault(key, np.zeros_like(template[key]))
    b = len(crops)
    flat = lambda key, *tail: tensor(key).reshape(b, -1, *tail)  # noqa: E731
    wn = template["mask_target"].shape[-1]
    return Batch(
        image,
        background,
        pres_target=flat("pres_target").float(),
        pres_known=flat("pres_known"),
        where_target=flat("where_target", WHERE_DIM).float(),
        where_known=flat("where_known", WHERE_DIM),
        mask_target=flat("mask_target", wn, wn).float(),
        mask_known=flat("mask_known"),
        weight=torch.tensor([it.weight if it.targets is not None else 0.0 for it in chosen]),
    )


def batch_to(batch: Batch, device: torch.device) -> Batch:
    """``batch`` with every tensor on ``device`` (the network's: CPU, CUDA or MPS); the
    same tensors when they are there already."""
    moved = {
        f.name: getattr(batch, f.name).to(device)
        for f in fields(batch)
        if isinstance(getattr(batch, f.name), torch.Tensor)
    }
    return replace(batch, **moved)


def train_iter(
    net: AirNet,
    items: Sequence[TrainingItem],
    schedule: Schedule,
    seed: int = 0,
) -> Generator[Progress, None, list[float]]:
    """Optimise ``net`` in place on the device of its weights (crops are drawn on the CPU and
    moved there); yields Progress(step, total, loss); returns the loss history."""
    if not items:
        raise ValueError("AIR training needs at least one image.")
    device = next(net.parameters()).device
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    optimiser = torch.optim.Adam(net.parameters(), lr=schedule.lr)
    elbo = pyro.infer.Trace_ELBO()
    losses: list[float] = []
    budget = TimeBudget(schedule.steps, schedule.time_limit_s)
    net.train()
    for step in range(1, schedule.steps + 1):
        progress = budget.progress(step)
        for group in optimiser.param_groups:
            group["lr"] = schedule.lr * learning_rate_factor(step, schedule, progress)
        batch = batch_to(make_batch(items, schedule, net.geom.cell, rng), device)
        anneal = anneal_at(step, schedule, progress)
        encoded = EncoderPass()  # the guide runs first and hands its encoder outputs on
        loss = elbo.differentiable_loss(net.model, net.guide, batch, anneal, encoded)
        loss = loss / batch.image.numel()
        if not torch.isfinite(loss):
            logger.warning("Non-finite loss at step %d; batch skipped.", step)
            continue
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
        optimiser.step()
        losses.append(float(loss.detach()))
        elapsed = budget.elapsed()
        out_of_time = elapsed > schedule.time_limit_s
        if step % schedule.report_every == 0 or step == schedule.steps or out_of_time:
            total = step if out_of_time else budget.estimated_total(step)
            yield Progress(
                step,
                total,
                f"AIR step {step}/{total}",
                loss=float(np.mean(losses[-schedule.report_every :])),
                metrics={
                    "temperature": anneal.temperature,
                    "prior_prob": anneal.prior_prob,
                    "learning_rate": optimiser.param_groups[0]["lr"],
                    "elapsed_s": elapsed,
                },
            )
        if out_of_time:
            logger.info("AIR training stopped by its time limit after %d steps.", step)
            break
    net.eval()
    return losses
