"""Prompt -> mask: axis conversion, each prompt kind, refinement, tiling and the embedding cache.

The plugin is checked against segment_anything's own ``SamPredictor`` on the same tiny random
SAM: same prompt (converted by hand to SAM's (x, y)), same mask.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch as torch

from napari_cellist.models.sam import architecture, weights  # noqa: E402
from napari_cellist.models.sam.embeddings import EmbeddingCache, tile_grid  # noqa: E402
from napari_cellist.models.sam.imaging import to_uint8_rgb  # noqa: E402
from napari_cellist.models.sam.interactive import PromptableSegmenter  # noqa: E402
from napari_cellist.models.sam.prompts import box_to_xyxy, rc_to_xy, rectangle_to_box  # noqa: E402
from napari_cellist.models.sam.torchvision_compat import load_segment_anything  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.set_num_threads(2)
    path = architecture.write_random_checkpoint(tmp_path_factory.mktemp("sam") / "tiny.pth")
    return weights.load_sam(path)


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    grey = np.zeros((96, 128), np.uint8)  # not square: a row/col swap changes the answer
    grey[20:50, 70:110] = 200
    return grey + rng.integers(0, 30, grey.shape).astype(np.uint8)


def _bare(sam, rgb, **kwargs):
    predictor = load_segment_anything().SamPredictor(sam)
    predictor.set_image(rgb)
    return predictor.predict(**kwargs)


def test_axis_conversion():
    assert rc_to_xy([[5, 7], [1, 2]]).tolist() == [[7, 5], [2, 1]]
    assert rc_to_xy([[3, 5, 7]], origin=(1, 2)).tolist() == [[5, 4]]  # (plane, row, col)
    assert box_to_xyxy((10, 20, 30, 60)).tolist() == [20, 10, 59, 29]
    assert box_to_xyxy((10, 20, 30, 60), origin=(10, 20)).tolist() == [0, 0, 39, 19]
    assert rectangle_to_box(np.array([[10.2, 20], [10.2, 59.6], [29.7, 59.6], [29.7, 20]])) == (
        10,
        20,
        30,
        60,
    )
    with pytest.raises(ValueError, match="Empty box"):
        box_to_xyxy((5, 5, 5, 9))


@pytest.mark.parametrize(
    ("dtype", "rgb", "shape"),
    [
        (np.uint8, False, (20, 30)),
        (np.uint16, False, (20, 30)),
        (np.float32, False, (20, 30)),
        (np.uint8, True, (20, 30, 3)),
        (np.float64, True, (20, 30, 4)),
    ],
)
def test_images_become_uint8_rgb(dtype, rgb, shape):
    data = (np.arange(np.prod(shape)).reshape(shape) * 7).astype(dtype)
    out = to_uint8_rgb(data, rgb)
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    assert out.max() == 255 or dtype == np.uint8
    if dtype == np.uint8 and not rgb:
        assert np.array_equal(out[..., 1], data)
    with pytest.raises(ValueError, match="slice by slice"):
        to_uint8_rgb(np.zeros((2, 20, 30)))


def test_each_prompt_kind_matches_bare_predictor(tiny, image):
    sam, model_id = tiny
    seg = PromptableSegmenter(sam, model_id)
    seg.set_image(image)
    rgb = to_uint8_rgb(image)
    point, points, labels = [[30, 90]], [[30, 90], [60, 20]], [1, 0]
    box = (20, 70, 50, 110)
    cases = [
        (
            {"points": point},
            {
                "point_coords": np.array([[90, 30]]),
                "point_labels": np.array([1]),
                "multimask_output": True,
            },
        ),
        (
            {"points": points, "point_labels": labels},
            {
                "point_coords": np.array([[90, 30], [20, 60]]),
                "point_labels": np.array(labels),
                "multimask_output": False,
            },
        ),
        ({"box": box}, {"box": np.array([70, 20, 109, 49]), "multimask_output": False}),
        (
            {"points": point, "box": box},
            {
                "point_coords": np.array([[90, 30]]),
                "point_labels": np.array([1]),
                "box": np.array([70, 20, 109, 49]),
                "multimask_output": False,
            },
        ),
    ]
    for ours, theirs in cases:
        seg.reset_prompts()
        result = seg.predict(**ours)
        masks, scores, _ = _bare(sam, rgb, **theirs)
        best = int(np.argmax(scores))
        assert result.mask.shape == image.shape and result.mask.dtype == bool
        assert np.array_equal(result.mask, masks[best]) and result.score == pytest.approx(
            scores[best]
        )
    with pytest.raises(ValueError, match="at least one point or a box"):
        seg.predict()


def test_refinement_feeds_previous_logits(tiny, image):
    sam, model_id = tiny
    seg = PromptableSegmenter(sam, model_id)
    seg.set_image(image)
    first = seg.predict([[30, 90]])
    second = seg.predict([[30, 90], [40, 100]], [1, 1])
    masks, _, _ = _bare(
        sam,
        to_uint8_rgb(image),
        point_coords=np.array([[90, 30], [100, 40]]),
        point_labels=np.array([1, 1]),
        mask_input=first.logits,
        multimask_output=False,
    )
    assert np.array_equal(second.mask, masks[0])
    fresh = seg.predict([[30, 90], [40, 100]], [1, 1], refine=False)
    plain, _, _ = _bare(
        sam,
        to_uint8_rgb(image),
        point_coords=np.array([[90, 30], [100, 40]]),
        point_labels=np.array([1, 1]),
        multimask_output=False,
    )
    assert np.array_equal(fresh.mask, plain[0])


def test_large_images_are_tiled_and_prompts_use_their_tile(tiny):
    sam, model_id = tiny
    rng = np.random.default_rng(3)
    big = rng.integers(0, 4000, (300, 200)).astype(np.uint16)
    tiles = tile_grid(big.shape, 128, 32)
    assert len(tiles) == 6
    covered = np.zeros(big.shape, int)
    for tile in tiles:
        covered[tile.slices] += 1
    assert covered.min() >= 1
    seg = PromptableSegmenter(sam, model_id, overlap=32)
    embedding = seg.set_image(big)
    assert [t.tile for t in embedding.tiles] == tiles
    result = seg.predict([[250, 150]])
    tile = tiles[result.tile]
    assert tile.contains(np.array([250, 150]), np.array([250, 150]))
    local = np.array([[150 - tile.origin[1], 250 - tile.origin[0]]])
    masks, scores, _ = _bare(
        sam,
        to_uint8_rgb(big)[tile.slices],
        point_coords=local,
        point_labels=np.array([1]),
        multimask_output=True,
    )
    expected = np.zeros(big.shape, bool)
    expected[tile.slices] = masks[int(np.argmax(scores))]
    assert np.array_equal(result.mask, expected)


def _count_encoder_calls(sam):
    calls = []
    handle = sam.image_encoder.register_forward_hook(lambda *args: calls.append(1))
    return calls, handle


def test_embedding_cache_hits_memory_then_disk(tiny, image, tmp_path):
    sam, model_id = tiny
    calls, handle = _count_encoder_calls(sam)
    try:
        seg = PromptableSegmenter(sam, model_id, EmbeddingCache(tmp_path))
        first = seg.set_image(image)
        assert len(calls) == 1 and len(list(tmp_path.glob("*.npz"))) == 1
        seg.set_image(image.copy())  # same content: memory hit
        assert len(calls) == 1
        other = PromptableSegmenter(sam, model_id, EmbeddingCache(tmp_path))  # fresh memory
        again = other.set_image(image)
        assert len(calls) == 1 and again.key == first.key
        assert np.array_equal(again.tiles[0].features, first.tiles[0].features)
        assert np.array_equal(other.predict([[30, 90]]).mask, seg.predict([[30, 90]]).mask)
        PromptableSegmenter(sam, "another-model", EmbeddingCache(tmp_path)).set_image(image)
        assert len(calls) == 2  # the model is part of the key
    finally:
        handle.remove()


def test_embedding_yields_progress_per_tile(tiny):
    sam, model_id = tiny
    seg = PromptableSegmenter(sam, model_id, overlap=32)
    progress = list(seg.set_image_iter(np.zeros((200, 150), np.float32)))
    assert [p.step for p in progress] == [0, 1, 2, 3, 4] and progress[-1].total == 4
