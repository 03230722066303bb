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
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .loop.data import (
    CORRECTION_KINDS,
    MAX_REPEATS,
    committed_in_order,
    committed_sample,
    correction_weights,
    split_held_out,
)
from .loop.history import (
    CorrectionsRow,
    VersionPoint,
    commits_since_last_training,
    corrections_by_image,
    version_history,
)
from .loop.training import (
    ap50,
    checkpoint_folder,
    checkpoint_of,
    device_override,
    fit_within,
    loop_train_params,
    numbers,
    predict_all,
    reason_for,
    save_checkpoint,
)
from .metrics import edit_counts_pooled
from .store.records import ModelVersionRecord
from .store.versions import is_rejected
from .types import Progress

logger = logging.getLogger(__name__)


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


def due_for_retraining(store: Any, settings: LoopSettings) -> bool:
    """True when ``settings.every_n_commits`` commits were made since the model's newest
    version was recorded (or since the project started, when it has none)."""
    return commits_since_last_training(store, settings.model) >= settings.every_n_commits


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
    from .models.base import params_to_dict

    if not get_entry(settings.model).trainable:
        raise ValueError(
            f"Model {settings.model!r} cannot be trained; choose one of "
            f"{', '.join(trainable_models())}."
        )
    last_commit = max((c.id for c in store.commits()), default=None)
    if store.read_only:
        raise ValueError("The project store is open read-only: retraining records a version.")
    train_ids, held_ids = split_held_out(committed_in_order(store), settings.holdout_fraction)
    held_samples = {i: committed_sample(store, i) for i in held_ids}
    # points-only commits cannot be scored: they train instead
    train_ids += [i for i in held_ids if held_samples[i].labels is None]
    held_ids = [i for i in held_ids if held_samples[i].labels is not None]
    if not train_ids:
        raise ValueError("Nothing committed to train on: commit the corrections of an image first.")
    current = store.current_model_version(settings.model)
    checkpoint = checkpoint_of(current)
    trained = yield from _train(store, settings, train_ids, checkpoint)
    path = save_checkpoint(trained.model, store, settings)
    held = [held_samples[i] for i in held_ids]
    new = yield from _score(trained.model, held, "score the new version")
    old = None
    if current is not None and held:
        model = build_model(settings.model, checkpoint, device_override(settings))
        old = yield from _score(model, held, f"score v{current.id}")
    accepted = old is None or new["ap50"] >= old["ap50"]
    reason = reason_for(accepted, new["ap50"], old and old["ap50"], current, len(held))
    loop = {
        "accepted": accepted,
        "score": new["ap50"] if held else None,
        "current_score": old and old["ap50"],
        "current_version": None if current is None else current.id,
        "held_out": [s.name for s in held],
        "held_out_ids": held_ids,
        "edits_per_100": new["edits_per_100"] if held else None,
        "current_edits_per_100": old and old["edits_per_100"],
        "weights": trained.weights,
        "last_commit_id": last_commit,
        "train_seconds": trained.seconds,
        "minutes": settings.minutes,
        "reason": reason,
    }
    record = store.add_model_version(
        settings.model,
        {**trained.result.params, **params_to_dict(trained.model.params)},  # as saved
        parent_id=None if current is None else current.id,
        data_used=list(trained.weights),
        metrics={**numbers(trained.result.metrics), "loop": loop},
        checkpoint_path=path,
    )
    logger.info("retrained %s: v%d %s (%s)", settings.model, record.id, accepted, reason)
    return RetrainOutcome(
        record,
        accepted,
        reason,
        new["ap50"],
        old and old["ap50"],
        tuple(loop["held_out"]),
        trained.seconds,
    )


@dataclass(frozen=True)
class _Trained:
    model: Any
    result: Any
    weights: dict[str, int]  # copies of each training image by name, in commit order
    seconds: float


def _train(
    store: Any, settings: LoopSettings, train_ids: list[int], checkpoint: str | None
) -> Generator[Progress, None, _Trained]:
    """Warm start from ``checkpoint`` (None: the defaults) and fit within the budget."""
    from .models import build_model, get_entry

    weights = (
        correction_weights(store, train_ids)
        if settings.weight_by_corrections
        else dict.fromkeys(train_ids, 1)
    )
    yield Progress(0, 0, f"reading {len(train_ids)} committed image(s)")
    samples = {i: committed_sample(store, i) for i in train_ids}
    if get_entry(settings.model).kind != "target":  # base models learn from label maps only
        samples = {i: s for i, s in samples.items() if s.labels is not None}
        if not samples:
            raise ValueError(
                f"Model {settings.model!r} learns from outlined objects; the committed images "
                "have points only. Commit outlined objects first (or retrain AIR)."
            )
    train_ids = [i for i in train_ids if i in samples]
    training = [samples[i] for i in train_ids for _ in range(weights[i])]
    model = build_model(settings.model, checkpoint, device_override(settings))
    train_params = loop_train_params(settings, warm=checkpoint is not None)
    started = time.monotonic()
    result = yield from fit_within(model, training, train_params, settings)
    by_name = {samples[i].name: weights[i] for i in train_ids}
    return _Trained(model, result, by_name, time.monotonic() - started)


def _score(model: Any, held: list[Any], what: str) -> Generator[Progress, None, dict[str, float]]:
    """AP50 and edits per 100 objects of ``model`` on the held-out samples (pooled)."""
    preds = yield from predict_all(model, held, what)
    if not held:
        return {"ap50": float("nan"), "edits_per_100": float("nan")}
    truths = [s.labels for s in held]
    return {
        "ap50": ap50(held, preds),
        "edits_per_100": edit_counts_pooled(truths, preds).per_100_objects,
    }


def held_out_scores(
    store: Any, settings: LoopSettings, version_ids: Sequence[int] | None = None
) -> Generator[Progress, None, list[dict[str, Any]]]:
    """Scores of model versions on the committed images the loop holds out (a generator).

    The panel's view of :func:`napari_cellist.model_eval.evaluate_models`: every version of
    ``settings.model`` with a checkpoint file (or the ones in ``version_ids``), scored on the
    held-out committed images of today's split (AP50, mean AP, F1, count error, edits per 100
    objects); one row per version, oldest first, with ``accepted`` from the loop's record.
    Empty when nothing is held out yet.
    """
    from .model_eval import Candidate, evaluate_models_iter

    _, held_ids = split_held_out(committed_in_order(store), settings.holdout_fraction)
    wanted = None if version_ids is None else {int(i) for i in version_ids}
    records = [
        r
        for r in store.model_versions(settings.model)
        if (wanted is None or r.id in wanted)
        and r.checkpoint_path
        and Path(r.checkpoint_path).is_file()
    ]
    if not held_ids or not records:
        return []
    loaded = [committed_sample(store, i) for i in held_ids]
    samples = [s for s in loaded if s.labels is not None]  # points-only: not scorable
    if not samples:
        return []
    candidates = [Candidate(f"v{r.id}", r.name, r.checkpoint_path) for r in records]
    rows = yield from evaluate_models_iter(samples, candidates, device_override(settings))
    accepted = {r.id: not is_rejected(r.metrics) for r in records}
    return [{**row, "accepted": accepted[int(row["label"][1:])]} for row in rows]


__all__ = [
    "CORRECTION_KINDS",
    "MAX_REPEATS",
    "CorrectionsRow",
    "LoopSettings",
    "RetrainOutcome",
    "VersionPoint",
    "checkpoint_folder",
    "commits_since_last_training",
    "committed_in_order",
    "correction_weights",
    "corrections_by_image",
    "due_for_retraining",
    "held_out_scores",
    "loop_train_params",
    "retrain",
    "split_held_out",
    "version_history",
]
