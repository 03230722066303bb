"""Several model versions scored on one annotated folder: the evaluation behind ``cellist eval
--checkpoint A B`` / ``--version 3 5``.

Each candidate (a model name with a checkpoint, or without one for the base model) predicts
every image of an ``images/`` + ``masks/`` folder; its label maps are scored against the masks
(AP50, mean AP over IoU 0.5-0.95, F1, count error: :func:`napari_cellist.metrics.score_images`)
and turned into the edits a person would make (:func:`napari_cellist.metrics.edit_counts_pooled`:
edits per 100 true objects).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .metrics import edit_counts, edit_counts_pooled, score_image, score_images
from .progress import drain
from .types import Progress, Sample

logger = logging.getLogger(__name__)

#: Columns of :func:`score_table`: (title, key of a result row, format).
TABLE_COLUMNS = (
    ("AP50", "ap50", "{:.3f}"),
    ("mAP", "mean_ap", "{:.3f}"),
    ("F1", "f1", "{:.3f}"),
    ("count err.", "count_error", "{:.3f}"),
    ("edits/100", "edits_per_100", "{:.1f}"),
    ("objects", "n_pred", "{:d}"),
    ("truth", "n_true", "{:d}"),
)


@dataclass(frozen=True)
class Candidate:
    """One model version to score: ``label`` names it in the table (``"v3"``, a file name)."""

    label: str
    model: str
    checkpoint: str | None = None


def candidates_from_versions(store: Any, version_ids: Sequence[int]) -> list[Candidate]:
    """Candidates of stored model versions (``v<id>``, their model and checkpoint).

    Raises
    ------
    ValueError
        A version has no checkpoint file (it cannot be rebuilt).
    """
    out = []
    for version_id in version_ids:
        record = store.model_version(int(version_id))
        path = record.checkpoint_path
        if not path or not Path(path).is_file():
            raise ValueError(
                f"Model version {record.id} ({record.name}) has no checkpoint file "
                f"({path or 'none recorded'}); it cannot be scored."
            )
        out.append(Candidate(f"v{record.id}", record.name, path))
    return out


def evaluate_models(
    samples: Sequence[Sample],
    candidates: Sequence[Candidate],
    overrides: Mapping[str, Any] | None = None,
    border_margin: int = 0,
    on_progress: Callable[[Progress], None] | None = None,
) -> list[dict[str, Any]]:
    """Score every candidate on the same annotated samples (drains :func:`evaluate_models_iter`;
    ``on_progress`` is called with its reports)."""
    return drain(evaluate_models_iter(samples, candidates, overrides, border_margin), on_progress)


def evaluate_models_iter(
    samples: Sequence[Sample],
    candidates: Sequence[Candidate],
    overrides: Mapping[str, Any] | None = None,
    border_margin: int = 0,
) -> Generator[Progress, None, list[dict[str, Any]]]:
    """Score every candidate on the same annotated samples (a generator: one Progress per
    image predicted).

    Parameters
    ----------
    samples : sequence of Sample
        Grey images with their ground-truth label maps (``labels`` not None).
    candidates : sequence of Candidate
        The model versions, scored in this order.
    overrides : Mapping, optional
        Prediction parameters on top of each checkpoint's (``--param``, ``device``); a key
        a model does not have is left out for that model.
    border_margin : int
        Ignore objects within this many pixels of the border.

    Returns
    -------
    list of dict
        One row per candidate: ``label``, ``model``, ``checkpoint``, the pooled scores of
        :class:`~napari_cellist.metrics.Scores`, ``edits_per_100``, ``n_images`` and
        ``per_image`` ``{name: {scores..., "edits_per_100"}}``.

    Raises
    ------
    ValueError
        No sample, or a sample without ground truth.
    """
    from .models import build_model

    truths = [s.labels for s in samples]
    if not samples or any(t is None for t in truths):
        raise ValueError("Every image needs a ground-truth mask (masks/<same name>).")
    rows = []
    total = len(samples) * len(candidates)
    for n, candidate in enumerate(candidates):
        model = build_model(candidate.model, candidate.checkpoint, _known(candidate, overrides))
        preds = []
        for k, sample in enumerate(samples, start=1):
            yield Progress(n * len(samples) + k, total, f"{candidate.label}: {sample.name}")
            preds.append(drain(model.predict_iter(sample.image)).labels)
        rows.append(_row(candidate, samples, preds, border_margin))
        logger.info("%s: AP50 %.3f", candidate.label, rows[-1]["ap50"])
    return rows


def _known(candidate: Candidate, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The overrides the candidate's model has (a device for models that have one)."""
    from dataclasses import fields

    from .models import params_class

    names = {f.name for f in fields(params_class(candidate.model))}
    return {k: v for k, v in (overrides or {}).items() if k in names}


def _row(
    candidate: Candidate, samples: Sequence[Sample], preds: Sequence[Any], margin: int
) -> dict[str, Any]:
    truths = [s.labels for s in samples]
    per_image = {
        s.name: {
            **score_image(s.labels, p, margin).as_dict(),
            "edits_per_100": edit_counts(s.labels, p, border_margin=margin).per_100_objects,
        }
        for s, p in zip(samples, preds, strict=True)
    }
    return {
        "label": candidate.label,
        "model": candidate.model,
        "checkpoint": candidate.checkpoint,
        **score_images(truths, preds, margin).as_dict(),
        "edits_per_100": edit_counts_pooled(truths, preds, border_margin=margin).per_100_objects,
        "n_images": len(samples),
        "per_image": per_image,
    }


def score_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Text lines: a header, then one line per candidate with the :data:`TABLE_COLUMNS`."""
    width = max([len(str(r["label"])) for r in rows] + [5])
    header = f"{'model':<{width}}" + "".join(f"  {title:>10}" for title, _, _ in TABLE_COLUMNS)
    lines = [header]
    for row in rows:
        cells = "".join(f"  {fmt.format(row[key]):>10}" for _, key, fmt in TABLE_COLUMNS)
        lines.append(f"{row['label']:<{width}}{cells}")
    return lines
