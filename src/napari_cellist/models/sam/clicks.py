"""SAM prompt decoding off the GUI thread: the latest click wins.

A click costs 110-330 ms of mask decoding for vit_b on a CPU; done on the GUI thread, rapid
clicking stalls the viewer. :class:`LatestClickWorker` decodes in one background thread and
always answers the newest request: requests that arrive while one is being decoded replace each
other, so older pending clicks are dropped and :meth:`~LatestClickWorker.submit` never waits.
Results are handed to a callback (the widget forwards them to the GUI thread, e.g. through a Qt
signal or napari's ``thread_worker``); no Qt here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)

R = TypeVar("R")


@dataclass(frozen=True)
class ClickResult(Generic[R]):
    """What one decoded request gave: its sequence number (1, 2, ... in submission order), the
    request itself, and the result or the error."""

    sequence: int
    request: Any
    result: R | None = None
    error: BaseException | None = None


class LatestClickWorker(Generic[R]):
    """Run ``decode(request)`` in a background thread, newest request first, older ones dropped.

    Parameters
    ----------
    decode : callable
        ``decode(request) -> result``; e.g. ``lambda p: segmenter.predict(**p)``. Runs in the
        worker thread only (so a ``PromptableSegmenter`` is never used by two threads at once).
    on_result : callable
        Called in the worker thread with a :class:`ClickResult` for every request decoded.
    synchronous : bool
        Decode in :meth:`submit` itself, on the calling thread (``CELLIST_SYNC=1``: debugging and
        tests, like the widgets' other jobs); no thread is started.
    """

    def __init__(
        self,
        decode: Callable[[Any], R],
        on_result: Callable[[ClickResult[R]], None],
        synchronous: bool = False,
    ) -> None:
        self._decode = decode
        self._on_result = on_result
        self._condition = threading.Condition()
        self._pending: tuple[int, Any] | None = None
        self._sequence = 0
        self._busy = False
        self._closed = False
        self.dropped = 0
        self.synchronous = synchronous
        self._thread = threading.Thread(target=self._run, name="sam-clicks", daemon=True)
        if not synchronous:
            self._thread.start()

    def submit(self, request: Any) -> int:
        """Queue ``request`` (replacing a pending one, which is dropped); returns its sequence
        number. Never blocks on decoding.

        Raises
        ------
        RuntimeError
            After :meth:`close`.
        """
        with self._condition:
            if self._closed:
                raise RuntimeError("The SAM click worker is closed.")
            self._sequence += 1
            if self.synchronous:
                self._pending = (self._sequence, request)
                self._decode_pending()
                return self._sequence
            if self._pending is not None:
                self.dropped += 1
            self._pending = (self._sequence, request)
            self._condition.notify()
            return self._sequence

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is pending or being decoded (tests, shutdown); False on timeout."""
        with self._condition:
            return self._condition.wait_for(
                lambda: self._pending is None and not self._busy, timeout
            )

    def close(self, timeout: float | None = 5.0) -> None:
        """Drop what is pending, let the current decode finish, stop the thread."""
        with self._condition:
            self._closed = True
            self._pending = None
            self._condition.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._pending is not None or self._closed)
                if self._closed:
                    return
            self._decode_pending()

    def _decode_pending(self) -> None:
        with self._condition:
            sequence, request = self._pending
            self._pending = None
            self._busy = True
        try:
            outcome = ClickResult(sequence, request, result=self._decode(request))
        except Exception as err:  # noqa: BLE001 - reported to the caller, worker goes on
            logger.debug("SAM click %d failed: %s", sequence, err)
            outcome = ClickResult(sequence, request, error=err)
        try:
            self._on_result(outcome)
        finally:
            with self._condition:
                self._busy = False
                self._condition.notify_all()
