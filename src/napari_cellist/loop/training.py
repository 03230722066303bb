"""One training run of the learning loop: its parameters, the time budget, checkpoints, scoring."""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..metrics import score_images
from ..progress import relay
from ..store.records import ModelVersionRecord
from ..types import FitResult, Progress, Sample

if TYPE_CHECKING:
    from ..learning_loop import LoopSettings

logger = logging.getLogger(__name__)


def loop_train_params(settings: LoopSettings, warm: bool) -> Any:
    """The model's training parameters for one retraining.

    The time budget goes to the parameters' ``minutes`` field when the model has one, else to
    ``time_limit_s``; the model's own validation split is turned off (the loop holds out its
    own images); a warm start uses ``start_from="current"`` where the model has that field.
    ``settings.train_params`` win on top.
    """
    from ..models import train_params_class
    from ..models.base import params_from_mapping

    params_type = train_params_class(settings.model)
    names = {f.name for f in fields(params_type)}
    values: dict[str, Any] = {}
    if "minutes" in names:
        values["minutes"] = settings.minutes
    elif "time_limit_s" in names:
        values["time_limit_s"] = settings.minutes * 60.0
    if "validation_fraction" in names:
        values["validation_fraction"] = 0.0
    if warm and "start_from" in names:
        values["start_from"] = "current"
    values.update(settings.train_params)
    return params_from_mapping(params_type, values)


def fit_within(
    model: Any, samples: Sequence[Sample], train_params: Any, settings: LoopSettings
) -> Generator[Progress, None, FitResult]:
    """Fit, stopping the model's generator when the budget is spent.

    Models that have a time field stop themselves; the loop closes the generator only after a
    grace of a quarter of the budget. Closed early, the model keeps what it learned so far.
    """
    from ..models.base import params_to_dict

    names = {f.name for f in fields(train_params)}
    own_limit = bool(names & {"minutes", "time_limit_s"})
    budget = settings.minutes * 60.0 * (1.25 if own_limit else 1.0)
    started = time.monotonic()
    fit = model.fit_iter(samples, train_params)
    while True:
        try:
            progress = next(fit)
        except StopIteration as stop:
            return stop.value
        yield Progress(
            progress.step,
            progress.total,
            f"train: {progress.message}",
            progress.loss,
            progress.metrics,
        )
        if time.monotonic() - started > budget:
            fit.close()
            logger.info("training budget of %.1f min spent: stopped", settings.minutes)
            return FitResult(
                params=params_to_dict(model.params),
                metrics={"stopped": 1.0},
                data_used=tuple(dict.fromkeys(s.name for s in samples)),
            )


def predict_all(
    model: Any, samples: Sequence[Sample], what: str
) -> Generator[Progress, None, list[np.ndarray]]:
    preds = []
    for step, sample in enumerate(samples, start=1):
        yield Progress(step, len(samples), f"{what}: {sample.name}")
        prediction = yield from relay(model.predict_iter(sample.image), prefix=f"{what}: ")
        preds.append(np.asarray(prediction.labels))
    return preds


def ap50(samples: Sequence[Sample], preds: Sequence[np.ndarray]) -> float:
    if not samples:
        return float("nan")
    return float(score_images([s.labels for s in samples], preds).ap50)


def reason_for(
    accepted: bool,
    new: float,
    old: float | None,
    current: ModelVersionRecord | None,
    n_held: int,
) -> str:
    if current is None:
        return (
            f"First version: AP50 {new:.2f} on {n_held} held-out image(s)."
            if n_held
            else "First version (no held-out image to score it yet)."
        )
    if not n_held:
        return f"No held-out image yet (commit two or more): replaced v{current.id}."
    where = f"on {n_held} held-out image(s)"
    if accepted:
        return f"AP50 {new:.2f} {where} vs {old:.2f} for v{current.id}: replaced v{current.id}."
    return f"AP50 {new:.2f} {where} vs {old:.2f} for v{current.id}: kept v{current.id}."


def checkpoint_of(current: ModelVersionRecord | None) -> str | None:
    if current is None or not current.checkpoint_path:
        return None
    if not Path(current.checkpoint_path).is_file():
        logger.warning(
            "checkpoint %s of v%d is missing: training from the defaults",
            current.checkpoint_path,
            current.id,
        )
        return None
    return current.checkpoint_path


def device_override(settings: LoopSettings) -> dict[str, Any]:
    from ..models import params_class

    has_device = "device" in {f.name for f in fields(params_class(settings.model))}
    return {"device": settings.device} if has_device else {}


def checkpoint_folder(store: Any, settings: LoopSettings) -> Path:
    """Where the loop writes checkpoints: ``settings.checkpoint_dir``, else ``<project>/models``
    next to an SQLite store, else ``~/.cellist/models``."""
    if settings.checkpoint_dir:
        return Path(settings.checkpoint_dir)
    if store.path is not None:
        return Path(store.path).parent / "models"
    return Path.home() / ".cellist" / "models"


def save_checkpoint(model: Any, store: Any, settings: LoopSettings) -> Path:
    from ..models import get_entry

    folder = checkpoint_folder(store, settings)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = get_entry(settings.model).checkpoint_suffix
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = folder / f"{settings.model}-loop-{stamp}-{time.monotonic_ns() % 10**6:06d}{suffix}"
    model.save(path)
    return path


def numbers(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}
