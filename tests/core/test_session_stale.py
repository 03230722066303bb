"""Two viewers (sessions) on one project: a commit over a newer one is reported as stale."""

from __future__ import annotations

import numpy as np

from napari_cellist.geometry import bounding_boxes
from napari_cellist.session import LabellingSession
from napari_cellist.types import ObjectMeta


def _objects(labels: np.ndarray) -> dict[int, ObjectMeta]:
    return {i: ObjectMeta(i) for i in bounding_boxes(labels)}


def test_commit_over_a_newer_commit_is_stale_and_a_fresh_one_is_not(tmp_path, dsb_crop):
    image, mask = dsb_crop
    first, second = LabellingSession(tmp_path / "p"), LabellingSession(tmp_path / "p")
    base = first.commit("nuclei", image, mask, _objects(mask))
    assert not base.stale

    # both windows load the committed annotations
    assert first.restore(image, "nuclei") is not None
    assert second.restore(image, "nuclei") is not None

    edited = mask.copy()
    edited[edited == edited.max()] = 0
    theirs = second.commit("nuclei", image, edited, _objects(edited))
    assert not theirs.stale and theirs.based_on == base.commit_id

    mine = first.commit("nuclei", image, mask, _objects(mask))  # made on top of `base`
    assert mine.stale
    assert mine.based_on == base.commit_id and mine.replaced == theirs.commit_id

    again = first.commit("nuclei", image, mask, _objects(mask))  # on top of its own commit
    assert not again.stale
    first.close()
    second.close()


def test_a_session_that_never_loaded_the_image_does_not_check(tmp_path, dsb_crop):
    image, mask = dsb_crop
    session = LabellingSession(tmp_path / "p")
    session.commit("nuclei", image, mask, _objects(mask))
    other = LabellingSession(tmp_path / "p")
    result = other.commit("nuclei", image, mask, _objects(mask))
    assert not result.stale and result.based_on is None
    session.close()
    other.close()
