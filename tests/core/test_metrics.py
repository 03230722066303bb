import numpy as np
import pytest

from napari_cellist.metrics import (
    best_iou_per_object,
    best_matches,
    exclude_border_objects,
    score_image,
    score_images,
)


def test_perfect_prediction_scores_one(dsb):
    _, mask = dsb
    scores = score_image(mask, mask)
    assert scores.ap50 == scores.mean_ap == scores.f1 == 1.0
    assert scores.count_error == 0.0 and scores.n_true == 125


def test_known_counts():
    truth = np.zeros((20, 20), np.int32)
    truth[0:10, 0:10] = 1
    truth[12:20, 12:20] = 2
    pred = np.zeros_like(truth)
    pred[0:10, 0:9] = 1  # IoU 0.9 -> TP at 0.5 .. 0.9
    pred[0:3, 15:18] = 2  # FP
    scores = score_image(truth, pred)
    assert scores.ap50 == pytest.approx(1 / 3)  # 1 TP, 1 FP, 1 FN
    assert scores.f1 == pytest.approx(0.5)
    # mean over 0.5..0.95: TP for the 9 thresholds <= 0.9, none at 0.95
    assert scores.mean_ap == pytest.approx((9 * (1 / 3) + 0.0) / 10)


def test_empty_maps():
    empty = np.zeros((5, 5), np.int32)
    assert score_image(empty, empty).ap50 == 1.0
    one = empty.copy()
    one[1:3, 1:3] = 1
    assert score_image(empty, one).ap50 == 0.0
    assert score_image(one, empty).count_error == 1.0


def test_pooled_and_border_margin():
    truth = np.zeros((50, 50), np.int32)
    truth[0:5, 0:5] = 1  # touches the border
    truth[20:30, 20:30] = 2
    pred = truth.copy()
    pred[pred == 1] = 0
    assert score_image(truth, pred).ap50 == 0.5
    assert score_image(truth, pred, border_margin=10).ap50 == 1.0
    t, p = exclude_border_objects(truth, pred, 10)
    assert set(np.unique(t)) == {0, 2}
    assert score_images([truth, truth], [truth, pred]).n_true == 4
    with pytest.raises(ValueError, match="shape"):
        score_image(truth, pred[:10])


def test_best_iou_per_object_finds_the_missed_ones():
    truth = np.zeros((20, 20), np.int32)
    truth[0:4, 0:4] = 3  # matched exactly
    truth[10:14, 10:14] = 7  # half covered: IoU 8 / 16
    truth[16:18, 0:2] = 9  # not covered at all
    pred = np.zeros_like(truth)
    pred[0:4, 0:4] = 1
    pred[10:12, 10:14] = 2
    ids, best = best_iou_per_object(truth, pred)
    assert ids.tolist() == [3, 7, 9]
    np.testing.assert_allclose(best, [1.0, 0.5, 0.0])
    ids, best = best_iou_per_object(truth, np.zeros_like(truth))
    assert ids.tolist() == [3, 7, 9] and not best.any()
    pred[12:14, 10:14] = 5  # the other half of object 7: a tie, the lower id wins
    ids, pred_ids, best = best_matches(truth, pred)
    assert ids.tolist() == [3, 7, 9] and pred_ids.tolist() == [1, 2, 0]
    np.testing.assert_allclose(best, [1.0, 0.5, 0.0])


def test_edit_counts_delete_add_redraw():
    from napari_cellist.metrics import edit_counts, edit_counts_pooled

    truth = np.zeros((40, 40), np.int32)
    truth[0:10, 0:10] = 1  # found exactly: no edit
    truth[20:30, 0:10] = 2  # found too small (IoU 0.6): redrawn
    truth[20:30, 20:30] = 3  # missed: added
    pred = np.zeros_like(truth)
    pred[0:10, 0:10] = 5
    pred[20:26, 0:10] = 6
    pred[0:5, 30:35] = 7  # false object: deleted
    counts = edit_counts(truth, pred)
    assert (counts.deleted, counts.added, counts.redrawn, counts.n_true) == (1, 1, 1, 3)
    assert counts.total == 3
    assert counts.per_100_objects == pytest.approx(100.0)
    assert edit_counts(truth, truth).total == 0
    pooled = edit_counts_pooled([truth, truth], [pred, truth])
    assert pooled.total == 3 and pooled.n_true == 6
    assert pooled.as_dict()["per_100_objects"] == pytest.approx(50.0)
    with pytest.raises(ValueError, match="differ in shape"):
        edit_counts(truth, pred[:10])
