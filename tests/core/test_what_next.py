"""What to label next: images ranked by the model's doubt, objects least certain first."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellist.store import ProjectStore
from napari_cellist.types import ObjectMeta
from napari_cellist.what_next import (
    EMPTY_SCORE,
    disagreement,
    rank_images,
    uncertain_first,
    usefulness_of,
)


def squares(n: int, shift: int = 0, shape=(40, 60)) -> np.ndarray:
    """``n`` 8x8 squares in a row (ids 1..n), moved right by ``shift`` pixels."""
    labels = np.zeros(shape, np.int32)
    for k in range(n):
        labels[4:12, 2 + 10 * k + shift : 10 + 10 * k + shift] = k + 1
    return labels


def scored(scores: list[float]) -> dict[int, ObjectMeta]:
    return {i + 1: ObjectMeta(i + 1, score=s) for i, s in enumerate(scores)}


def test_uncertain_first_orders_by_score_then_id():
    objects = scored([0.9, 0.2, 0.5, 0.2])
    assert uncertain_first(objects) == [2, 4, 3, 1]
    assert uncertain_first({}) == []


def test_usefulness_from_scores():
    sure = usefulness_of(1, "a", scored([0.9, 0.95, 1.0]))
    unsure = usefulness_of(2, "b", scored([0.2, 0.4, 0.9]))
    assert sure.parts == pytest.approx({"uncertainty": 0.05, "low": 0.0})
    assert unsure.parts == pytest.approx({"uncertainty": 0.5, "low": 2 / 3})
    assert unsure.score == pytest.approx((0.5 + 2 / 3) / 2) and unsure.score > sure.score
    assert "67% of 3 objects" in unsure.reason
    empty = usefulness_of(3, "c", {})
    assert empty.score == EMPTY_SCORE and empty.reason == "no object predicted"


def test_disagreement_of_two_predictions():
    base = squares(3)
    assert disagreement(base, base) == pytest.approx(0.0)
    # shifted by 4 px: each 8x8 square overlaps its partner by 4x8 -> IoU 32 / 96
    assert disagreement(base, squares(3, shift=4)) == pytest.approx(1 - 1 / 3)
    assert disagreement(base, np.zeros_like(base)) == 1.0
    assert disagreement(np.zeros_like(base), np.zeros_like(base)) is None


def test_rank_images_most_useful_first(tmp_path):
    with ProjectStore(tmp_path / "p") as store:
        pixels = np.zeros((40, 60), np.uint8)
        ids = [store.add_image(pixels + k, name=f"img{k}").id for k in range(5)]
        labels = squares(3)
        store.save_prediction(ids[0], labels, scored([0.9, 0.9, 0.9]), "threshold")
        store.save_prediction(ids[1], labels, scored([0.1, 0.3, 0.9]), "threshold")
        store.save_prediction(ids[2], labels, scored([0.5, 0.5, 0.5]), "threshold")
        # committed and drafted images are not ranked, images without a prediction come last
        store.save_prediction(ids[3], labels, scored([0.0, 0.0, 0.0]), "threshold")
        store.commit_annotations(ids[3], labels)
        ranked = rank_images(store)
        assert [u.image_id for u in ranked] == [ids[1], ids[2], ids[0], ids[4]]
        assert [u.predicted for u in ranked] == [True, True, True, False]
        assert ranked[-1].reason == "not predicted yet"
        assert ranked[0].score > ranked[1].score > ranked[2].score


def test_rank_images_uses_base_target_disagreement(tmp_path):
    with ProjectStore(tmp_path / "p") as store:
        pixels = np.zeros((40, 60), np.uint8)
        agree, differ = (store.add_image(pixels + k, name=f"img{k}").id for k in range(2))
        sure = scored([0.8, 0.8, 0.8])
        for image_id, shift in ((agree, 0), (differ, 4)):
            store.save_prediction(image_id, squares(3), sure, "threshold")
            store.save_prediction(image_id, squares(3, shift), sure, "threshold -> air")
        ranked = rank_images(store)
        assert [u.image_id for u in ranked] == [differ, agree]
        assert ranked[0].parts["disagreement"] == pytest.approx(2 / 3)
        assert ranked[1].parts["disagreement"] == pytest.approx(0.0)
        assert "models disagree 0.67" in ranked[0].reason
