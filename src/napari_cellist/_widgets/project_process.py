"""The learning loop's retraining in a separate Python process, so that it never holds the GIL
the viewer needs and yields the CPU to it.

A retraining in a worker *thread* of the viewer's process shares the GIL with the GUI thread:
every step of napari's own work (opening the next image, drawing) then waits for it. Measured
with ``benchmarks/bench_project_panel.py --only-retrain`` (Next pressed during a retraining
of the threshold model, medians of 5 alternated runs on a loaded 2-core machine): the longest
GUI stall while the next image opens was 878 ms with the retraining in a thread, 535 ms in a
child process, 254 ms without a retraining. :func:`retrain_job` therefore runs
:func:`napari_cellist.learning_loop.retrain` in a child process (``python -c``, which imports
the core only, not Qt) on the same project file, at a lower CPU priority (:data:`NICENESS`):
the child reports each :class:`~napari_cellist.types.Progress` and the outcome as JSON lines on
its stdout; the job (run by the panel's :class:`~napari_cellist._widgets._runner.JobRunner` in
a thread that only waits on the pipe) yields them on and returns a
:class:`~napari_cellist.learning_loop.RetrainOutcome` read back from the store. Stop ends the
child. A store on a database server (no file: its password is not in
:attr:`ProjectStore.location`), and Windows (no ``select`` on pipes), retrain in the thread.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import select
import subprocess
import sys
import tempfile
from collections.abc import Callable, Generator
from typing import Any

from ..types import Progress

logger = logging.getLogger(__name__)

#: The child: ``python -c CHILD path project settings-json``.
CHILD = """
import dataclasses, json, os, sys
os.nice(NICENESS)  # background work: the viewer's process comes first for the CPU
from napari_cellist.learning_loop import LoopSettings, retrain
from napari_cellist.store import ProjectStore

def say(**kw):
    sys.stdout.write(json.dumps(kw) + "\\n")
    sys.stdout.flush()

store = ProjectStore(sys.argv[1], project=sys.argv[2])
try:
    gen = retrain(store, LoopSettings(**json.loads(sys.argv[3])))
    while True:
        try:
            p = next(gen)
        except StopIteration as stop:
            o = stop.value
            say(result=dict(version=o.version.id, accepted=o.accepted, reason=o.reason,
                new_score=o.new_score, current_score=o.current_score,
                held_out=list(o.held_out), train_seconds=o.train_seconds))
            break
        say(progress=dict(step=p.step, total=p.total, message=p.message, loss=p.loss,
                          metrics={k: float(v) for k, v in dict(p.metrics).items()}))
except Exception as err:
    say(error=type(err).__name__, message=str(err))
    sys.exit(1)
finally:
    store.close()
"""
#: How much lower the child's CPU priority is than the viewer's (``os.nice``).
NICENESS = 10
CHILD = CHILD.replace("NICENESS", str(NICENESS))
#: Seconds the job waits for a line before yielding (so that Stop is noticed).
POLL_S = 0.2


def retrain_job(store: Any, settings: Any) -> Callable[[], Generator[Progress, None, Any]]:
    """The job that retrains ``settings.model`` of ``store``'s project: in a child process for
    a project file, in the calling (worker) thread for a database server or on Windows (no
    ``select`` on pipes there)."""
    from ..learning_loop import retrain

    if store.path is None or sys.platform == "win32":
        return lambda: retrain(store, settings)
    return ChildRetraining(store, settings)


class ChildRetraining:
    """One retraining in a child process: call it for the job's generator; :meth:`stop` ends
    the child (what the runner's Stop does, also when the generator is not closed at once)."""

    def __init__(self, store: Any, settings: Any) -> None:
        self.store = store
        self.arguments = json.dumps(dataclasses.asdict(settings))
        self.child: subprocess.Popen | None = None

    def __call__(self) -> Generator[Progress | None, None, Any]:
        from ..learning_loop import RetrainOutcome

        store = self.store
        with tempfile.TemporaryFile("w+") as errors:
            self.child = child = subprocess.Popen(
                [sys.executable, "-c", CHILD, str(store.path), store.project, self.arguments],
                stdout=subprocess.PIPE,
                stderr=errors,
            )
            try:
                for line in _lines(child):
                    if line is None:
                        yield None  # nothing new: lets the runner's Stop end the job here
                        continue
                    message = json.loads(line)
                    if "progress" in message:
                        yield Progress(**message["progress"])
                    elif "result" in message:
                        _wait(child, 30)  # it closes the store and exits
                        result = message["result"]
                        version = store.model_version(result.pop("version"))
                        result["held_out"] = tuple(result["held_out"])
                        return RetrainOutcome(version, **result)
                    elif "error" in message:
                        raise _error(message["error"], message["message"])
                errors.seek(0)
                tail = errors.read()[-2000:].strip()
                raise RuntimeError(
                    f"The retraining process ended without a result (exit code {child.wait()})"
                    f": {tail or 'no message'}"
                )
            finally:
                self.stop()

    def stop(self) -> None:
        """End the child process if it still runs."""
        child = self.child
        if child is None:
            return
        if child.poll() is None:
            child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
        child.stdout.close()


def _wait(child: subprocess.Popen, timeout_s: float) -> None:
    try:
        child.wait(timeout_s)
    except subprocess.TimeoutExpired:
        logger.warning("the retraining process did not exit within %.0f s", timeout_s)


def _lines(child: subprocess.Popen) -> Generator[str | None, None, None]:
    """The child's stdout lines that carry a message, as they come; None after each
    ``POLL_S`` without one."""
    fd, pending = child.stdout.fileno(), b""
    while True:
        ready, _, _ = select.select([fd], [], [], POLL_S)
        if not ready:
            yield None
            continue
        chunk = os.read(fd, 65536)
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop() if chunk else b""
        for line in lines:
            text = line.decode("utf-8", "replace").strip()
            if text.startswith("{"):
                yield text
            elif text:
                logger.debug("retraining process: %s", text)
        if not chunk:
            return


def _error(kind: str, message: str) -> Exception:
    """The child's failure as the same kind of exception where it is a common one."""
    known = {"ValueError": ValueError, "FileNotFoundError": FileNotFoundError}
    return known.get(kind, RuntimeError)(message if kind in known else f"{kind}: {message}")


__all__ = ["CHILD", "ChildRetraining", "retrain_job"]
