"""The Project panel's commit job: write the shown image's draft, then commit it, in a worker.

On the GUI thread only the label map is copied (the draft snapshot, handed to the
:class:`~napari_cellist.drafts.DraftWriter`); writing the draft and the commit (encoding every
object's RLE and polygon, the corrections, one transaction) run in the worker. Progress has
three steps: draft written, committing, committed; the store's ``commit_draft`` is one call
without a progress hook, so the encoding itself is one step.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from ..project_queue import OpenedImage
from ..types import Progress


def commit_job(
    drafts: Any, store: Any, image_id: int, name: str, n_objects: int
) -> Callable[[], Generator[Progress, None, Any]]:
    """The job that writes the pending draft of ``image_id`` and commits it; returns the
    store's commit result (``commit_id``, ``n_objects``...)."""

    def job() -> Generator[Progress, None, Any]:
        yield Progress(0, 3, f"writing the draft of {name}...")
        if not drafts.flush(timeout_s=60):
            raise RuntimeError(
                f"The draft of {name} could not be written, so it was not committed; "
                "check that the project folder is writable and commit again."
            )
        yield Progress(1, 3, f"encoding and committing {n_objects} objects of {name}...")
        result = store.commit_draft(image_id)
        yield Progress(3, 3, "committed")
        return result

    return job


def after_commit(opened: OpenedImage, commit_id: int) -> OpenedImage:
    """What the panel shows after ``opened`` was committed as ``commit_id`` (the layers stay:
    the same objects, now the committed annotations the next draft is based on)."""
    return OpenedImage(
        opened.image_id,
        "committed",
        None,
        opened.objects,
        None,
        None,
        commit_id,
        opened.prediction_id,
    )


__all__ = ["after_commit", "commit_job"]
