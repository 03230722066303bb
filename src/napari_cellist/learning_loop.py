"""The learning loop: the project's model retrained while a person labels, never for the worse.

After every ``every_n_commits`` commits (:func:`due_for_retraining`) the project's trainable
model (``"threshold"``, ``"air"``, ``"cellpose"``) is retrained by :func:`retrain` (a generator
of :class:`~napari_cellist.types.Progress`: run it in a worker):

* it starts from the model's *current* version (:meth:`ProjectStore.current_model_version`:
  the newest version the loop did not reject) - a warm start from its checkpoint;
* it trains on every committed image except the *held-out* ones, within a time budget;
  with ``weight_by_corrections`` an image counts more the more corrections per object its
  latest commit needed (:func:`correction_weights`, from the store's corrections log);
* it scores the new and the current version on the held-out committed images (AP50, pooled
  over the images, :func:`napari_cellist.metrics.score_images`) and records the new version
  with its decision, **accepted or not**.

**The rule**: a new version is accepted (becomes current) iff its AP50 on the held-out committed
images is at least the current version's AP50 on the same images; ties are accepted. Without a
current version, or without held-out images (fewer than two committed images), the new version
is accepted. A rejected version is kept in the store with its scores
(``metrics["loop"]["accepted"] = False``); the current version stays current.

**Held-out images** are chosen deterministically by commit order: with ``k = round(1 /
holdout_fraction)`` the 2nd, (k+2)-th, (2k+2)-th... committed image (by first commit). An image
once held out stays held out as more images are committed, so the loop never trains on it and
successive versions are compared on nested sets of the same images.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from .images import prepare_grey
from .metrics import edit_counts_pooled, score_images
from .progress import relay
from .store.records import ModelVersionRecord
from .store.versions import is_rejected
from .types import FitResult, Progress, Sample

logger = logging.getLogger(__name__)

#: Kinds of corrections in the store's log, in the order rows list them.
CORRECTION_KINDS = ("added", "deleted", "modified", "merged", "split")
#: Most copies of one image in a training list (``weight_by_corrections``).
MAX_REPEATS = 3


@dataclass(frozen=True)
class LoopSettings:
    """How the learning loop retrains a project's model.

    Parameters
    ----------
    model : str
        Registry name of the trainable model: ``"threshold"``, ``"air"``, ``"cellpose"``.
    every_n_commits : int
        Retrain after this many new commits.
    minutes : float
        Training time budget of one retraining, in minutes (wall clock).
    holdout_fraction : float
        Fraction of the committed images held out for validation (at least one when two or
        more are committed; 0 = none, every new version is then accepted).
    weight_by_corrections : bool
        Images whose latest commit needed many corrections per object weigh more in training
        (repeated up to :data:`MAX_REPEATS` times).
    device : str
        ``"auto"``, ``"cuda"``, ``"mps"`` or ``"cpu"`` for models that have a device.
    train_params : Mapping
        Extra training parameters of the model (``{field: value}``) on top of the loop's.
    checkpoint_dir : str, optional
        Folder the new versions' checkpoints are written to; default ``<project>/models``
        (``~/.cellist/models`` for a database server).
    """

    model: str
    every_n_commits: int = 1
    minutes: float = 2.0
    holdout_fraction: float = 0.25
    weight_by_corrections: bool = True
    device: str = "auto"
    train_params: Mapping[str, Any] = field(default_factory=dict)
    checkpoint_dir: str | None = None

    def __post_init__(self) -> None:
        if self.every_n_commits < 1:
            raise ValueError(f"every_n_commits must be 1 or more, not {self.every_n_commits}.")
        if not self.minutes > 0:
            raise ValueError(f"minutes (the training budget) must be positive, not {self.minutes}.")
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise ValueError(
                f"holdout_fraction must be in [0, 1), not {self.holdout_fraction} "
                "(0.25 holds out every 4th committed image)."
            )


@dataclass(frozen=True)
class RetrainOutcome:
    """What one retraining did.

    Parameters
    ----------
    version : ModelVersionRecord
        The new version (recorded also when rejected).
    accepted : bool
        It became the current version.
    reason : str
        One sentence for the user.
    new_score : float
        AP50 of the new version on the held-out committed images (NaN without held-out images).
    current_score : float or None
        AP50 of the current version on the same images (None: there was no current version
        or no held-out image).
    held_out : tuple of str
        Names of the held-out images.
    train_seconds : float
        Wall-clock time of the training itself.
    """

    version: ModelVersionRecord
    accepted: bool
    reason: str
    new_score: float
    current_score: float | None
    held_out: tuple[str, ...]
    train_seconds: float = 0.0


@dataclass(frozen=True)
class VersionPoint:
    """One version of a model, for the plot of validation score over time.

    ``score`` is the held-out AP50 the loop measured (None for versions recorded outside the
    loop); ``accepted`` is False only for versions the loop rejected.
    """

    version_id: int
    created_at: datetime
    score: float | None
    accepted: bool
    n_train_images: int


@dataclass(frozen=True)
class CorrectionsRow:
    """The corrections of one commit: which image, which model predicted what was corrected.

    ``counts`` has one entry per kind of :data:`CORRECTION_KINDS`; ``total`` is their sum;
    ``n_objects`` the objects committed. ``model_name`` / ``model_version`` are those of the
    image's latest prediction made before the commit (None: it was drawn without one).
    """

    image_id: int
    name: str
    commit_id: int
    committed_at: datetime
    model_name: str | None
    model_version: int | None
    counts: dict[str, int]
    total: int
    n_objects: int

    @property
    def per_object(self) -> float:
        """Corrections per committed object (0 for an empty commit)."""
        return self.total / self.n_objects if self.n_objects else float(self.total)


# -- when ----------------------------------------------------------------------------------------
def commits_since_last_training(store: Any, model: str) -> int:
    """Commits made since the newest version of ``model`` was recorded (all commits if none).

    Versions recorded by the loop remember the last commit they saw; others count by time.
    """
    commits = store.commits()
    last = store.latest_model_version(model)
    if last is None:
        return len(commits)
    seen = (last.metrics.get("loop") or {}).get("last_commit_id")
    if seen is not None:
        return sum(c.id > int(seen) for c in commits)
    return sum(c.created_at > last.created_at for c in commits)


def due_for_retraining(store: Any, settings: LoopSettings) -> bool:
    """True when ``settings.every_n_commits`` commits were made since the last training and
    something is committed to train on."""
    return commits_since_last_training(store, settings.model) >= settings.every_n_commits


# -- the data ------------------------------------------------------------------------------------
def committed_in_order(store: Any) -> list[int]:
    """Ids of the images with committed annotations, by their first commit (oldest first)."""
    first: dict[int, int] = {}
    for commit in store.commits():
        first.setdefault(commit.image_id, commit.id)
    return sorted(first, key=first.__getitem__)


def split_held_out(image_ids: Sequence[int], fraction: float) -> tuple[list[int], list[int]]:
    """``(train, held_out)`` of image ids in commit order (see the module docstring).

    Every k-th image from the 2nd on is held out, ``k = max(2, round(1 / fraction))``;
    nothing is held out with fewer than two images or ``fraction == 0``.
    """
    ids = list(image_ids)
    if fraction <= 0 or len(ids) < 2:
        return ids, []
    k = max(2, round(1.0 / fraction))
    held = [i for n, i in enumerate(ids) if n % k == 1]
    return [i for i in ids if i not in held], held


def correction_weights(store: Any, image_ids: Sequence[int]) -> dict[int, int]:
    """How many times each image goes into the training list: ``1 + round(2 * c)``, capped at
    :data:`MAX_REPEATS`, where ``c`` is the corrections per object of its latest commit in the
    store's corrections log (0 for imported masks: nothing corrected); divided by their
    greatest common divisor (equal weights: one copy each)."""
    wanted = set(image_ids)
    latest: dict[int, Any] = {}
    for commit in store.commits():
        if commit.image_id in wanted:
            latest[commit.image_id] = commit
    per_commit: dict[int, int] = {}
    for record in store.corrections():
        per_commit[record.commit_id] = per_commit.get(record.commit_id, 0) + 1
    weights = {}
    for image_id in image_ids:
        commit = latest.get(image_id)
        n = 0 if commit is None else per_commit.get(commit.id, 0)
        rate = n / commit.n_objects if commit is not None and commit.n_objects else float(n > 0)
        weights[image_id] = int(min(MAX_REPEATS, 1 + round(2 * rate)))
    common = math.gcd(*weights.values()) if weights else 1  # equal weights: one copy each
    return {i: w // common for i, w in weights.items()}


def committed_sample(store: Any, image_id: int) -> Sample:
    """The image's grey pixels with its committed label map and points."""
    labels, _ = store.load_annotations(image_id)
    pixels = store.load_pixels(image_id)
    rgb = pixels.ndim == 3 and pixels.shape[-1] in (3, 4) and labels.ndim == 2
    points = store.load_points(image_id)
    points = None if points is None or not len(points) else points
    return Sample(prepare_grey(pixels, rgb=rgb), labels, points, store.image(image_id).name)


# -- retraining ----------------------------------------------------------------------------------
def retrain(store: Any, settings: LoopSettings) -> Generator[Progress, None, RetrainOutcome]:
    """Retrain the project's model once and keep the new version only if it is not worse.

    Warm start from the current version, training on the committed images that are not held
    out (see the module docstring), then the rule: the new version is accepted iff its AP50 on
    the held-out committed images is >= the current version's on the same images (ties
    accepted; no current version or no held-out image: accepted). The new version is recorded
    either way, with ``parent_id`` the current version, ``data_used`` the names it trained on
    and ``metrics["loop"]``: ``accepted``, ``score``, ``current_score``, ``held_out``,
    ``edits_per_100`` / ``current_edits_per_100`` on the held-out images, ``weights``,
    ``last_commit_id``, ``train_seconds``, ``reason``.

    Parameters
    ----------
    store : ProjectStore
        The project (writable).
    settings : LoopSettings
        Model, budget, hold-out and weighting.

    Yields
    ------
    Progress
        The model's training reports (prefixed ``"train: "``), then one per held-out image
        scored.

    Returns
    -------
    RetrainOutcome
        The decision and the new version.

    Raises
    ------
    ValueError
        The model cannot be trained, or nothing is committed to train on.
    """
    from .models import build_model, get_entry, trainable_models

    if not get_entry(settings.model).trainable:
        raise ValueError(
            f"Model {settings.model!r} cannot be trained; choose one of "
            f"{', '.join(trainable_models())}."
        )
    last_commit = max((c.id for c in store.commits()), default=None)
    train_ids, held_ids = split_held_out(committed_in_order(store), settings.holdout_fraction)
    if not train_ids:
        raise ValueError("Nothing committed to train on: commit the corrections of an image first.")
    current = store.current_model_version(settings.model)
    checkpoint = _checkpoint_of(current)
    weights = (
        correction_weights(store, train_ids)
        if settings.weight_by_corrections
        else dict.fromkeys(train_ids, 1)
    )
    yield Progress(0, 0, f"reading {len(train_ids)} committed image(s)")
    samples = {i: committed_sample(store, i) for i in train_ids}
    training = [samples[i] for i in train_ids for _ in range(weights[i])]
    model = build_model(settings.model, checkpoint, _device_override(settings))
    train_params = loop_train_params(settings, warm=checkpoint is not None)
    started = time.monotonic()
    result = yield from _fit_within(model, training, train_params, settings)
    train_seconds = time.monotonic() - started
    path = _save_checkpoint(model, store, settings)
    held = [committed_sample(store, i) for i in held_ids]
    new_preds = yield from _predict_all(model, held, "score new version")
    new_score = _ap50(held, new_preds)
    current_score = current_edits = None
    if current is not None and held:
        old = build_model(settings.model, checkpoint, _device_override(settings))
        old_preds = yield from _predict_all(old, held, f"score v{current.id}")
        current_score = _ap50(held, old_preds)
        current_edits = edit_counts_pooled([s.labels for s in held], old_preds).per_100_objects
    accepted = current_score is None or new_score >= current_score
    names = tuple(s.name for s in held)
    reason = _reason(accepted, new_score, current_score, current, len(held))
    loop = {
        "accepted": accepted,
        "score": new_score if held else None,
        "current_score": current_score,
        "current_version": None if current is None else current.id,
        "held_out": list(names),
        "held_out_ids": held_ids,
        "edits_per_100": (
            edit_counts_pooled([s.labels for s in held], new_preds).per_100_objects
            if held
            else None
        ),
        "current_edits_per_100": current_edits,
        "weights": {samples[i].name: weights[i] for i in train_ids},
        "last_commit_id": last_commit,
        "train_seconds": train_seconds,
        "minutes": settings.minutes,
        "reason": reason,
    }
    record = store.add_model_version(
        settings.model,
        dict(result.params),
        parent_id=None if current is None else current.id,
        data_used=list(dict.fromkeys(samples[i].name for i in train_ids)),
        metrics={**_numbers(result.metrics), "loop": loop},
        checkpoint_path=path,
    )
    logger.info("retrained %s: v%d %s (%s)", settings.model, record.id, accepted, reason)
    return RetrainOutcome(record, accepted, reason, new_score, current_score, names, train_seconds)


def loop_train_params(settings: LoopSettings, warm: bool) -> Any:
    """The model's training parameters for one retraining.

    The time budget goes to the parameters' ``minutes`` field when the model has one, else to
    ``time_limit_s``; the model's own validation split is turned off (the loop holds out its
    own images); a warm start uses ``start_from="current"`` where the model has that field.
    ``settings.train_params`` win on top.
    """
    from .models import train_params_class
    from .models.base import params_from_mapping

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


def _fit_within(
    model: Any, samples: Sequence[Sample], train_params: Any, settings: LoopSettings
) -> Generator[Progress, None, FitResult]:
    """Fit, stopping the model's generator when the budget is spent.

    Models that have a time field stop themselves; the loop closes the generator only after a
    grace of a quarter of the budget. Closed early, the model keeps what it learned so far.
    """
    from .models.base import params_to_dict

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


def _predict_all(
    model: Any, samples: Sequence[Sample], what: str
) -> Generator[Progress, None, list[np.ndarray]]:
    preds = []
    for step, sample in enumerate(samples, start=1):
        yield Progress(step, len(samples), f"{what}: {sample.name}")
        prediction = yield from relay(model.predict_iter(sample.image), prefix=f"{what}: ")
        preds.append(np.asarray(prediction.labels))
    return preds


def _ap50(samples: Sequence[Sample], preds: Sequence[np.ndarray]) -> float:
    if not samples:
        return float("nan")
    return float(score_images([s.labels for s in samples], preds).ap50)


def _reason(
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


def _checkpoint_of(current: ModelVersionRecord | None) -> str | None:
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


def _device_override(settings: LoopSettings) -> dict[str, Any]:
    from .models import params_class

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


def _save_checkpoint(model: Any, store: Any, settings: LoopSettings) -> Path:
    from .models import get_entry

    folder = checkpoint_folder(store, settings)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = get_entry(settings.model).checkpoint_suffix
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = folder / f"{settings.model}-loop-{stamp}-{time.monotonic_ns() % 10**6:06d}{suffix}"
    model.save(path)
    return path


def _numbers(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}


# -- history -------------------------------------------------------------------------------------
def version_history(store: Any, model: str) -> list[VersionPoint]:
    """Every version of ``model``, oldest first, with its held-out score and decision."""
    points = []
    for record in store.model_versions(model):
        loop = record.metrics.get("loop") or {}
        score = loop.get("score")
        points.append(
            VersionPoint(
                record.id,
                record.created_at,
                None if score is None else float(score),
                not is_rejected(record.metrics),
                len(set(record.data_used)),
            )
        )
    return points


def corrections_by_image(store: Any) -> list[CorrectionsRow]:
    """One row per commit, oldest first: the image, the model version whose prediction was
    corrected, the corrections per kind from the store's log, and the objects committed."""
    counts: dict[int, dict[str, int]] = {}
    for record in store.corrections():
        row = counts.setdefault(record.commit_id, dict.fromkeys(CORRECTION_KINDS, 0))
        row[record.kind] = row.get(record.kind, 0) + 1
    names = {r.id: r.name for r in store.images()}
    predictions = _predictions_by_image(store)
    rows = []
    for commit in store.commits():
        kinds = counts.get(commit.id, dict.fromkeys(CORRECTION_KINDS, 0))
        before = [p for p in predictions.get(commit.image_id, []) if p[0] <= commit.created_at]
        model_name, version = (before[-1][1], before[-1][2]) if before else (None, None)
        rows.append(
            CorrectionsRow(
                commit.image_id,
                names.get(commit.image_id, str(commit.image_id)),
                commit.id,
                commit.created_at,
                model_name,
                version,
                kinds,
                sum(kinds.values()),
                commit.n_objects,
            )
        )
    return rows


def _predictions_by_image(store: Any) -> dict[int, list[tuple[datetime, str, int | None]]]:
    out: dict[int, list[tuple[datetime, str, int | None]]] = {}
    for p in store.prediction_history():
        out.setdefault(p.image_id, []).append((p.created_at, p.model_name, p.model_version))
    return out
