"""Committed annotations back in the viewer: read, decode and outline them in a worker, then hand
the finished layer data to napari on the GUI thread; also when an image is opened (the restore
hook, once per viewer)."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Generator
from typing import Any

from ..progress import drain
from ..types import Progress
from ._common import (
    annotation_tuples,
    image_layer_names,
    layer_pixels,
    role_layer,
    set_annotation_layers,
)
from ._session import session_for

logger = logging.getLogger(__name__)


def restore_job(
    viewer: Any, session: Any, image_name: str
) -> Callable[[], Generator[Progress, None, tuple[int, list[Any]] | None]]:
    """The job that reads the committed annotations of an image layer and builds their layer
    data; returns ``(number of objects, layer tuples)``, None when nothing was committed.

    Only the image's pixels (a reference) and scale are read here, on the GUI thread; hashing
    the pixels, loading and decoding the annotations and the outlines run in the job.
    """
    layer = viewer.layers[image_name]
    pixels = layer_pixels(layer)
    scale = tuple(layer.scale)

    def job() -> Generator[Progress, None, tuple[int, list[Any]] | None]:
        yield Progress(0, 2, f"loading the committed annotations of {image_name}...")
        found = session.restore(pixels, image_name)
        if found is None:
            return None
        labels, objects, points = found
        yield Progress(1, 2, f"drawing {len(objects)} committed objects...")
        tuples = annotation_tuples(
            session, image_name, labels, objects, points, scale[-labels.ndim :]
        )
        return len(objects), tuples

    return job


def show_restored(
    viewer: Any, session: Any, image_name: str, result: tuple[int, list[Any]] | None
) -> int | None:
    """Show what :func:`restore_job` returned (GUI thread); the number of objects, or None."""
    if result is None or image_name not in viewer.layers:
        return None
    n, tuples = result
    set_annotation_layers(viewer, session, image_name, tuples)
    session.mark_committed(image_name)
    return n


def restore_annotations(viewer: Any, session: Any, image_name: str) -> int | None:
    """Show the committed annotations of an image layer on the calling thread; the number of
    objects, None if none.

    Raises
    ------
    StoreError, ValueError, OSError
        When the project store cannot be read.
    """
    return show_restored(
        viewer, session, image_name, drain(restore_job(viewer, session, image_name)())
    )


_HOOKED: weakref.WeakSet[Any] = weakref.WeakSet()


def install_restore_hook(viewer: Any) -> None:
    """Once per viewer: an image opened later gets its committed annotations back (whichever
    Cellist widget is docked)."""
    if viewer in _HOOKED:
        return
    viewer_ref = weakref.ref(viewer)

    def on_inserted(event: Any) -> None:
        viewer = viewer_ref()
        if viewer is None:
            return
        session = session_for(viewer)
        name = event.value.name
        if name not in image_layer_names(viewer) or role_layer(viewer, name, "labels") is not None:
            return
        if not session.project_exists():
            return

        def shown(result: tuple[int, list[Any]] | None) -> None:
            if role_layer(viewer, name, "labels") is not None:
                return  # labels arrived meanwhile (a prediction): they win
            n = show_restored(viewer, session, name, result)
            if n is not None:
                notify_info(f"Loaded the committed annotations of {name} ({n} objects).")

        from ._runner import notify_info, start_job

        # hashing the pixels, loading and the outlines run in a worker: opening stays fluid;
        # a broken store is reported once and must not break opening images
        start_job(restore_job(viewer, session, name), shown)

    viewer.layers.events.inserted.connect(on_inserted)
    _HOOKED.add(viewer)
