"""Concurrent writers (SQLite and PostgreSQL): one accepted commit per image, stale writes flagged."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
from race import accepted_commits, grid_labels, race

from napari_cellist.store import ProjectStore, StaleCommitError, StaleCommitWarning, StoreError


def add_image(store: ProjectStore, shape: tuple[int, int]) -> int:
    pixels = np.random.default_rng(sum(shape)).random(shape).astype(np.float32)
    return store.add_image(pixels, store_pixels=True).id


@pytest.mark.slow
def test_two_concurrent_5000_object_commits_leave_one_accepted(store, location):
    labels = [grid_labels(5000), grid_labels(5000, offset=5000)]
    image_id = add_image(store, labels[0].shape)
    # the writers meet inside their write transactions, before any lock: without one on the
    # image row, PostgreSQL (READ COMMITTED) let both supersede the old rows and both stay
    # accepted in 10 of 10 such races
    results = race(location, image_id, labels)
    assert not [r for r in results if isinstance(r, Exception)], results

    commits = store.commits(image_id)
    assert sorted(c.id for c in commits) == sorted(r.commit_id for r in results)
    (accepted,) = accepted_commits(store, image_id)
    assert accepted == max(c.id for c in commits)
    winner = next(k for k, r in enumerate(results) if r.commit_id == accepted)
    loaded, objects = store.load_annotations(image_id)
    np.testing.assert_array_equal(loaded, labels[winner])
    assert len(objects) == 5000
    # the later commit replaced the earlier one, and says so
    first, last = sorted(results, key=lambda r: r.commit_id)
    assert first.replaced is None and last.replaced == first.commit_id


@pytest.mark.filterwarnings("ignore::napari_cellist.store.StaleCommitWarning")
def test_concurrent_writers_keep_a_serial_history(store, location):
    """3 writers x 3 commits, each based on what it last saw: a chain, each stale one flagged."""
    shape = (48, 48)
    image_id = add_image(store, shape)
    n_writers, n_commits = 3, 3
    start = threading.Barrier(n_writers, timeout=60)
    results: list = []
    errors: list = []

    def write(k: int) -> None:
        try:
            with ProjectStore(location) as mine:
                start.wait()
                for i in range(n_commits):
                    seen = mine.current_commit(image_id)
                    labels = np.zeros(shape, np.int32)
                    labels[k * 12 : k * 12 + 10, i * 12 : i * 12 + 10] = 1 + k * n_commits + i
                    result = mine.commit_annotations(
                        image_id, labels, based_on=None if seen is None else seen.id
                    )
                    results.append(result)
        except Exception as error:  # re-raised below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(n_writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(results) == n_writers * n_commits

    ordered = sorted(results, key=lambda r: r.commit_id)
    assert [r.replaced for r in ordered] == [None] + [r.commit_id for r in ordered[:-1]]
    for result in ordered:
        assert result.stale == (result.based_on != result.replaced)
    assert accepted_commits(store, image_id) == [ordered[-1].commit_id]
    assert [c.id for c in store.commits(image_id)] == [r.commit_id for r in ordered]


def test_stale_commit_warns_with_both_commits(store):
    image_id = add_image(store, (40, 40))
    labels = grid_labels(9)
    labels = np.pad(labels, ((0, 40 - labels.shape[0]), (0, 40 - labels.shape[1])))
    assert store.current_commit(image_id) is None

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none of these warns
        first = store.commit_annotations(image_id, labels, based_on=None)
        assert not first.stale and first.replaced is None
        seen = store.current_commit(image_id)
        assert seen.id == first.commit_id
        second = store.commit_annotations(image_id, labels[::-1], based_on=seen.id)
        assert not second.stale and second.replaced == first.commit_id
        unchecked = store.commit_annotations(image_id, labels)  # no based_on: not checked
        assert not unchecked.stale and unchecked.based_on is None

    # someone else committed `second` and `unchecked` after this writer loaded `first`
    with pytest.warns(StaleCommitWarning, match=f"based on commit {first.commit_id}") as caught:
        late = store.commit_annotations(image_id, labels.T, based_on=first.commit_id)
    (warning,) = caught
    assert warning.message.based_on == first.commit_id
    assert warning.message.current == unchecked.commit_id
    assert late.stale and late.replaced == unchecked.commit_id
    np.testing.assert_array_equal(store.load_annotations(image_id)[0], labels.T)  # it was stored

    with pytest.warns(StaleCommitWarning, match="no commit"):
        blind = store.commit_annotations(image_id, labels, based_on=None)
    assert blind.stale and blind.based_on is None and blind.replaced == late.commit_id


def test_stale_commit_can_be_refused(store):
    image_id = add_image(store, (40, 40))
    labels = np.zeros((40, 40), np.int32)
    labels[5:15, 5:15] = 3
    first = store.commit_annotations(image_id, labels)
    store.commit_annotations(image_id, labels * 2, based_on=first.commit_id)
    with pytest.raises(StaleCommitError, match="load the image again") as info:
        store.commit_annotations(image_id, labels * 5, based_on=first.commit_id, on_stale="refuse")
    assert isinstance(info.value, StoreError)
    assert len(store.commits(image_id)) == 2  # nothing written
    assert store.load_annotations(image_id)[0].max() == 6
    with pytest.raises(ValueError, match="on_stale"):
        store.commit_annotations(image_id, labels, on_stale="ignore")
    with pytest.warns(StaleCommitWarning, match="based on commit 999"):  # not even a commit
        store.commit_annotations(image_id, labels, based_on=999)


def test_concurrent_openings_create_one_store_and_one_project(location):
    """Four programs open the same new store and new project at once: all succeed, one of each."""
    n = 4
    start = threading.Barrier(n, timeout=60)
    opened: list = []

    def open_store() -> None:
        start.wait()
        try:
            with ProjectStore(location, project="lab") as mine:
                opened.append((mine._project_id, mine.opened_schema_version))
        except Exception as error:  # checked below, in the test's thread
            opened.append(error)

    threads = [threading.Thread(target=open_store) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not [o for o in opened if isinstance(o, Exception)], opened
    assert len({project_id for project_id, _ in opened}) == 1
    assert sorted(version for _, version in opened)[0] == 0  # one of them created the store
    with ProjectStore(location, project="lab", read_only=True) as store:
        assert store._project_id == opened[0][0]
