"""The Project panel's *Learning* section: the model retrained while the user labels.

After each commit (or every N commits) the trainable model is retrained from its current
version on everything committed (:func:`napari_cellist.learning_loop.retrain`, a bounded time
budget), in a worker with its own progress bar and Stop button, so opening, editing and
committing images go on meanwhile. One retraining runs at a time: a commit made while one runs
is remembered and the loop looks again when it ends. The new version becomes the one the panel
predicts with only if it scores at least as well on held-out committed images; the section
says which it was and why, plots every version's validation score (accepted vs kept back) and
tables the corrections per image per model version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, PushButton, SpinBox

from ._params import section
from ._plot import VersionPlot
from ._runner import JobRunner, StatusLine, notify_info
from .project_corrections import CorrectionsTable

logger = logging.getLogger(__name__)


class LearningSection(Container):
    """The learning loop's settings, progress, decision, score plot and corrections table.

    Parameters
    ----------
    store_of : callable
        Returns the session's current :class:`~napari_cellist.store.ProjectStore` (the project
        can change under the panel).
    on_version : callable, optional
        Called on the GUI thread after a retraining recorded a version (the panel refreshes).
    """

    def __init__(self, store_of: Callable[[], Any], on_version: Callable[[], None] | None = None):
        super().__init__(labels=False)
        from ..models import trainable_models

        self._store_of = store_of
        self._on_version = on_version
        models = trainable_models()
        self.model = ComboBox(
            label="trainable model",
            choices=models,
            value="threshold" if "threshold" in models else (models[0] if models else None),
            tooltip="The model retrained on the committed images (predict with it above).",
        )
        self.auto = CheckBox(
            text="retrain while I label",
            value=True,
            tooltip="After commits, retrain the model in the background.",
        )
        self.every = SpinBox(
            label="retrain after every",
            value=1,
            min=1,
            max=1000,
            tooltip="Number of commits between two retrainings.",
        )
        self.minutes = FloatSpinBox(
            label="time budget (min)",
            value=2.0,
            min=0.01,
            max=600.0,
            step=0.5,
            tooltip="Longest time one retraining may take (minutes).",
        )
        self.weigh = CheckBox(
            text="weigh corrected images more",
            value=True,
            tooltip="Images the model needed many corrections on count more in training.",
        )
        self.retrain_button = PushButton(
            text="Retrain now", tooltip="Retrain on every committed image now, in the background."
        )
        self.runner = JobRunner()
        self.decision = StatusLine()
        self.plot = VersionPlot()
        self.corrections = CorrectionsTable()
        self.extend(
            [
                section("Learning"),
                Container(labels=True, widgets=[self.model, self.every, self.minutes]),
                self.auto,
                self.weigh,
                self.retrain_button,
                self.runner,
                self.decision,
                self.plot,
                section("Corrections per image"),
                self.corrections,
            ]
        )
        self.retrain_button.changed.connect(lambda: self.retrain())
        self.model.changed.connect(lambda _v: self.refresh())
        #: the outcome of the last retraining (None before the first)
        self.outcome: Any = None
        #: the running (or last) retraining job
        self.job: Any = None
        self._pending = False

    def settings(self) -> Any:
        """The loop's settings as set in the section (read on the GUI thread)."""
        from ..learning_loop import LoopSettings

        return LoopSettings(
            model=str(self.model.value),
            every_n_commits=int(self.every.value),
            minutes=float(self.minutes.value),
            weight_by_corrections=bool(self.weigh.value),
        )

    def after_commit(self) -> None:
        """A commit was made: retrain in the background if it is due (a retraining running
        now is not joined by a second; the loop looks again when it ends)."""
        if not self.auto.value or self.model.value is None:
            return
        if self.runner.busy:
            self._pending = True
            return
        from ..learning_loop import due_for_retraining

        if due_for_retraining(self._store_of(), self.settings()):
            self.retrain()

    def retrain(self) -> None:
        """Retrain the model now, in a worker (ignored, with a message, while one runs)."""
        if self.runner.busy:
            self.decision.say("A retraining is running; it is not started twice.")
            return
        from .project_process import retrain_job

        store, settings = self._store_of(), self.settings()
        self._pending = False
        self.decision.say(f"Retraining {settings.model} in the background...")
        self.job = retrain_job(store, settings)
        self.runner.run(
            self.job,
            self._decided,
            on_finally=self._finished,
            on_stopped=self._stopped,
        )

    def _stopped(self) -> None:
        stop = getattr(self.job, "stop", None)
        if stop is not None:
            stop()
        self.decision.say("Retraining stopped; the current version stays.")

    def _decided(self, outcome: Any) -> None:
        """Say whether the new version was accepted and why; refresh plot and tables."""
        self.outcome = outcome
        verdict = "accepted" if outcome.accepted else "kept back"
        version = getattr(outcome.version, "id", outcome.version)
        message = f"{self.model.value} v{version} {verdict}: {outcome.reason}"
        self.decision.say(message)
        notify_info(message)
        if self._on_version is not None:
            self._on_version()
        else:
            self.refresh()

    def _finished(self) -> None:
        if self._pending:
            self._pending = False
            self.after_commit()

    def refresh(self) -> None:
        """Re-read the version history (plot) and the corrections table from the store."""
        from ..learning_loop import corrections_by_image, version_history

        store = self._store_of()
        name = self.model.value
        self.plot.show_points(version_history(store, name) if name else [])
        self.corrections.show_rows(corrections_by_image(store))


__all__ = ["LearningSection"]
