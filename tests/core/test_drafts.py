"""The background draft writer: coalescing, rate limit, flush/close, errors, and a kill -9 test."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from benchmarks.bench_drafts import crash_trial
from napari_cellist.drafts import DraftWriter
from napari_cellist.store import DraftSnapshot, ProjectStore


class Sink:
    """Records every batch written, with its time; can fail or be slow on demand."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.batches: list[tuple[float, dict]] = []
        self.fail: Exception | None = None
        self.delay_s = delay_s
        self.lock = threading.Lock()

    def save_drafts(self, snapshots):
        time.sleep(self.delay_s)
        if self.fail is not None:
            raise self.fail
        with self.lock:
            self.batches.append((time.monotonic(), dict(snapshots)))
        return {i: s.n_edits for i, s in snapshots.items()}


def snap(n: int) -> DraftSnapshot:
    return DraftSnapshot(np.full((4, 4), n, np.int32), n_edits=n)


def test_submit_coalesces_and_never_waits_for_a_slow_write():
    sink = Sink(delay_s=0.3)
    writer = DraftWriter(sink, interval_s=0.2)
    start = time.monotonic()
    for n in range(1, 201):
        writer.submit(n % 2, snap(n))  # two images, 100 edits each
    assert time.monotonic() - start < 0.1  # 200 submits while a 0.3 s write runs
    assert writer.flush(5)
    written = {i: s.n_edits for _, batch in sink.batches for i, s in batch.items()}
    assert written == {0: 200, 1: 199}  # the newest snapshot of each image
    assert len(sink.batches) <= 3  # coalesced: not 200 writes
    writer.close()


def test_writes_at_most_once_per_interval():
    sink = Sink()
    writer = DraftWriter(sink, interval_s=0.25)
    end = time.monotonic() + 1.2
    n = 0
    while time.monotonic() < end:
        n += 1
        writer.submit(7, snap(n))
        time.sleep(0.01)
    writer.close()
    times = [t for t, _ in sink.batches]
    assert 3 <= len(times) <= 7
    assert min(np.diff(times[:-1])) >= 0.25 - 0.02  # the last write is close()'s flush
    assert sink.batches[-1][1][7].n_edits == n  # close wrote the last edit


def test_failed_write_is_reported_kept_and_retried():
    sink = Sink()
    sink.fail = OSError("disk full")
    errors = []
    writer = DraftWriter(sink, interval_s=0.05, on_error=lambda e, ids: errors.append((e, ids)))
    writer.submit(3, snap(1))
    assert not writer.flush(5)  # the write failed
    assert errors and str(errors[0][0]) == "disk full" and errors[0][1] == (3,)
    assert writer.pending == (3,) and isinstance(writer.last_error, OSError)
    writer.submit(3, snap(2))  # a newer edit replaces the failed one
    sink.fail = None
    assert writer.flush(5) and writer.pending == ()
    assert sink.batches[-1][1][3].n_edits == 2
    writer.close()


def test_error_without_callback_is_logged(caplog):
    sink = Sink()
    sink.fail = RuntimeError("locked")
    writer = DraftWriter(sink, interval_s=0.05)
    writer.submit(1, snap(1))
    writer.flush(5)
    sink.fail = None
    writer.close()
    assert any(
        "could not save the drafts of images (1,): locked" in r.message for r in caplog.records
    )


def test_closed_writer_refuses_and_bad_interval():
    writer = DraftWriter(Sink(), interval_s=0.05)
    assert writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit(1, snap(1))
    with pytest.raises(ValueError, match="positive"):
        DraftWriter(Sink(), interval_s=0)


def test_writer_saves_drafts_to_a_store(tmp_path):
    saved = []
    with ProjectStore(tmp_path) as store:
        image_id = store.add_image(np.zeros((4, 4), np.uint8)).id
        with DraftWriter(store, interval_s=0.05, on_saved=saved.append) as writer:
            for n in range(1, 30):
                writer.submit(image_id, snap(n))
        draft = store.load_draft(image_id)
    assert draft.record.n_edits == 29 and (draft.snapshot.labels == 29).all()
    assert saved and saved[-1][image_id].n_edits == 29


def test_killed_editor_loses_no_edit_older_than_the_interval(tmp_path):
    """SIGKILL at random moments (6 trials, interval 0.25 s): the reopened draft holds every
    edit made more than interval + 0.5 s before the kill. (benchmarks/bench_drafts.py runs 20
    trials at 1 s and reports the figures.)"""
    trials = [crash_trial(tmp_path, 0.25, seed) for seed in range(6)]
    assert all(t.made > 10 for t in trials)
    assert sum(t.required for t in trials) > 0
    assert [t.lost_required for t in trials] == [0] * 6
    assert all(t.recovered >= t.required for t in trials)


def test_pending_drafts_are_written_when_the_program_exits_without_close(tmp_path):
    import subprocess
    import sys

    script = (
        "import numpy as np\n"
        "from napari_cellist.drafts import DraftWriter\n"
        "from napari_cellist.store import DraftSnapshot, ProjectStore\n"
        f"store = ProjectStore({str(tmp_path / 'p')!r})\n"
        "image_id = store.add_image(np.zeros((4, 4), np.uint8)).id\n"
        "writer = DraftWriter(store, interval_s=60)\n"
        "for n in (1, 2, 3):\n"
        "    writer.submit(image_id, DraftSnapshot(np.full((4, 4), n, np.int32), n_edits=n))\n"
    )  # the first is written at once, the others wait for the 60 s interval: exit writes them
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    with ProjectStore(tmp_path / "p", read_only=True) as store:
        assert store.draft(1).n_edits == 3


def test_discard_drops_a_pending_snapshot():
    sink = Sink()
    writer = DraftWriter(sink, interval_s=60)
    writer.submit(1, snap(1))  # written at once (nothing written before)
    assert writer.flush(5)
    writer.submit(1, snap(2))  # waits for the interval
    writer.submit(2, snap(3))
    assert writer.pending == (1, 2)
    assert writer.discard(1) and not writer.discard(1)
    writer.close()
    written = [(i, s.n_edits) for _, batch in sink.batches for i, s in batch.items()]
    assert written == [(1, 1), (2, 3)]
