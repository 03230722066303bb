"""Segment everything, box refinement, mask painting and the registered ``sam`` model."""

from __future__ import annotations

import numpy as np
import pytest
import torch as torch

from napari_cellist.models import get_model_class  # noqa: E402
from napari_cellist.models.sam import architecture, automatic, weights  # noqa: E402
from napari_cellist.models.sam.embeddings import tile_grid  # noqa: E402
from napari_cellist.models.sam.imaging import to_uint8_rgb  # noqa: E402
from napari_cellist.models.sam.interactive import PromptableSegmenter  # noqa: E402
from napari_cellist.models.sam.torchvision_compat import load_segment_anything  # noqa: E402
from napari_cellist.progress import drain  # noqa: E402

EVERYTHING = automatic.AutomaticParams(
    points_per_side=6, pred_iou_thresh=0.0, stability_score_thresh=0.0
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.set_num_threads(2)
    return architecture.write_random_checkpoint(tmp_path_factory.mktemp("sam") / "tiny.pth")


@pytest.fixture(scope="module")
def segmenter(checkpoint):
    sam, model_id = weights.load_sam(checkpoint)
    return PromptableSegmenter(sam, model_id, overlap=32)


@pytest.fixture(scope="module")
def image():
    grey = np.full((100, 120), 20, np.uint8)
    grey[10:40, 10:50] = 220
    grey[60:90, 70:110] = 160
    return grey


def test_paint_masks_prefers_small_objects_and_drops_clusters():
    shape = (20, 20)
    a = np.zeros(shape, bool)
    a[2:6, 2:6] = True
    b = np.zeros(shape, bool)
    b[10:15, 10:15] = True
    cluster = a | b
    cluster[2:15, 6:10] = True  # mostly covered by a and b? no: the bridge keeps it >50 % visible
    tiny_blob = np.zeros(shape, bool)
    tiny_blob[0, 0] = True
    labels, kept = automatic.paint_masks(
        [a | b, a, b, tiny_blob], [0.9, 0.8, 0.7, 0.6], shape, min_area=2
    )
    assert set(kept) == {2, 3}  # a|b is >50 % hidden by a and b; the 1-pixel blob is too small
    assert np.array_equal(labels == 2, a) and np.array_equal(labels == 3, b)
    labels, kept = automatic.paint_masks([cluster, a], [0.9, 0.8], shape)
    assert set(kept) == {1, 2} and np.array_equal(labels == 1, cluster & ~a)


def test_tile_cores_partition_the_image():
    shape = (300, 200)
    tiles = tile_grid(shape, 128, 32)
    owners = np.zeros(shape, int)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    for tile in tiles:
        low, high = automatic._core(tile, tiles, shape)
        inside = (rows >= low[0]) & (rows < high[0]) & (cols >= low[1]) & (cols < high[1])
        assert np.all(inside <= _in_tile(tile, shape))
        owners += inside
    assert np.all(owners == 1)


def _in_tile(tile, shape):
    mask = np.zeros(shape, bool)
    mask[tile.slices] = True
    return mask


def test_segment_everything_matches_bare_generator(segmenter, image):
    segmenter.set_image(image)
    progress = []
    prediction = drain(automatic.segment_everything_iter(segmenter, EVERYTHING), progress.append)
    generator = load_segment_anything().SamAutomaticMaskGenerator(
        segmenter.sam,
        points_per_side=6,
        points_per_batch=32,
        pred_iou_thresh=0.0,
        stability_score_thresh=0.0,
    )
    records = generator.generate(to_uint8_rgb(image))
    expected, scores = automatic.paint_masks(
        [r["segmentation"] for r in records], [r["predicted_iou"] for r in records], image.shape
    )
    assert len(records) > 0 and progress[-1].step == progress[-1].total == 1
    assert np.array_equal(prediction.labels, expected)
    assert set(prediction.objects) == set(np.unique(expected)) - {0}
    assert all(
        meta.source == "sam" and 0 <= meta.score <= 1 for meta in prediction.objects.values()
    )


def test_segment_everything_on_tiles_keeps_overlap_objects_once(segmenter):
    rng = np.random.default_rng(5)
    big = rng.integers(0, 255, (200, 150)).astype(np.uint8)
    segmenter.set_image(big)
    prediction = drain(automatic.segment_everything_iter(segmenter, EVERYTHING))
    assert prediction.labels.shape == big.shape and prediction.labels.dtype == np.int32
    ids = np.unique(prediction.labels)
    assert set(prediction.objects) == set(ids[ids > 0])


def test_box_refinement_replaces_each_object_by_sams_mask(segmenter, image):
    segmenter.set_image(image)
    predictor = load_segment_anything().SamPredictor(segmenter.sam)
    predictor.set_image(to_uint8_rgb(image))
    for label_id, box, xyxy in (
        (4, (12, 12, 38, 48), [12, 12, 47, 37]),
        (9, (62, 72, 88, 108), [72, 62, 107, 87]),
    ):
        labels = np.zeros(image.shape, np.int32)
        labels[box[0] : box[2], box[1] : box[3]] = label_id
        prediction = drain(
            automatic.refine_boxes_iter(segmenter, labels, classes={label_id: "nucleus"})
        )
        masks, scores, _ = predictor.predict(box=np.array(xyxy), multimask_output=False)
        expected = masks[0] if masks[0].any() else labels == label_id
        assert np.array_equal(prediction.labels == label_id, expected)
        assert set(prediction.objects) == {label_id} and prediction.source == "sam"
        assert prediction.objects[label_id].class_name == "nucleus"
    labels[12:38, 12:48] = 4  # two objects: both ids survive whatever SAM's masks overlap
    assert set(drain(automatic.refine_boxes_iter(segmenter, labels)).objects) == {4, 9}


def test_box_refinement_keeps_objects_sam_loses(segmenter, image, monkeypatch):
    segmenter.set_image(image)
    labels = np.zeros(image.shape, np.int32)
    labels[12:38, 12:48] = 1
    monkeypatch.setattr(
        automatic,
        "_predict_boxes",
        lambda p, item, boxes: (
            np.zeros((len(boxes),) + item.tile.shape, bool),
            [0.9] * len(boxes),
        ),
    )
    prediction = drain(automatic.refine_boxes_iter(segmenter, labels))
    assert np.array_equal(prediction.labels, labels) and prediction.objects[1].score == 0.0


def test_registered_model_2d_3d_and_refinement(checkpoint, image, tmp_path, monkeypatch):
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path))
    cls = get_model_class("sam")
    params = cls.Params(points_per_side=6, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    model = cls.from_checkpoint(checkpoint, params)
    flat = model.predict(image.astype(np.float32))
    assert flat.labels.shape == image.shape and flat.count > 0 and flat.source == "sam"
    stack = np.stack([image, image[::-1]]).astype(np.uint16)
    volume = model.predict(stack)
    assert volume.labels.shape == stack.shape
    ids = np.unique(volume.labels)
    assert set(volume.objects) == set(ids[ids > 0])
    assert all(len(meta.box) == 6 for meta in volume.objects.values())
    assert (
        len(list((tmp_path / "embeddings").glob("*.npz"))) == 2
    )  # the 2nd plane's content differs
    prompts = np.zeros(image.shape, np.int32)
    prompts[12:38, 12:48] = 7
    refined = model.refine_iter(image, prompts)
    assert set(drain(refined).objects) == {7}
    with pytest.raises(ValueError, match="must match"):
        drain(model.predict_iter(image, prompt_labels=prompts[:10]))
