"""Run a progress generator off the GUI thread, with a progress bar and a Stop button.

The generator yields :class:`~napari_cellist.types.Progress` and returns its result (the
stardist-napari pattern). ``CELLIST_SYNC=1`` runs it on the calling thread, for debugging.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Generator
from typing import Any

from magicgui.widgets import Container, Label, ProgressBar, PushButton

from ..types import Progress

logger = logging.getLogger(__name__)


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


class JobRunner(Container):
    """A progress bar, a status line and a Stop button that run one job at a time."""

    def __init__(self) -> None:
        super().__init__(labels=False, layout="vertical")
        self.bar = ProgressBar(value=0, min=0, max=100, visible=True)
        self.status = Label(value="")
        self.stop_button = PushButton(text="Stop", enabled=False, tooltip="Stop after the current step; what is done so far is kept.")
        self.extend([self.bar, self.status, self.stop_button])
        self.stop_button.changed.connect(self.stop)
        self.worker: Any = None
        self._stopped = False

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
    ) -> None:
        """Start ``job()``; ``on_done(result)`` runs on the GUI thread when it returns.

        When the user presses Stop, the job ends at its next progress report and ``on_stopped``
        runs instead of ``on_done`` (a fitting job keeps the best model found so far).
        """
        if self.busy:
            notify_error("Another job is still running: wait for it or press Stop.")
            return
        self._stopped = False
        self.bar.value = 0
        self.status.value = "starting..."
        if os.environ.get("CELLIST_SYNC") == "1":
            self._run_sync(job, on_done, on_progress, on_finally)
            return
        from napari.qt.threading import create_worker

        def drive() -> Generator[Progress, None, Any]:  # a generator function: napari's worker needs one
            return (yield from job())

        worker = create_worker(drive, _start_thread=False)
        worker.yielded.connect(lambda p: self._on_progress(p, on_progress))
        worker.returned.connect(on_done)
        worker.errored.connect(self._on_error)
        if on_stopped is not None:
            worker.aborted.connect(on_stopped)
        worker.finished.connect(lambda: self._on_finished(on_finally))
        self.worker = worker
        self.stop_button.enabled = True
        worker.start()

    def _run_sync(self, job, on_done, on_progress, on_finally) -> None:
        gen = job()
        try:
            while True:
                try:
                    self._on_progress(next(gen), on_progress)
                except StopIteration as stop:
                    on_done(stop.value)
                    break
        except (ValueError, RuntimeError, OSError, ImportError) as err:
            self._on_error(err)
        finally:
            self._on_finished(on_finally)

    def _on_progress(self, progress: Progress, callback: Callable[[Progress], None] | None) -> None:
        if not isinstance(progress, Progress):
            return
        self.bar.value = int(100 * progress.fraction)
        self.status.value = progress.message or f"{progress.step}/{progress.total}"
        if callback is not None:
            callback(progress)

    def _on_error(self, err: BaseException) -> None:
        notify_error(f"{type(err).__name__}: {err}")
        self.status.value = f"failed: {err}"

    def _on_finished(self, on_finally: Callable[[], None] | None) -> None:
        self.worker = None
        self.stop_button.enabled = False
        if not self._stopped and not self.status.value.startswith("failed"):
            self.bar.value = 100
        if on_finally is not None:
            on_finally()

    def stop(self) -> None:
        """Ask the running job to stop at its next progress report."""
        if self.worker is not None:
            self._stopped = True
            self.status.value = "stopping..."
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
