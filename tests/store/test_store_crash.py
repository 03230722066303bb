"""A process that dies in the middle of a commit leaves the previous commit intact."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing

import numpy as np

from napari_cellist.store import ProjectStore

# Commits once, then dies (os._exit: no cleanup, no close) while the second commit is writing
# its annotation rows, i.e. after its commit row was inserted and the old rows superseded.
SCRIPT = """
import os, sys
import numpy as np
from sqlalchemy import event
from napari_cellist.store import ProjectStore

store = ProjectStore(sys.argv[1])
image = store.add_image(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
first = np.zeros((64, 64), np.int32)
first[2:10, 2:10] = 1
first[20:30, 20:30] = 2
store.commit_annotations(image.id, first)

@event.listens_for(store._engine, "before_cursor_execute")
def crash(connection, cursor, statement, *args):
    if statement.startswith("INSERT INTO annotations"):
        os._exit(1)

second = np.zeros((64, 64), np.int32)
second[40:50, 40:50] = 5
store.commit_annotations(image.id, second)
sys.exit(0)
"""


def test_crash_during_second_commit_keeps_the_first(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stderr
    with closing(sqlite3.connect(tmp_path / "cellist.sqlite")) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    expected = np.zeros((64, 64), np.int32)
    expected[2:10, 2:10] = 1
    expected[20:30, 20:30] = 2
    with ProjectStore(tmp_path) as store:
        (image,) = store.images()
        labels, objects = store.load_annotations(image.id)
        np.testing.assert_array_equal(labels, expected)
        assert sorted(objects) == [1, 2]
        assert len(store.commits()) == 1
        assert [c.kind for c in store.corrections()] == ["added", "added"]
        # the first commit's rows are still the accepted ones
        result = store.commit_annotations(image.id, expected)
        assert len(result.corrections.unchanged) == 2
