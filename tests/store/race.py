"""Concurrent commits to one image, for the store's tests and for measuring by hand.

Each writer opens a store of its own (its own connections, as two people in two napari windows
would) and commits a large label map to the same image at the same moment. Afterwards exactly
one commit of the image may have ``accepted`` annotation rows.

Measure on a server (N trials of two concurrent 5,000-object commits)::

    python tests/store/race.py "$CELLIST_TEST_POSTGRES_URL" --trials 10

It prints how many trials ended with more than one accepted commit.
"""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import ndimage as ndi
from sqlalchemy import event, select

from napari_cellist.store import ProjectStore
from napari_cellist.store.connection import BEGIN_OPTION
from napari_cellist.store.schema import ACCEPTED, Annotation

logger = logging.getLogger(__name__)

SIZE, PITCH = 4, 6  # squares of SIZE x SIZE pixels every PITCH pixels


def grid_labels(n_objects: int, offset: int = 0) -> np.ndarray:
    """int32 ``(Y, X)`` label map of ``n_objects`` squares, ids ``1 + offset ...``."""
    cols = int(np.ceil(np.sqrt(n_objects)))
    rows = int(np.ceil(n_objects / cols))
    labels = np.zeros((rows * PITCH, cols * PITCH), np.int32)
    for k in range(n_objects):
        r, c = divmod(k, cols)
        labels[r * PITCH + 1 : r * PITCH + 1 + SIZE, c * PITCH + 1 : c * PITCH + 1 + SIZE] = (
            k + 1 + offset
        )
    return labels


def grid_polygons(labels: np.ndarray) -> dict[int, np.ndarray]:
    """``(4, 2)`` (row, col) box outlines by label id (so that commits skip tracing them)."""
    polygons = {}
    for label_id, slc in enumerate(ndi.find_objects(labels), start=1):
        if slc is not None:
            top, left, bottom, right = slc[0].start, slc[1].start, slc[0].stop - 1, slc[1].stop - 1
            polygons[label_id] = np.array(
                [[top, left], [top, right], [bottom, right], [bottom, left]], float
            )
    return polygons


def accepted_commits(store: ProjectStore, image_id: int) -> list[int]:
    """Ids of the commits of ``image_id`` that still have ``accepted`` annotation rows."""
    query = (
        select(Annotation.commit_id)
        .where(Annotation.image_id == image_id, Annotation.status == ACCEPTED)
        .distinct()
    )
    with store._read() as session:
        return sorted(int(i) for i in session.scalars(query))


def hold_write_transactions(
    store: ProjectStore, barrier: threading.Barrier, timeout_s: float = 3.0
) -> Callable:
    """Make each write transaction of ``store`` wait at ``barrier`` right after it begins.

    On a server the writers meet inside their transactions, before the store takes any lock.
    SQLite's ``BEGIN IMMEDIATE`` already makes the second writer wait for the first, so they
    cannot meet: the first one gives up waiting after ``timeout_s`` and goes on. Returns the
    listener.
    """

    def _wait(connection) -> None:
        if connection.get_execution_options().get(BEGIN_OPTION):
            try:
                barrier.wait(timeout_s)
            except threading.BrokenBarrierError:
                logger.debug("writers could not meet inside their transactions")

    event.listen(store._engine, "begin", _wait, insert=True)
    return _wait


def race(
    location: str,
    image_id: int,
    labels: list[np.ndarray],
    meet_in_transaction: bool = True,
    **commit_kwargs,
) -> list:
    """Commit ``labels[k]`` from writer ``k`` at once; the commit results (or exceptions).

    ``meet_in_transaction`` makes the writers wait for each other inside their write
    transactions (deterministic overlap); otherwise they only start together.
    """
    n = len(labels)
    polygons = [grid_polygons(lab) for lab in labels]
    stores = [ProjectStore(location) for _ in range(n)]
    start = threading.Barrier(n, timeout=60)
    inside = threading.Barrier(n, timeout=60)
    try:
        if meet_in_transaction:
            for store in stores:
                hold_write_transactions(store, inside)

        def write(k: int):
            start.wait()
            try:
                return stores[k].commit_annotations(
                    image_id, labels[k], polygons=polygons[k], **commit_kwargs
                )
            except Exception as error:  # reported to the caller, not raised in the thread
                return error

        with ThreadPoolExecutor(n) as pool:
            return list(pool.map(write, range(n)))
    finally:
        for store in stores:
            store.close()


def trials(location: str, n_trials: int, n_objects: int, meet_in_transaction: bool) -> int:
    """Trials (one new image each) that ended with more than one accepted commit."""
    doubled = 0
    with ProjectStore(location) as store:
        for trial in range(n_trials):
            labels = [grid_labels(n_objects), grid_labels(n_objects, offset=n_objects)]
            pixels = np.random.default_rng(trial).random(labels[0].shape)
            image_id = store.add_image(pixels.astype(np.float32), store_pixels=True).id
            results = race(location, image_id, labels, meet_in_transaction)
            errors = [r for r in results if isinstance(r, Exception)]
            accepted = accepted_commits(store, image_id)
            doubled += len(accepted) > 1
            print(f"trial {trial}: accepted commits {accepted}, errors {errors}", flush=True)
    return doubled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("location", help="store location (folder, file or database URL)")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument(
        "--meet", action="store_true", help="writers meet inside their transactions"
    )
    args = parser.parse_args()
    doubled = trials(args.location, args.trials, args.objects, args.meet)
    print(f"{doubled} of {args.trials} trials ended with more than one accepted commit")


if __name__ == "__main__":
    main()
