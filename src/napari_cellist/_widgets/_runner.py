"""Run a progress generator off the GUI thread, with a progress bar and a Stop button.

The generator yields :class:`~napari_cellist.types.Progress` and returns its result (the
stardist-napari pattern). ``CELLIST_SYNC=1`` runs it on the calling thread, for debugging.

Errors: a failure is shown once, the way napari shows an exception (one notification; its
"View traceback" button gives the details), whether the job ran in napari's worker or
synchronously. The status line says in one wrapped line what failed and keeps the full
message in its tooltip; the progress bar goes back to 0. No error escapes into Qt, so none can
abort the process.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Generator
from typing import Any

from magicgui.widgets import Container, Label, ProgressBar, PushButton

from ..types import Progress
from ._layout import wrapping

logger = logging.getLogger(__name__)
STATUS_CHARS = 160  # a status line shows at most this much of a message (all of it as tooltip)


def notify_error(message: str) -> None:
    """Show an error in the viewer (and the log), never a traceback dialog."""
    from napari.utils.notifications import show_error

    logger.error(message)
    show_error(message)


def notify_info(message: str) -> None:
    """Show an information message in the viewer."""
    from napari.utils.notifications import show_info

    logger.info(message)
    show_info(message)


def notify_exception(err: BaseException) -> None:
    """Report a failed job the way napari reports a failed worker (one notification, traceback
    on demand)."""
    from napari.utils.notifications import notification_manager

    logger.error("%s: %s", type(err).__name__, err)
    notification_manager.receive_error(type(err), err, err.__traceback__)


def short(message: str, limit: int = STATUS_CHARS) -> str:
    """The first line of ``message``, cut to ``limit`` characters."""
    first = message.strip().splitlines()[0] if message.strip() else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"


class StatusLine(Label):
    """A wrapped one-message status line; the whole message is its tooltip."""

    def __init__(self) -> None:
        super().__init__(value="")
        wrapping(self)

    def say(self, message: str) -> None:
        """Show ``message`` (shortened; in full as the tooltip)."""
        self.value = short(message)
        self.tooltip = message if len(message) > len(self.value) else ""


class JobRunner(Container):
    """A progress bar, a status line and a Stop button that run one job at a time."""

    def __init__(self) -> None:
        super().__init__(labels=False, layout="vertical")
        self.bar = ProgressBar(value=0, min=0, max=100, visible=True)
        self.status = StatusLine()
        self.stop_button = PushButton(
            text="Stop",
            enabled=False,
            tooltip="Stop after the current step; what is done so far is kept.",
        )
        self.extend([self.bar, self.status, self.stop_button])
        self.stop_button.changed.connect(self.stop)
        self.worker: Any = None
        #: the job's entry in napari's activity dock (``napari.utils.progress``), while it runs
        self.activity: Any = None
        self._stopped = False
        self.failed = False

    @property
    def busy(self) -> bool:
        """True while a job runs."""
        return self.worker is not None

    def run(
        self,
        job: Callable[[], Generator[Progress, None, Any]],
        on_done: Callable[[Any], None],
        on_progress: Callable[[Progress], None] | None = None,
        on_finally: Callable[[], None] | None = None,
        on_stopped: Callable[[], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Start ``job()``; ``on_done(result)`` runs on the GUI thread when it returns.

        When the user presses Stop, the job ends at its next progress report and ``on_stopped``
        runs instead of ``on_done`` (a fitting job keeps the best model found so far). When the
        job raises, ``on_error(exception)`` runs after the one notification.
        """
        if self.busy:
            notify_error("Another job is still running: wait for it or press Stop.")
            return
        self._stopped = False
        self.failed = False
        self.bar.value = 0
        self.status.say("starting...")
        self._open_activity()
        if os.environ.get("CELLIST_SYNC") == "1":
            self._run_sync(job, on_done, on_progress, on_finally, on_error)
            return
        from napari.qt.threading import create_worker

        def drive() -> Generator[
            Progress, None, Any
        ]:  # a generator function: napari's worker needs one
            return (yield from job())

        # connecting "errored" here stops superqt from re-raising the error in the GUI thread
        # (a second, traceback notification in napari.run(), an abort outside it)
        worker = create_worker(
            drive,
            _start_thread=False,
            _connect={"errored": lambda err: self._failed(err, on_error)},
        )
        worker.yielded.connect(lambda p: self._on_progress(p, on_progress))
        worker.returned.connect(lambda result: self._guarded(on_done, result, on_error))
        if on_stopped is not None:
            worker.aborted.connect(lambda: self._guarded(lambda _: on_stopped(), None, on_error))
        worker.finished.connect(lambda: self._on_finished(on_finally))
        self.worker = worker
        self.stop_button.enabled = True
        worker.start()

    def _run_sync(self, job, on_done, on_progress, on_finally, on_error) -> None:
        try:
            gen = job()
            while True:
                try:
                    self._on_progress(next(gen), on_progress)
                except StopIteration as stop:
                    result = stop.value
                    break
        except Exception as err:  # noqa: BLE001 - any failure is reported, never raised into Qt
            self._failed(err, on_error)
        else:
            self._guarded(on_done, result, on_error)
        finally:
            self._on_finished(on_finally)

    def _guarded(self, callback: Callable[[Any], None], value: Any, on_error: Any) -> None:
        """Run a result callback on the GUI thread; its failure is reported like the job's."""
        try:
            callback(value)
        except Exception as err:  # noqa: BLE001 - never raise into Qt's event loop
            self._failed(err, on_error)

    def _failed(self, err: BaseException, on_error: Callable[[BaseException], None] | None) -> None:
        notify_exception(err)
        self._on_error(err, on_error)

    def _on_progress(self, progress: Progress, callback: Callable[[Progress], None] | None) -> None:
        if not isinstance(progress, Progress):
            return
        self.bar.value = int(100 * progress.fraction)
        self.status.say(progress.message or f"{progress.step}/{progress.total}")
        self._update_activity(progress)
        if callback is not None:
            callback(progress)

    def _on_error(
        self, err: BaseException, on_error: Callable[[BaseException], None] | None = None
    ) -> None:
        self.failed = True
        self.bar.value = 0
        self.status.say(f"failed: {type(err).__name__}: {err}")
        if on_error is not None:
            on_error(err)

    def _open_activity(self) -> None:
        """Show the job in napari's activity dock too (downloads, fits, predictions)."""
        self._close_activity()
        try:
            from napari.utils import progress

            self.activity = progress(total=100, desc="Cellist")
        except Exception:  # noqa: BLE001 - the dock's bar is a convenience, the job goes on
            logger.debug("No activity-dock progress", exc_info=True)
            self.activity = None

    def _update_activity(self, progress: Progress) -> None:
        activity = self.activity  # the job may end (and close it) while the description is set
        if activity is None:
            return
        activity.n = int(100 * progress.fraction)
        if progress.message:
            activity.set_description(f"Cellist: {short(progress.message, 60)}")
        if self.activity is activity:
            activity.refresh()

    def _close_activity(self) -> None:
        if self.activity is not None:
            self.activity.close()
            self.activity = None

    def _on_finished(self, on_finally: Callable[[], None] | None) -> None:
        self._close_activity()
        self.worker = None
        self.stop_button.enabled = False
        if not self._stopped and not self.failed:
            self.bar.value = 100
        if on_finally is not None:
            on_finally()

    def stop(self) -> None:
        """Ask the running job to stop at its next progress report."""
        if self.worker is not None:
            self._stopped = True
            self.status.say("stopping...")
            self.worker.quit()

    def wait(self, timeout_ms: int = 60_000) -> None:
        """Block (processing Qt events) until the running job finishes; for tests and scripts."""
        from qtpy.QtCore import QCoreApplication, QElapsedTimer

        timer = QElapsedTimer()
        timer.start()
        while self.worker is not None and timer.elapsed() < timeout_ms:
            QCoreApplication.processEvents()
        if self.worker is not None:
            raise TimeoutError(f"The job did not finish within {timeout_ms / 1000:.0f} s.")


def start_job(
    job: Callable[[], Generator[Progress, None, Any]],
    on_done: Callable[[Any], None],
    on_error: Callable[[BaseException], None] | None = None,
) -> Any:
    """Run ``job()`` in a napari thread worker without a progress bar (e.g. the restore when an
    image is opened); ``on_done(result)`` runs on the GUI thread. A failure is reported once
    (napari's notification), then ``on_error(exception)`` runs. ``CELLIST_SYNC=1`` runs it on
    the calling thread. Returns the worker (None when run synchronously)."""

    def failed(err: BaseException) -> None:
        notify_exception(err)
        if on_error is not None:
            on_error(err)

    def done(result: Any) -> None:
        try:
            on_done(result)
        except Exception as err:  # noqa: BLE001 - never raise into Qt's event loop
            failed(err)

    if os.environ.get("CELLIST_SYNC") == "1":
        try:
            gen = job()
            while True:
                next(gen)
        except StopIteration as stop:
            done(stop.value)
        except Exception as err:  # noqa: BLE001 - reported, never raised into Qt
            failed(err)
        return None
    from napari.qt.threading import create_worker

    def drive() -> Generator[Progress, None, Any]:
        return (yield from job())

    worker = create_worker(drive, _start_thread=False, _connect={"errored": failed})
    worker.returned.connect(done)
    worker.start()
    return worker
