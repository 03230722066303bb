"""Long jobs also show in napari's activity dock (``napari.utils.progress``), e.g. downloads."""

from __future__ import annotations

from napari_cellist._widgets._runner import JobRunner
from napari_cellist.types import Progress


def _job():
    yield Progress(1, 4, message="downloading sam_vit_b_01ec64.pth")
    yield Progress(3, 4, message="checking its checksum")
    return "done"


def test_a_job_shows_and_closes_its_activity_entry(monkeypatch, qtbot):
    monkeypatch.setenv("CELLIST_SYNC", "1")
    runner = JobRunner()
    seen, results = [], []

    def record(progress):
        seen.append((runner.activity.n, runner.activity.desc))

    runner.run(_job, results.append, on_progress=record)
    assert results == ["done"]
    assert seen[0][0] == 25 and "downloading sam_vit_b" in seen[0][1]
    assert seen[1][0] == 75 and "checksum" in seen[1][1]
    assert runner.activity is None  # closed when the job ended


def test_a_failed_job_closes_its_activity_entry(monkeypatch, qtbot, notifications):
    monkeypatch.setenv("CELLIST_SYNC", "1")

    def failing():
        yield Progress(1, 2, message="downloading")
        raise OSError("connection refused")

    runner = JobRunner()
    runner.run(failing, lambda _: None)
    assert runner.failed and runner.activity is None and runner.bar.value == 0
