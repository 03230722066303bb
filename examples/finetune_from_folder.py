"""Fit a model to an ``images/`` + ``masks/`` folder and save the result as a model version.

The masks are instance label maps with the same file names as the images. The model is fitted
(threshold: a search over its parameters; AIR, Cellpose: gradient training), its checkpoint is
written into a project folder and recorded in the project store as a new model version, with
the data it was fitted on and its metrics, as the *Fine-tune* widget does. Run it again on
the same project and it fine-tunes the newest version::

    python examples/finetune_from_folder.py                            # packaged DSB2018 sample
    python examples/finetune_from_folder.py DATA/coelho2009_u2os --project my_project
    python examples/finetune_from_folder.py FOLDER --model air --steps 300

``--steps`` sets the model's training-steps field as named on its registry entry (threshold:
candidate parameter sets; AIR: optimisation steps; Cellpose: epochs). Without a folder it uses
``$CELLIST_DATA/dsb2018_stardist`` when ``CELLIST_DATA`` is set, else the DSB2018 nuclei image
shipped with the package (written to a temporary ``images/`` + ``masks/`` folder).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from napari_cellist._sample_data import sample_image_path, sample_mask_path
from napari_cellist.models import build_model, get_entry, train_params_class, trainable_models
from napari_cellist.pipeline import samples_from_folders
from napari_cellist.progress import drain
from napari_cellist.store import ProjectStore
from napari_cellist.types import Progress

logger = logging.getLogger("finetune_from_folder")


def default_folder(scratch: Path) -> Path:
    """``$CELLIST_DATA/dsb2018_stardist``, else the packaged sample copied into ``scratch``."""
    data = os.environ.get("CELLIST_DATA")
    if data and (Path(data) / "dsb2018_stardist" / "masks").is_dir():
        return Path(data) / "dsb2018_stardist"
    for sub, source in (("images", sample_image_path()), ("masks", sample_mask_path())):
        (scratch / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy(source, scratch / sub / "nuclei.tif")  # same name in images/ and masks/
    return scratch


def finetune(folder: Path, model_name: str, steps: int | None, project: Path) -> dict:
    """Fit ``model_name`` to ``folder`` and record it as a version in the store at ``project``.

    The newest version of the model in that store, if any, is the starting point (its
    checkpoint is loaded and fine-tuned, and it becomes the new version's parent); otherwise the
    model starts from its defaults.

    Returns
    -------
    dict
        ``{"version", "parent", "checkpoint", "metrics", "data_used"}`` of the new version.
    """
    entry = get_entry(model_name)
    train_params = train_params_class(model_name)()
    if steps is not None and entry.steps_field:
        train_params = replace(train_params, **{entry.steps_field: steps})
    samples = samples_from_folders([folder])
    project.mkdir(parents=True, exist_ok=True)
    with ProjectStore(project) as store:
        parent = store.latest_model_version(model_name)
        start = parent.checkpoint_path if parent is not None else None
        model = build_model(model_name, start)
        logger.info(
            "fitting %s (from %s) on %d images of %s",
            model_name,
            start or "defaults",
            len(samples),
            folder,
        )
        result = drain(model.fit_iter(samples, train_params), _log_progress)
        number = len(store.model_versions(model_name)) + 1
        checkpoint = model.save(project / f"{model_name}_v{number}{entry.checkpoint_suffix}")
        record = store.add_model_version(
            model_name,
            dict(result.params),
            parent_id=parent.id if parent is not None else None,
            data_used=list(result.data_used),
            metrics=dict(result.metrics),
            checkpoint_path=checkpoint,
        )
    return {
        "version": record.id,
        "parent": record.parent_id,
        "checkpoint": str(checkpoint),
        "metrics": dict(result.metrics),
        "data_used": list(result.data_used),
    }


def _log_progress(progress: Progress) -> None:
    loss = "" if progress.loss is None else f" loss {progress.loss:.4f}"
    logger.info("%d/%d %s%s", progress.step, progress.total, progress.message, loss)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, help="Folder with images/ and masks/.")
    parser.add_argument("--model", default="threshold", choices=trainable_models())
    parser.add_argument("--steps", type=int, default=None, help="Training steps (see above).")
    parser.add_argument("--project", type=Path, default=Path("cellist-example-project"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.folder or default_folder(Path(scratch))
        version = finetune(folder, args.model, args.steps, args.project)
    logger.info(
        "model version %d of %s (parent %s): %s, metrics %s",
        version["version"],
        args.model,
        version["parent"],
        version["checkpoint"],
        version["metrics"],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
