"""The training-time budget shared by the trainable models."""

import math

import pytest

from napari_cellist.budget import TimeBudget


def test_progress_is_the_larger_of_steps_and_time(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("napari_cellist.budget.time.monotonic", lambda: clock[0])
    budget = TimeBudget(max_steps=100, seconds=10.0, started=100.0)
    assert budget.progress(0) == 0.0 and not budget.spent(0)
    assert budget.progress(50) == 0.5  # steps ahead of time
    clock[0] = 108.0
    assert budget.progress(10) == pytest.approx(0.8)  # time ahead of steps
    assert budget.estimated_total(10) == 12  # 10 steps in 80 % of the time
    assert not budget.spent(10)
    clock[0] = 110.0
    assert budget.spent(10) and budget.progress(10) == 1.0
    assert TimeBudget(5, 10.0, started=110.0).spent(5)  # the step bound alone also stops


def test_no_time_limit_and_bad_budgets():
    free = TimeBudget.from_minutes(20, None)
    assert free.seconds == math.inf and free.progress(5) == 0.25 and free.estimated_total(5) == 20
    assert TimeBudget.from_minutes(20, 1.5).seconds == 90.0
    with pytest.raises(ValueError, match="minutes"):
        TimeBudget(10, 0.0)
    with pytest.raises(ValueError, match="steps"):
        TimeBudget(0, 10.0)
