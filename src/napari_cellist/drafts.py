"""Drafts that survive a crash: a background thread writes the newest edits of each image.

Every edit hands a snapshot to :meth:`DraftWriter.submit`, which never blocks: it replaces the
image's pending snapshot (only the newest one per image is kept) and returns. A writer thread
saves what is pending in one transaction (:meth:`ProjectStore.save_drafts`), at most once per
``interval_s``; the first edit after a quiet period is written at once. So when the program is
killed, the stored draft holds every edit older than about ``interval_s`` plus one write.

Use from a viewer::

    writer = DraftWriter(store, interval_s=1.0, on_error=show_notification)
    ...  # on each edit (GUI thread):
    writer.submit(image_id, DraftSnapshot(labels.copy(), polygons, classes, points,
                                          based_on_commit=seen, prediction_id=pid, n_edits=n))
    ...  # before Commit or closing the image:
    writer.flush()
    store.commit_draft(image_id)      # in a worker: ~2 s for 5,000 objects on 2048 x 2048
    writer.discard(image_id)          # and stop submitting snapshots of the committed state
    ...  # when the viewer closes:
    writer.close()

The callbacks run on the writer thread: a Qt widget must hand them to the GUI thread (e.g.
through a signal). Nothing here imports Qt or napari.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .store.work import DraftSnapshot

logger = logging.getLogger(__name__)

#: Default seconds between two writes of drafts.
DEFAULT_INTERVAL_S = 1.0


class DraftSink(Protocol):
    """What the writer saves to: :class:`~napari_cellist.store.ProjectStore` or a test double."""

    def save_drafts(self, snapshots: Mapping[int, DraftSnapshot]) -> Mapping[int, Any]:
        """Store the snapshots by image id in one transaction."""


ErrorCallback = Callable[[BaseException, tuple[int, ...]], None]
SavedCallback = Callable[[Mapping[int, Any]], None]


class DraftWriter:
    """Saves the newest draft snapshot of each image in the background.

    Parameters
    ----------
    store : DraftSink
        Where drafts go (a :class:`~napari_cellist.store.ProjectStore` opened for writing).
        The writer thread uses it; SQLAlchemy engines may be shared between threads.
    interval_s : float
        Least time between the starts of two writes (seconds, > 0).
    on_error : callable, optional
        ``on_error(error, image_ids)`` when a write fails. The failed snapshots stay pending
        (unless newer ones replaced them) and are written again after ``interval_s``. Without
        a callback the error is logged at ERROR level: it is never lost silently.
    on_saved : callable, optional
        ``on_saved({image_id: DraftRecord})`` after each successful write.

    Notes
    -----
    A writer still open when the interpreter exits normally is closed then (what is pending
    is written); a killed process loses at most the last ``interval_s`` or so of edits.
    A snapshot's arrays are read later, on the writer thread: pass copies that nobody changes
    afterwards (``labels.copy()`` of a 2048 x 2048 int32 map takes a few milliseconds).
    """

    def __init__(
        self,
        store: DraftSink,
        interval_s: float = DEFAULT_INTERVAL_S,
        on_error: ErrorCallback | None = None,
        on_saved: SavedCallback | None = None,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(
                f"interval_s must be a positive number of seconds, not {interval_s!r}."
            )
        self._store = store
        self.interval_s = float(interval_s)
        self._on_error = on_error
        self._on_saved = on_saved
        self._pending: dict[int, DraftSnapshot] = {}
        self._condition = threading.Condition()
        self._writing = False
        self._flush_requested = False
        self._closing = False
        self._last_write = float("-inf")
        self._failures = 0
        self.writes = 0
        self.last_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="cellist-draft-writer", daemon=True)
        self._thread.start()
        atexit.register(_close_at_exit, weakref.ref(self))

    # -- what the viewer calls -------------------------------------------------------------------
    def submit(self, image_id: int, snapshot: DraftSnapshot) -> None:
        """Queue the newest state of an image; returns at once (replaces a pending snapshot).

        Raises
        ------
        RuntimeError
            The writer was closed.
        """
        with self._condition:
            if self._closing:
                raise RuntimeError("The draft writer is closed; create a new one to save drafts.")
            self._pending[int(image_id)] = snapshot
            self._condition.notify_all()

    def discard(self, image_id: int) -> bool:
        """Drop the image's pending snapshot (after its draft was committed or thrown away, so
        that a late write does not bring the draft back); True when one was pending. A write
        already under way is not undone: :meth:`flush` first, then commit, then discard."""
        with self._condition:
            return self._pending.pop(int(image_id), None) is not None

    @property
    def pending(self) -> tuple[int, ...]:
        """Images whose newest snapshot is not written yet."""
        with self._condition:
            return tuple(sorted(self._pending))

    def flush(self, timeout_s: float | None = None) -> bool:
        """Write everything pending now and wait until it is stored.

        Returns
        -------
        bool
            True when nothing is pending any more; False after ``timeout_s`` or when the write
            failed (the error went to ``on_error``; the snapshots stay pending).
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._condition:
            failures = self._failures
            self._flush_requested = True
            self._condition.notify_all()
            while (self._pending or self._writing) and self._failures == failures:
                if not self._thread.is_alive():
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._condition.wait(remaining)
            return not self._pending and not self._writing

    def close(self, timeout_s: float | None = 30.0) -> bool:
        """Write what is pending, stop the thread; True when everything was written."""
        done = self.flush(timeout_s)
        with self._condition:
            self._closing = True
            self._condition.notify_all()
        self._thread.join(timeout_s)
        if not done:
            logger.error("draft writer closed with unsaved drafts of images %s", self.pending)
        return done

    def __enter__(self) -> DraftWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the writer thread ------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._write(batch)

    def _next_batch(self) -> dict[int, DraftSnapshot] | None:
        """Wait for work and for the interval to pass; take everything pending."""
        with self._condition:
            while True:
                if self._closing and not self._pending:
                    return None
                if self._pending:
                    wait = self._last_write + self.interval_s - time.monotonic()
                    if wait <= 0 or self._flush_requested or self._closing:
                        break
                    self._condition.wait(wait)
                else:
                    self._flush_requested = False
                    self._condition.wait()
            batch, self._pending = self._pending, {}
            self._writing = True
            self._flush_requested = False
            self._last_write = time.monotonic()
            return batch

    def _write(self, batch: dict[int, DraftSnapshot]) -> None:
        try:
            saved = self._store.save_drafts(batch)
        except Exception as error:  # noqa: BLE001 - reported to on_error, retried later
            with self._condition:
                for image_id, snapshot in batch.items():
                    self._pending.setdefault(image_id, snapshot)  # newer ones win
                self._writing = False
                self._failures += 1
                self.last_error = error
                self._condition.notify_all()
            self._report(error, tuple(sorted(batch)))
            return
        with self._condition:
            self._writing = False
            self.writes += 1
            self._condition.notify_all()
        if self._on_saved is not None:
            try:
                self._on_saved(saved)
            except Exception:  # noqa: BLE001 - a broken listener must not stop the writer
                logger.exception("on_saved callback failed")

    def _report(self, error: BaseException, image_ids: tuple[int, ...]) -> None:
        if self._on_error is None:
            logger.error("could not save the drafts of images %s: %s", image_ids, error)
            return
        try:
            self._on_error(error, image_ids)
        except Exception:  # noqa: BLE001
            logger.exception("on_error callback failed while reporting: %s", error)


def _close_at_exit(ref: weakref.ref) -> None:
    """At interpreter exit, write what a writer that was never closed still holds."""
    writer = ref()
    if writer is not None and not writer._closing:
        writer.close(timeout_s=10.0)
