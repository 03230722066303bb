"""A training-time budget: how far a run is, by steps done or by wall-clock time spent.

Training loops with a time budget (``minutes``) and an upper bound on steps (``steps`` /
``n_epochs``) stop at whichever comes first; their schedules (learning-rate warm-up and decay,
annealing) follow :meth:`TimeBudget.progress`, so that a run cut by time still finishes its
schedule rather than stopping in the middle of it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field


@dataclass
class TimeBudget:
    """Progress of a run bounded by ``max_steps`` steps and ``seconds`` of wall-clock time.

    Parameters
    ----------
    max_steps : int
        Upper bound on the number of steps (epochs, optimisation steps); at least 1.
    seconds : float
        Wall-clock budget in seconds (> 0); ``math.inf`` = steps alone decide.
    """

    max_steps: int
    seconds: float
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.max_steps < 1:
            raise ValueError(f"The number of steps must be at least 1, not {self.max_steps}.")
        if not self.seconds > 0:
            raise ValueError(
                f"The time budget must be a positive number of seconds, not {self.seconds}; "
                "set 'minutes' above 0."
            )

    @classmethod
    def from_minutes(cls, max_steps: int, minutes: float | None) -> TimeBudget:
        """A budget of ``minutes`` (None or 0 = no time limit)."""
        return cls(max_steps, float(minutes) * 60.0 if minutes else math.inf)

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started

    def progress(self, steps_done: int) -> float:
        """Fraction of the run done, in [0, 1]: the larger of the steps and the time fractions."""
        by_steps = steps_done / self.max_steps
        by_time = self.elapsed() / self.seconds if math.isfinite(self.seconds) else 0.0
        return float(min(1.0, max(by_steps, by_time)))

    def spent(self, steps_done: int) -> bool:
        """Whether the run must stop after ``steps_done`` steps (steps or time used up)."""
        return steps_done >= self.max_steps or self.elapsed() >= self.seconds

    def estimated_total(self, steps_done: int) -> int:
        """Steps the run will have made when it stops, estimated from its pace so far."""
        fraction = self.progress(steps_done)
        if steps_done <= 0 or fraction <= 0:
            return self.max_steps
        return int(min(self.max_steps, max(steps_done, round(steps_done / fraction))))
