"""The usefulness ranking behind the Project panel's table and *Next most useful*.

:func:`napari_cellist.what_next.rank_images` reads every image without annotations from the
store (and decodes each stored prediction), ~0.5 ms per image and more per prediction: too slow
for the GUI thread on every table refresh of a large project. :class:`Ranker` therefore keeps
the last ranking with the signature of what it was computed from (each unannotated image's id,
status, last change and model version); a refresh with an unchanged signature reuses it, a
changed one recomputes it in a napari worker (``CELLIST_SYNC=1``: at once) and hands the result
to ``on_ranked`` on the GUI thread. :meth:`Ranker.ranking` gives a fresh ranking at once,
computing it on the calling thread when the kept one is stale (what a click on *Next most
useful* needs).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

logger = logging.getLogger(__name__)


def signature(rows: Sequence[Any]) -> tuple:
    """What the ranking depends on: the unannotated images' id, status, last change, model."""
    from ..what_next import RANKED_STATUSES

    return tuple(
        (r.image_id, r.status, r.last_change, r.model_name, r.model_version)
        for r in rows
        if r.status in RANKED_STATUSES
    )


class Ranker:
    """Computes :func:`~napari_cellist.what_next.rank_images` off the GUI thread, once per
    change of the project's unannotated images.

    Parameters
    ----------
    on_ranked : callable
        Called on the GUI thread with the new ranking (list of ``Usefulness``).
    """

    def __init__(self, on_ranked: Callable[[list[Any]], None]) -> None:
        self.on_ranked = on_ranked
        self._kept: tuple[Any, tuple, list[Any]] | None = None  # (store, signature, ranking)
        self._wanted: tuple[Any, tuple] | None = None
        self.worker: Any = None

    @property
    def busy(self) -> bool:
        """True while a ranking is computed in a worker."""
        return self.worker is not None

    def known(self, store: Any, rows: Sequence[Any]) -> list[Any] | None:
        """The kept ranking if it is up to date for ``rows`` (else None)."""
        if self._kept is None or self._kept[0] is not store:
            return None
        return self._kept[2] if self._kept[1] == signature(rows) else None

    def update(self, store: Any, rows: Sequence[Any]) -> None:
        """Recompute the ranking in the background if ``rows`` changed since it was computed."""
        if self.known(store, rows) is not None:
            return
        self._wanted = (store, signature(rows))
        if self.busy:
            return  # started again with the newest wish when the running one ends
        if os.environ.get("CELLIST_SYNC") == "1":
            self._done(store, self._wanted[1], _rank(store))
            return
        self._start(store, self._wanted[1])

    def ranking(self, store: Any, rows: Sequence[Any]) -> list[Any]:
        """A ranking up to date for ``rows`` (computed here if the kept one is stale)."""
        known = self.known(store, rows)
        if known is not None:
            return known
        ranking = _rank(store)
        self._kept = (store, signature(rows), ranking)
        return ranking

    def wait(self, timeout_ms: int = 60_000) -> None:
        """Process Qt events until no ranking runs (for tests and scripts)."""
        from qtpy.QtCore import QCoreApplication, QElapsedTimer

        timer = QElapsedTimer()
        timer.start()
        while self.worker is not None and timer.elapsed() < timeout_ms:
            QCoreApplication.processEvents()

    def _start(self, store: Any, wanted: tuple) -> None:
        from napari.qt.threading import create_worker

        worker = create_worker(_rank, store, _start_thread=False)
        worker.returned.connect(lambda ranking: self._done(store, wanted, ranking))
        worker.errored.connect(self._failed)
        worker.finished.connect(self._finished)
        self.worker = worker
        worker.start()

    def _done(self, store: Any, wanted: tuple, ranking: list[Any]) -> None:
        self._kept = (store, wanted, ranking)
        try:
            self.on_ranked(ranking)
        except RuntimeError as err:  # the panel was closed meanwhile (its Qt widgets deleted)
            logger.debug("ranking not shown: %s", err)

    def _failed(self, error: BaseException) -> None:
        logger.error("ranking the images by usefulness failed: %s", error)
        self._wanted = None  # not retried until the images change again

    def _finished(self) -> None:
        self.worker = None
        wanted, kept = self._wanted, self._kept
        if wanted is not None and (kept is None or kept[:2] != wanted):
            self._start(*wanted)


def scores(ranking: Sequence[Any]) -> dict[int, float]:
    """Usefulness by image id of the ranked images that have a prediction (the others have
    no score yet)."""
    return {u.image_id: u.score for u in ranking if u.predicted}


def _rank(store: Any) -> list[Any]:
    from ..what_next import rank_images

    return rank_images(store)


__all__ = ["Ranker", "scores", "signature"]
